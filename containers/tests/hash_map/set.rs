//! The segment `HashSet` against std's, and its set operations.

use std::collections::HashSet as StdSet;

use shmkit_containers::{HashSet, HashSetExt, Vec};
use shmkit_runtime::{ManagedHeapMemory, ShmMut};
use shmkit_test_support::Rng;

use crate::model::OPS;

fn sorted<'a>(items: impl Iterator<Item = &'a u64>) -> std::vec::Vec<u64> {
    let mut v: std::vec::Vec<u64> = items.copied().collect();
    v.sort_unstable();
    v
}

#[test]
fn random_operations_match_std() {
    let mut seg = ManagedHeapMemory::new(4 << 20).unwrap();
    seg.construct_array_with("s", 2, |_| HashSet::<u64>::new())
        .unwrap();
    {
        let mut all = seg.find_slice_mut::<HashSet<u64>>("s").unwrap().unwrap();
        let mut sets: std::vec::Vec<ShmMut<'_, HashSet<u64>>> = all.iter_mut().collect();
        let mut models = [StdSet::new(), StdSet::new()];
        let mut rng = Rng::new(0x5e7);
        for step in 0..OPS {
            let which = rng.range(0, 2) as usize;
            let (s, model) = (&mut sets[which], &mut models[which]);
            let x = rng.range(0, 40 + step as u64 / 8);
            match rng.range(0, 10) {
                0..=3 => assert_eq!(s.insert(x).unwrap(), model.insert(x)),
                4 => assert_eq!(s.remove(&x), model.remove(&x)),
                5 => assert_eq!(s.take(&x), model.take(&x)),
                6 => assert_eq!(
                    (s.contains(&x), s.get(&x)),
                    (model.contains(&x), model.get(&x))
                ),
                7 => {
                    let d = rng.range(2, 6);
                    s.retain(|e| e % d != 0);
                    model.retain(|e| e % d != 0);
                }
                8 => {
                    s.extend(x..x + 10).unwrap();
                    model.extend(x..x + 10);
                }
                _ => {
                    if x % 8 == 0 {
                        s.clear();
                        model.clear();
                        s.shrink_to_fit().unwrap();
                    } else {
                        s.reserve(x as usize % 50).unwrap();
                    }
                }
            }
            assert_eq!(**s, *model, "step {step}");
            assert_eq!(s.len(), model.len());
        }
        let (a, b) = (&*sets[0], &*sets[1]);
        let (ma, mb) = (&models[0], &models[1]);
        assert_eq!(sorted(a.union(b)), sorted(ma.union(mb)));
        assert_eq!(sorted(a.intersection(b)), sorted(ma.intersection(mb)));
        assert_eq!(sorted(b.intersection(a)), sorted(ma.intersection(mb)));
        assert_eq!(sorted(a.difference(b)), sorted(ma.difference(mb)));
        assert_eq!(
            sorted(a.symmetric_difference(b)),
            sorted(ma.symmetric_difference(mb))
        );
        assert_eq!(a.is_disjoint(b), ma.is_disjoint(mb));
        assert_eq!(a.is_subset(b), ma.is_subset(mb));
        assert_eq!(a.is_superset(b), ma.is_superset(mb));
        assert_eq!(sorted(a.iter()), sorted(ma.iter()));
    }
    assert!(seg.destroy::<HashSet<u64>>("s").unwrap());
    assert!(seg.all_memory_deallocated());
}

#[test]
fn subsets_equality_and_debug() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct_array_with("s", 2, |_| HashSet::<u64>::new())
        .unwrap();
    let mut all = seg.find_slice_mut::<HashSet<u64>>("s").unwrap().unwrap();
    let mut it = all.iter_mut();
    let (mut a, mut b) = (it.next().unwrap(), it.next().unwrap());
    a.extend([1, 2]).unwrap();
    b.extend([3, 2, 1]).unwrap();
    assert!(a.is_subset(&b) && b.is_superset(&a) && !b.is_subset(&a));
    assert!(!a.is_disjoint(&b));
    assert_ne!(*a, *b);
    b.remove(&3);
    assert_eq!(*a, *b);
    assert_eq!(format!("{:?}", HashSet::<u64>::default()), "{}");
    assert_eq!((&*a).into_iter().sum::<u64>(), 3);
}

/// A set of vectors: elements built in place from sources, dropped in place.
#[test]
fn a_set_of_vectors_builds_and_drops_its_elements_in_place() {
    let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
    seg.construct("rows", HashSet::<Vec<u32>>::new()).unwrap();
    {
        let mut rows = seg.find_mut::<HashSet<Vec<u32>>>("rows").unwrap().unwrap();
        for n in 0..30 {
            assert!(rows.insert(0..n).unwrap());
        }
        assert!(!rows.insert(&[0, 1][..]).unwrap());
        rows.retain(|r| r.len() % 2 == 0);
        assert_eq!(rows.len(), 15);
    }
    assert!(seg.destroy::<HashSet<Vec<u32>>>("rows").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// Zero-sized elements: one at most, and no bucket memory beyond the control bytes.
#[test]
fn a_set_of_units_holds_one() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("units", HashSet::<()>::new()).unwrap();
    {
        let mut units = seg.find_mut::<HashSet<()>>("units").unwrap().unwrap();
        assert!(units.insert(()).unwrap());
        assert!(!units.insert(()).unwrap());
        assert_eq!((units.len(), units.contains(&())), (1, true));
        assert_eq!(units.take(&()), Some(()));
        assert!(units.is_empty());
    }
    assert!(seg.destroy::<HashSet<()>>("units").unwrap());
    assert!(seg.all_memory_deallocated());
}
