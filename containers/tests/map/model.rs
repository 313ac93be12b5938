//! Random operation sequences on segment maps and on std `BTreeMap`s side by side: after
//! every step the elements must be the same, read forwards, backwards and by range.

use std::collections::BTreeMap;
use std::ops::Bound;

use shmkit_containers::map::Entry;
use shmkit_containers::{Map, MapExt};
use shmkit_runtime::{ManagedHeapMemory, ShmMut};
use shmkit_test_support::Rng;

/// Operations per sequence: thousands natively, a few hundred under Miri.
pub const OPS: usize = if cfg!(miri) { 250 } else { 12_000 };

/// Whether step `step` compares everything with the model: every one natively; under
/// Miri, where reading every element after every step would cost most of the time, one
/// in ten.
pub fn full_check(step: usize) -> bool {
    !cfg!(miri) || step % 10 == 0
}

/// The map's elements, as std's.
pub fn contents(map: &Map<u64, u64>) -> BTreeMap<u64, u64> {
    map.iter().map(|(k, v)| (*k, *v)).collect()
}

/// A random bound among the keys (and just outside them).
fn bound(rng: &mut Rng, keys: u64) -> Bound<u64> {
    let k = rng.range(0, keys + 2);
    match rng.range(0, 3) {
        0 => Bound::Included(k),
        1 => Bound::Excluded(k),
        _ => Bound::Unbounded,
    }
}

/// Whether std accepts the range (it panics on one that starts after it ends).
fn std_accepts(range: (Bound<u64>, Bound<u64>)) -> bool {
    match range {
        (Bound::Excluded(s), Bound::Excluded(e)) => s < e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => {
            s <= e
        }
        _ => true,
    }
}

/// Runs `ops` random operations over keys `0..keys` on `maps` (several maps in one
/// segment, so that their nodes interleave) and on std models of them.
pub fn run<P: MapExt<u64, u64>>(maps: &mut [P], seed: u64, ops: usize, keys: u64) {
    let mut rng = Rng::new(seed);
    let mut models: Vec<BTreeMap<u64, u64>> = maps.iter().map(|m| contents(m)).collect();
    for step in 0..ops {
        let which = rng.range(0, maps.len() as u64) as usize;
        let (m, model) = (&mut maps[which], &mut models[which]);
        let k = rng.range(0, keys);
        let x = rng.range(0, 1000);
        match rng.range(0, 32) {
            0..=9 => assert_eq!(m.insert(k, x).unwrap(), model.insert(k, x)),
            10..=13 => assert_eq!(m.remove(&k), model.remove(&k)),
            14 => assert_eq!(m.remove_entry(&k), model.remove_entry(&k)),
            15 => assert_eq!(m.remove_with(&k, |k, v| (*k, *v)), model.remove_entry(&k)),
            16 => assert_eq!(m.pop_first(), model.pop_first()),
            17 => assert_eq!(m.pop_last(), model.pop_last()),
            18 => assert_eq!(m.pop_first_with(|k, v| (*k, *v)), model.pop_first()),
            19 => assert_eq!(m.pop_last_with(|k, v| (*k, *v)), model.pop_last()),
            20 => match (m.value_mut(&k), model.get_mut(&k)) {
                (Some(mut v), Some(w)) => {
                    *v += x;
                    *w += x;
                }
                (None, None) => {}
                (ours, theirs) => panic!("value_mut {ours:?} vs {theirs:?}"),
            },
            21 => {
                // Every entry path: modify, insert, replace, remove, or a vacant entry dropped.
                match (m.entry(k).unwrap(), x % 4) {
                    (Entry::Occupied(mut e), 0) => {
                        assert_eq!((*e.key(), *e.get()), (k, model[&k]));
                        assert_eq!(e.insert(x).unwrap(), model.insert(k, x).unwrap());
                    }
                    (Entry::Occupied(e), 1) => assert_eq!(e.remove(), model.remove(&k).unwrap()),
                    (Entry::Occupied(e), 2) => {
                        assert_eq!(e.remove_entry(), model.remove_entry(&k).unwrap())
                    }
                    (Entry::Vacant(e), 3) => assert_eq!(*e.key(), k),
                    (entry, _) => {
                        let v = *entry.and_modify(|mut v| *v += 1).or_insert(x).unwrap();
                        let w = *model.entry(k).and_modify(|v| *v += 1).or_insert(x);
                        assert_eq!(v, w);
                    }
                }
            }
            22 => assert_eq!(m.insert_with(k, x, |old| *old).unwrap(), model.insert(k, x)),
            23 => {
                let modulus = rng.range(2, 5);
                m.retain(|k, mut v| {
                    *v += 1;
                    k % modulus != x % modulus
                });
                model.retain(|k, v| {
                    *v += 1;
                    k % modulus != x % modulus
                });
            }
            24 | 25 => {
                let range = (bound(&mut rng, keys), bound(&mut rng, keys));
                if std_accepts(range) {
                    let ours: Vec<_> = m.range(range).map(|(k, v)| (*k, *v)).collect();
                    let theirs: Vec<_> = model.range(range).map(|(k, v)| (*k, *v)).collect();
                    assert_eq!(ours, theirs, "{range:?}");
                    let ours: Vec<_> = m.range(range).rev().map(|(k, _)| *k).collect();
                    let theirs: Vec<_> = model.range(range).rev().map(|(k, _)| *k).collect();
                    assert_eq!(ours, theirs, "{range:?} reversed");
                    for (_, mut v) in m.range_mut(range) {
                        *v ^= x;
                    }
                    for (_, v) in model.range_mut(range) {
                        *v ^= x;
                    }
                } else {
                    assert_eq!(m.range(range).count(), 0, "{range:?}");
                    assert_eq!(m.range_mut(range).next_back().map(|(k, _)| *k), None);
                }
            }
            26 => {
                // Both ends at once: the two cursors meet in the middle.
                let mut ours = m.iter_mut();
                let mut theirs = model.iter_mut();
                while let (Some((k, mut v)), Some((l, w))) = (ours.next(), theirs.next()) {
                    assert_eq!(k, l);
                    *v += 1;
                    *w += 1;
                    if let (Some((k, mut v)), Some((l, w))) = (ours.next_back(), theirs.next_back())
                    {
                        assert_eq!(k, l);
                        *v += 2;
                        *w += 2;
                    }
                }
                assert!(ours.next().is_none() && theirs.next().is_none());
                for mut v in m.values_mut() {
                    *v += 3;
                }
                model.values_mut().for_each(|v| *v += 3);
            }
            27 => {
                let pairs: Vec<(u64, u64)> = (0..rng.range(0, 40))
                    .map(|i| ((k + i * 7) % keys, i))
                    .collect();
                m.extend(pairs.iter().copied()).unwrap();
                model.extend(pairs);
            }
            28 => {
                assert_eq!(m.get(&k), model.get(&k));
                assert_eq!(m.get_key_value(&k), model.get_key_value(&k));
                assert_eq!(m.contains_key(&k), model.contains_key(&k));
                assert_eq!(m.first_key_value(), model.first_key_value());
                assert_eq!(m.last_key_value(), model.last_key_value());
            }
            29 => {
                let v = m
                    .entry(k)
                    .unwrap()
                    .or_insert_with_key(|k| k * 2)
                    .map(|v| *v);
                assert_eq!(v.unwrap(), *model.entry(k).or_insert_with_key(|k| k * 2));
            }
            30 => match m.entry(k).unwrap() {
                Entry::Occupied(e) => {
                    let removed = e.remove_with(|k, v| (*k, *v));
                    assert_eq!(Some(removed), model.remove_entry(&k));
                }
                Entry::Vacant(e) => {
                    assert_eq!(*e.insert(x).unwrap(), x);
                    model.insert(k, x);
                }
            },
            _ => {
                if x < 20 {
                    m.clear();
                    model.clear();
                }
            }
        }
        assert_eq!(m.len(), model.len(), "step {step} (seed {seed:#x})");
        if full_check(step) || step + 1 == ops {
            assert!(
                m.iter()
                    .map(|(k, v)| (*k, *v))
                    .eq(model.iter().map(|(k, v)| (*k, *v))),
                "step {step} (seed {seed:#x})"
            );
            assert!(m.iter().rev().map(|(k, _)| k).eq(model.keys().rev()));
        }
    }
}

/// (seed, keys): from trees of one or two levels, where the root changes often, to trees
/// of three or more, where removals merge and rotate at every level.
const RUNS: [(u64, u64); 4] = [(0x5eed, 40), (42, 400), (0xdead_beef, 3000), (7, 20_000)];

#[test]
fn random_operations_match_std_on_a_heap_segment() {
    for (seed, keys) in RUNS {
        let mut seg = ManagedHeapMemory::new(2 << 20).unwrap();
        seg.construct_array_with("m", 3, |_| Map::<u64, u64>::new())
            .unwrap();
        {
            let mut all = seg.find_slice_mut::<Map<u64, u64>>("m").unwrap().unwrap();
            let mut maps: Vec<ShmMut<'_, Map<u64, u64>>> = all.iter_mut().collect();
            run(&mut maps, seed, OPS, keys);
        }
        assert!(seg.destroy::<Map<u64, u64>>("m").unwrap());
        assert!(seg.all_memory_deallocated(), "seed {seed:#x}");
    }
}

/// Many elements at once, then removals that empty the tree from a height of three or
/// more, checked as it goes.
#[test]
fn a_tall_tree_empties_in_random_order() {
    let n = if cfg!(miri) { 800 } else { 50_000 };
    let mut seg = ManagedHeapMemory::new(16 << 20).unwrap();
    seg.construct("m", Map::<u64, u64>::new()).unwrap();
    let mut m = seg.find_mut::<Map<u64, u64>>("m").unwrap().unwrap();
    let mut rng = Rng::new(99);
    let mut model = BTreeMap::new();
    for _ in 0..n {
        let k = rng.next_u64() % (4 * n);
        assert_eq!(m.insert(k, !k).unwrap(), model.insert(k, !k));
    }
    let mut keys: Vec<u64> = model.keys().copied().collect();
    while !keys.is_empty() {
        let k = keys.swap_remove(rng.range(0, keys.len() as u64) as usize);
        assert_eq!(m.remove(&k), model.remove(&k));
        if keys.len() % 1000 == 0 {
            assert_eq!(contents(&m), model);
        }
    }
    assert!(m.is_empty() && m.iter().next().is_none());
    assert!(seg.destroy::<Map<u64, u64>>("m").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// Maps compare, order and hash as std's do, print as a map, and index like std's.
#[test]
fn comparisons_hashing_and_debug_follow_std() {
    use std::hash::{BuildHasher, RandomState};

    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct_array_with("m", 2, |_| Map::<u64, u64>::new())
        .unwrap();
    let mut all = seg.find_slice_mut::<Map<u64, u64>>("m").unwrap().unwrap();
    let mut it = all.iter_mut();
    let (mut a, mut b) = (it.next().unwrap(), it.next().unwrap());
    a.extend([(1, 10), (2, 20)]).unwrap();
    b.extend([(2, 20), (1, 10)]).unwrap();
    assert_eq!(*a, *b);
    let model = BTreeMap::from([(1u64, 10u64), (2, 20)]);
    let hasher = RandomState::new();
    assert_eq!(hasher.hash_one(&*a), hasher.hash_one(&model));
    b.insert(3, 0).unwrap();
    assert!(*a < *b);
    assert_eq!(a.cmp(&b), std::cmp::Ordering::Less);
    assert_eq!(format!("{:?}", *a), "{1: 10, 2: 20}");
    assert_eq!((a[&2], (&*a).into_iter().count()), (20, 2));
    assert_eq!(a.keys().copied().collect::<Vec<_>>(), [1, 2]);
    assert_eq!(a.values().rev().copied().collect::<Vec<_>>(), [20, 10]);
    assert_eq!(a.iter().len(), 2);
    assert_eq!(Map::<u64, u64>::default(), Map::new());
}

/// `map[&key]` panics like std's when the key is missing.
#[test]
#[should_panic(expected = "no entry found for key")]
fn indexing_a_missing_key_panics_like_std() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("m", Map::<u64, u64>::new()).unwrap();
    let mut m = seg.find_mut::<Map<u64, u64>>("m").unwrap().unwrap();
    m.insert(1, 1).unwrap();
    let _ = m[&2];
}

/// Keys and values of no size: one possible key, no bytes per element.
#[test]
fn zero_sized_keys_and_values() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("units", Map::<(), ()>::new()).unwrap();
    let mut units = seg.find_mut::<Map<(), ()>>("units").unwrap().unwrap();
    assert_eq!(units.insert((), ()).unwrap(), None);
    assert_eq!(units.insert((), ()).unwrap(), Some(()));
    assert_eq!((units.len(), units.get(&())), (1, Some(&())));
    assert_eq!(units.pop_first(), Some(((), ())));
    assert!(units.is_empty());
}
