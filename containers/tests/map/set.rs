//! Random operation sequences on segment sets and on std `BTreeSet`s side by side, and
//! sets of position-dependent elements.

use std::collections::BTreeSet;
use std::ops::Bound;

use shmkit_containers::{Set, SetExt, Vec};
use shmkit_runtime::{ManagedHeapMemory, ShmMut};
use shmkit_test_support::Rng;

use crate::model::{full_check, OPS};

/// Runs `ops` random operations over elements `0..keys` on two sets and their models.
fn run(sets: &mut [ShmMut<'_, Set<u64>>], seed: u64, ops: usize, keys: u64) {
    let mut rng = Rng::new(seed);
    let mut models = vec![BTreeSet::new(); sets.len()];
    for step in 0..ops {
        let which = rng.range(0, sets.len() as u64) as usize;
        let (s, model) = (&mut sets[which], &mut models[which]);
        let x = rng.range(0, keys);
        match rng.range(0, 14) {
            0..=4 => assert_eq!(s.insert(x).unwrap(), model.insert(x)),
            5 | 6 => assert_eq!(s.remove(&x), model.remove(&x)),
            7 => assert_eq!(s.take(&x), model.take(&x)),
            8 => assert_eq!(s.pop_first(), model.pop_first()),
            9 => assert_eq!(s.pop_last_with(|v| *v), model.pop_last()),
            10 => {
                let m = rng.range(2, 6);
                s.retain(|v| v % m != x % m);
                model.retain(|v| v % m != x % m);
            }
            11 => {
                let items: std::vec::Vec<u64> =
                    (0..rng.range(0, 30)).map(|i| (x + i * 3) % keys).collect();
                s.extend(items.iter().copied()).unwrap();
                model.extend(items);
            }
            12 => {
                let (lo, hi) = (Bound::Included(x), Bound::Excluded(x + rng.range(0, 50)));
                assert!(s.range((lo, hi)).eq(model.range((lo, hi))));
                assert!(s.range((lo, hi)).rev().eq(model.range((lo, hi)).rev()));
                assert_eq!(s.get(&x), model.get(&x));
                assert_eq!((s.first(), s.last()), (model.first(), model.last()));
            }
            _ => {
                if x < keys / 10 {
                    s.clear();
                    model.clear();
                }
            }
        }
        if full_check(step) {
            assert!(s.iter().eq(model.iter()), "step {step} (seed {seed:#x})");
        }
        assert_eq!(s.len(), model.len());
        assert_eq!(s.contains(&x), model.contains(&x));
    }
    for (s, model) in sets.iter().zip(&models) {
        assert!(s.iter().eq(model.iter()), "seed {seed:#x}");
    }
    let (a, b) = (&sets[0], &sets[1]);
    let (ma, mb) = (&models[0], &models[1]);
    assert_eq!(a.is_subset(b), ma.is_subset(mb));
    assert_eq!(a.is_superset(b), ma.is_superset(mb));
    assert_eq!(a.is_disjoint(b), ma.is_disjoint(mb));
}

#[test]
fn random_operations_match_std_on_a_heap_segment() {
    for (seed, keys) in [(3, 50), (0xabc, 2000)] {
        let mut seg = ManagedHeapMemory::new(8 << 20).unwrap();
        seg.construct_array_with("s", 2, |_| Set::<u64>::new())
            .unwrap();
        {
            let mut all = seg.find_slice_mut::<Set<u64>>("s").unwrap().unwrap();
            let mut sets: std::vec::Vec<_> = all.iter_mut().collect();
            run(&mut sets, seed, OPS, keys);
        }
        assert!(seg.destroy::<Set<u64>>("s").unwrap());
        assert!(seg.all_memory_deallocated());
    }
}

/// Subsets, supersets and disjointness on sets built for them; traits as std's.
#[test]
fn relations_comparisons_and_hashing_follow_std() {
    use std::hash::{BuildHasher, RandomState};

    let mut seg = ManagedHeapMemory::new(1 << 18).unwrap();
    seg.construct_array_with("s", 3, |_| Set::<u64>::new())
        .unwrap();
    let mut all = seg.find_slice_mut::<Set<u64>>("s").unwrap().unwrap();
    let mut it = all.iter_mut();
    let (mut a, mut b, mut c) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    a.extend(0..100).unwrap();
    b.extend((0..100).filter(|v| v % 3 == 0)).unwrap();
    c.extend(100..120).unwrap();
    assert!(b.is_subset(&a) && a.is_superset(&b) && !a.is_subset(&b));
    assert!(a.is_disjoint(&c) && c.is_disjoint(&a) && !a.is_disjoint(&b));
    let model: BTreeSet<u64> = (0..100).collect();
    let hasher = RandomState::new();
    assert_eq!(hasher.hash_one(&*a), hasher.hash_one(&model));
    assert!(*b > *a && a.cmp(&c) == std::cmp::Ordering::Less);
    c.clear();
    c.extend([3, 1, 2]).unwrap();
    assert_eq!(format!("{:?}", *c), "{1, 2, 3}");
    assert_eq!((&*c).into_iter().sum::<u64>(), 6);
    assert_eq!(c.iter().len(), 3);
    assert_ne!(*c, *b);
    assert_eq!(Set::<u64>::default(), Set::new());
}

/// A set of segment vectors: elements built in place from slices, found by slices,
/// handed out only by reference, dropped in place.
#[test]
fn a_set_of_vectors_builds_and_drops_in_place() {
    let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
    seg.construct("words", Set::<Vec<u8>>::new()).unwrap();
    let mut words = seg.find_mut::<Set<Vec<u8>>>("words").unwrap().unwrap();
    let all: std::vec::Vec<std::vec::Vec<u8>> = (0..300u32)
        .map(|i| format!("w{}", i * 7919 % 1000).into_bytes())
        .collect();
    for w in &all {
        words.insert(&w[..]).unwrap();
    }
    let model: BTreeSet<&[u8]> = all.iter().map(|w| &w[..]).collect();
    assert!(words.iter().map(|w| w.as_slice()).eq(model.iter().copied()));
    assert!(words.contains(&b"w0"[..]) && !words.contains(&b"x"[..]));
    assert!(words.remove(&all[1][..]) && !words.remove(&all[1][..]));
    assert_eq!(words.pop_first_with(|w| w.to_vec()), Some(b"w0".to_vec()));
    assert_eq!(words.len(), model.len() - 2);
    words.retain(|w| w.len() == 4);
    assert!(words.iter().all(|w| w.len() == 4));
    assert!(seg.destroy::<Set<Vec<u8>>>("words").unwrap());
    assert!(seg.all_memory_deallocated());
}
