//! Random operation sequences on segment maps and on std maps side by side: after every
//! step the elements must be the same.

use std::collections::HashMap as StdMap;

use shmkit_containers::hash_map::Entry;
use shmkit_containers::{HashMap, HashMapExt};
use shmkit_runtime::{ManagedHeapMemory, ShmMut};
use shmkit_test_support::Rng;

/// Operations per sequence: thousands natively, fewer under Miri.
pub const OPS: usize = if cfg!(miri) { 250 } else { 8000 };

/// Seeds of the heap sequences (fixed, so a failure is replayed as it happened).
const SEEDS: [u64; 3] = [0x5eed, 0xdead_beef, 42];

/// Runs `ops` random operations on `maps` (several maps in one segment, so that their
/// tables interleave) and on std models of them.
pub fn run<P: HashMapExt<u64, u64>>(maps: &mut [P], seed: u64, ops: usize) {
    let mut rng = Rng::new(seed);
    let mut models: std::vec::Vec<StdMap<u64, u64>> = maps
        .iter()
        .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
        .collect();
    for step in 0..ops {
        let which = rng.range(0, maps.len() as u64) as usize;
        let (m, model) = (&mut maps[which], &mut models[which]);
        // Mostly a key range that grows slowly (hits and misses both), sometimes any key.
        let k = if rng.range(0, 8) == 0 {
            rng.next_u64()
        } else {
            rng.range(0, 48 + step as u64 / 6)
        };
        let v = rng.range(0, 1000);
        match rng.range(0, 22) {
            0..=5 => assert_eq!(m.insert(k, v).unwrap(), model.insert(k, v)),
            6 => assert_eq!(m.insert_with(k, v, |old| *old).unwrap(), model.insert(k, v)),
            7 => assert_eq!(m.remove(&k), model.remove(&k)),
            8 => assert_eq!(m.remove_with(&k, |k, v| (*k, *v)), model.remove_entry(&k)),
            9 => assert_eq!(m.remove_entry(&k), model.remove_entry(&k)),
            10 => {
                assert_eq!(m.get(&k), model.get(&k));
                assert_eq!(m.get_key_value(&k), model.get_key_value(&k));
                assert_eq!(m.contains_key(&k), model.contains_key(&k));
                if let Some(mut x) = m.value_mut(&k) {
                    *x = x.wrapping_add(v);
                    let y = model.get_mut(&k).unwrap();
                    *y = y.wrapping_add(v);
                }
            }
            11 => {
                let double = |x: &mut u64| *x = x.wrapping_mul(2);
                let mut x = m
                    .entry(k)
                    .unwrap()
                    .and_modify(|mut x| double(&mut x))
                    .or_insert(v)
                    .unwrap();
                *x = x.wrapping_add(1);
                let y = model.entry(k).and_modify(double).or_insert(v);
                *y = y.wrapping_add(1);
            }
            12 => match m.entry(k).unwrap() {
                Entry::Occupied(mut e) => {
                    assert_eq!(*e.key(), k);
                    if v % 2 == 0 {
                        assert_eq!(e.insert(v).unwrap(), model.insert(k, v).unwrap());
                        assert_eq!(*e.get(), v);
                    } else {
                        assert_eq!(e.remove(), model.remove(&k).unwrap());
                    }
                }
                Entry::Vacant(e) => {
                    assert_eq!(*e.key(), k);
                    assert!(!model.contains_key(&k));
                    if v % 2 == 0 {
                        assert_eq!(*e.insert(v).unwrap(), v);
                        model.insert(k, v);
                    }
                }
            },
            13 => {
                let d = rng.range(2, 7);
                m.retain(|k, v| (k ^ *v) % d != 0);
                model.retain(|k, v| (k ^ *v) % d != 0);
            }
            14 => {
                let more = rng.range(0, 100) as usize;
                m.reserve(more).unwrap();
                assert!(m.capacity() >= model.len() + more);
            }
            15 => {
                m.shrink_to_fit().unwrap();
                assert!(m.capacity() >= model.len());
                assert_eq!(m.capacity() == 0, model.is_empty());
            }
            16 => {
                let pairs: std::vec::Vec<(u64, u64)> = (0..rng.range(0, 30))
                    .map(|i| (k.wrapping_add(i * 3), v + i))
                    .collect();
                m.extend(pairs.iter().copied()).unwrap();
                model.extend(pairs);
            }
            17 => {
                for (k, mut x) in m.iter_mut() {
                    *x ^= k & 0xff;
                }
                for (k, x) in model.iter_mut() {
                    *x ^= k & 0xff;
                }
                for mut x in m.values_mut() {
                    *x = x.wrapping_add(1);
                }
                model.values_mut().for_each(|x| *x = x.wrapping_add(1));
            }
            18 => {
                if v < 30 {
                    m.clear();
                    model.clear();
                }
            }
            19 => {
                let x = m.entry(k).unwrap().or_insert_with_key(|k| k / 2).unwrap();
                assert_eq!(*x, *model.entry(k).or_insert(k / 2));
            }
            20 => assert_eq!(
                *m.entry(k).unwrap().or_default().unwrap(),
                *model.entry(k).or_default()
            ),
            _ => {
                let x = *m.entry(k).unwrap().or_insert_with(|| v).unwrap();
                assert_eq!(x, *model.entry(k).or_insert_with(|| v));
            }
        }
        assert_eq!(**m, *model, "step {step} (seed {seed:#x})");
        assert_eq!(m.iter().len(), model.len());
        assert_eq!(m.keys().count(), model.len());
        let sum = |vs: &mut dyn Iterator<Item = &u64>| vs.fold(0u64, |a, v| a.wrapping_add(*v));
        assert_eq!(sum(&mut m.values()), sum(&mut model.values()));
        assert!(m.capacity() >= m.len());
    }
}

#[test]
fn random_operations_match_std_on_a_heap_segment() {
    for seed in SEEDS {
        let mut seg = ManagedHeapMemory::new(4 << 20).unwrap();
        seg.construct_array_with("m", 3, |_| HashMap::<u64, u64>::new())
            .unwrap();
        {
            let mut all = seg
                .find_slice_mut::<HashMap<u64, u64>>("m")
                .unwrap()
                .unwrap();
            let mut maps: std::vec::Vec<ShmMut<'_, HashMap<u64, u64>>> = all.iter_mut().collect();
            run(&mut maps, seed, OPS);
        }
        assert!(seg.destroy::<HashMap<u64, u64>>("m").unwrap());
        assert!(seg.all_memory_deallocated(), "seed {seed:#x}");
    }
}

/// Maps compare as their elements do (in any order), print as a map, and index like std.
#[test]
fn comparisons_debug_and_index_follow_the_elements() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct_array_with("m", 2, |_| HashMap::<u64, u32>::new())
        .unwrap();
    let mut all = seg
        .find_slice_mut::<HashMap<u64, u32>>("m")
        .unwrap()
        .unwrap();
    let mut it = all.iter_mut();
    let (mut a, mut b) = (it.next().unwrap(), it.next().unwrap());
    assert_eq!(*a, *b);
    a.extend([(1, 10), (2, 20), (3, 30)]).unwrap();
    b.extend([(3, 30), (2, 20), (1, 10)]).unwrap();
    assert_eq!(*a, *b);
    assert_eq!(*a, StdMap::from([(1, 10), (2, 20), (3, 30)]));
    b.insert(3, 31).unwrap();
    assert_ne!(*a, *b);
    assert_eq!((a[&1], a.get(&4), a.len()), (10, None, 3));
    let printed = format!("{:?}", *b);
    assert!(
        printed.starts_with('{') && printed.contains("3: 31"),
        "{printed}"
    );
    let mut pairs: std::vec::Vec<_> = (&*a).into_iter().map(|(k, v)| (*k, *v)).collect();
    pairs.sort();
    assert_eq!(pairs, [(1, 10), (2, 20), (3, 30)]);
    assert!(HashMap::<u64, u32>::default().is_empty());
}

/// `map[&k]` of an absent key panics, as std's does.
#[test]
#[should_panic(expected = "no entry found for key")]
fn indexing_an_absent_key_panics_like_std() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("m", HashMap::<u64, u32>::new()).unwrap();
    let mut m = seg.find_mut::<HashMap<u64, u32>>("m").unwrap().unwrap();
    m.insert(1, 1).unwrap();
    let _ = m[&2];
}

/// Growth from nothing, then back: capacities follow the count, and an emptied map gives
/// its whole table back.
#[test]
fn capacity_grows_and_shrinks_with_the_elements() {
    let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
    seg.construct("m", HashMap::<u64, u64>::new()).unwrap();
    let empty = seg.free_memory();
    let mut m = seg.find_mut::<HashMap<u64, u64>>("m").unwrap().unwrap();
    assert_eq!(m.capacity(), 0);
    m.insert(1, 1).unwrap();
    assert_eq!(m.capacity(), 3);
    let n = if cfg!(miri) { 200 } else { 5000 };
    for i in 0..n {
        m.insert(i, i).unwrap();
    }
    assert!(m.capacity() >= n as usize && m.capacity() < 2 * n as usize);
    m.retain(|k, _| k % 100 == 0);
    m.shrink_to_fit().unwrap();
    assert!(m.capacity() < 2 * m.len().max(4), "{}", m.capacity());
    m.clear();
    assert!(m.is_empty() && m.capacity() > 0);
    m.shrink_to_fit().unwrap();
    assert_eq!(m.capacity(), 0);
    assert_eq!(seg.free_memory(), empty);
}
