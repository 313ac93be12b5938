//! Maps of and in containers: position-dependent values and keys are built in place,
//! relocated when a split, merge or rotation moves them between nodes, never handed out
//! by value, and dropped in place; a map header inside a vector is relocated when the
//! vector's buffer moves.

use std::collections::BTreeMap;
use std::ops::Bound;

use shmkit_containers::{Map, MapExt, String, Vec, VecExt};
use shmkit_runtime::{ManagedHeapMemory, ShmMut};
use shmkit_test_support::Rng;

use crate::model::{full_check, OPS};

type Rows = Map<u64, Vec<u32>>;

/// The rows as std's.
fn rows_of(rows: &Rows) -> BTreeMap<u64, std::vec::Vec<u32>> {
    rows.iter().map(|(k, v)| (*k, v.to_vec())).collect()
}

/// Random operations on a map of vectors and on a std model.
fn run_rows(rows: &mut ShmMut<'_, Rows>, seed: u64, ops: usize, keys: u64) {
    let mut rng = Rng::new(seed);
    let mut model = rows_of(rows);
    for step in 0..ops {
        let k = rng.range(0, keys);
        let n = rng.range(0, 12) as u32;
        let row: std::vec::Vec<u32> = (0..n).map(|i| i * n).collect();
        match rng.range(0, 9) {
            0..=2 => assert_eq!(
                rows.insert_with(k, &row[..], |old| old.to_vec()).unwrap(),
                model.insert(k, row)
            ),
            3 => {
                // Built from a range, in place where it lands.
                rows.entry(k).unwrap().or_insert(0..n).unwrap();
                model.entry(k).or_insert_with(|| (0..n).collect());
            }
            4 => {
                if let Some(mut r) = rows.value_mut(&k) {
                    r.push(n).unwrap();
                    model.get_mut(&k).unwrap().push(n);
                }
            }
            5 => assert_eq!(
                rows.remove_with(&k, |_, r| r.iter().sum::<u32>()),
                model.remove(&k).map(|r| r.iter().sum())
            ),
            6 => assert_eq!(
                rows.pop_first_with(|k, r| (*k, r.to_vec())),
                model.pop_first()
            ),
            7 => {
                rows.retain(|_, r| r.len() % 4 != 1);
                model.retain(|_, r| r.len() % 4 != 1);
            }
            _ => {
                for ((_, mut r), (_, m)) in rows.iter_mut().zip(model.iter_mut()).take(3) {
                    r.extend_from_slice(&[7, 7]).unwrap();
                    m.extend_from_slice(&[7, 7]);
                }
            }
        }
        if full_check(step) || step + 1 == ops {
            assert_eq!(rows_of(rows), model, "step {step} (seed {seed:#x})");
        }
    }
}

#[test]
fn a_map_of_vectors_matches_std_and_frees_every_row() {
    let mut seg = ManagedHeapMemory::new(8 << 20).unwrap();
    seg.construct("rows", Rows::new()).unwrap();
    for (seed, keys) in [(0xfeed, 30), (0xbeef, 600)] {
        run_rows(
            &mut seg.find_mut::<Rows>("rows").unwrap().unwrap(),
            seed,
            OPS / 2,
            keys,
        );
    }
    assert!(seg.destroy::<Rows>("rows").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// Keys that are segment vectors: built from slices, found by slices (`Borrow<[u32]>`),
/// ordered as slices.
#[test]
fn vector_keys_are_found_by_slices() {
    type ByPath = Map<Vec<u32>, u64>;
    let mut seg = ManagedHeapMemory::new(4 << 20).unwrap();
    seg.construct("paths", ByPath::new()).unwrap();
    let mut paths = seg.find_mut::<ByPath>("paths").unwrap().unwrap();
    let mut model: BTreeMap<std::vec::Vec<u32>, u64> = BTreeMap::new();
    let mut rng = Rng::new(5);
    for step in 0..OPS {
        let key: std::vec::Vec<u32> = (0..rng.range(0, 4))
            .map(|_| rng.range(0, 5) as u32)
            .collect();
        match rng.range(0, 4) {
            0 | 1 => assert_eq!(
                paths.insert(&key[..], step as u64).unwrap(),
                model.insert(key.clone(), step as u64)
            ),
            2 => assert_eq!(paths.remove(&key[..]), model.remove(&key)),
            _ => {
                assert_eq!(paths.get(&key[..]), model.get(&key));
                let from = (Bound::Included(&key[..]), Bound::Unbounded);
                let ours: std::vec::Vec<_> = paths
                    .range::<[u32], _>(from)
                    .map(|(k, _)| k.to_vec())
                    .collect();
                let theirs: std::vec::Vec<_> =
                    model.range(key.clone()..).map(|(k, _)| k.clone()).collect();
                assert_eq!(ours, theirs);
            }
        }
        if full_check(step) || step + 1 == OPS {
            assert!(paths
                .keys()
                .map(|k| k.as_slice())
                .eq(model.keys().map(|k| k.as_slice())));
        }
    }
    assert!(seg.destroy::<ByPath>("paths").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// Maps inside a vector: the vector's buffer moves as it grows, relocating the map
/// headers, whose root pointers must still lead to their trees.
#[test]
fn maps_in_a_vector_survive_its_buffer_moving() {
    type Maps = Vec<Map<u64, u64>>;
    let mut seg = ManagedHeapMemory::new(4 << 20).unwrap();
    seg.construct("maps", Maps::new()).unwrap();
    let mut maps = seg.find_mut::<Maps>("maps").unwrap().unwrap();
    let mut moves = 0;
    for i in 0..40u64 {
        let buffer = maps.as_ptr();
        maps.push(Map::new()).unwrap();
        if maps.as_ptr() != buffer && i > 0 {
            moves += 1;
        }
        let mut last = maps.last_mut().unwrap();
        last.extend((0..i * 3).map(|k| (k, k + i))).unwrap();
    }
    assert!(moves > 0, "the buffer never moved: relocation untested");
    for (i, map) in maps.iter().enumerate() {
        let i = i as u64;
        assert_eq!(map.len() as u64, i * 3);
        assert!(map
            .iter()
            .map(|(k, v)| (*k, *v))
            .eq((0..i * 3).map(|k| (k, k + i))));
    }
    maps.remove_with(3, |m| assert_eq!(m.len(), 9));
    maps.truncate(10);
    assert!(seg.destroy::<Maps>("maps").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// Maps of maps: the inner ones built empty in place, then filled where they are.
#[test]
fn maps_of_maps_fill_in_place() {
    type Nested = Map<u64, Map<u64, u64>>;
    let mut seg = ManagedHeapMemory::new(4 << 20).unwrap();
    seg.construct("nested", Nested::new()).unwrap();
    let mut nested = seg.find_mut::<Nested>("nested").unwrap().unwrap();
    for i in 0..300u64 {
        let mut inner = nested.entry(i % 37).unwrap().or_insert(Map::new()).unwrap();
        inner.insert(i, i * i).unwrap();
    }
    assert_eq!(nested.len(), 37);
    assert_eq!(nested[&5].get(&42), Some(&(42 * 42)));
    assert_eq!(nested.values().map(|m| m.len()).sum::<usize>(), 300);
    nested.retain(|k, _| k % 2 == 0);
    assert_eq!(nested.remove_with(&4, |_, m| m.len()), Some(8));
    assert!(seg.destroy::<Nested>("nested").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// String keys, as the README keeps them: built from `&str`, found by `&str`
/// (`Borrow<str>`), ordered as `str`; values that are vectors of strings.
#[test]
fn string_keys_are_built_and_found_by_str() {
    type Index = Map<String, Vec<String>>;
    let mut seg = ManagedHeapMemory::new(4 << 20).unwrap();
    seg.construct("index", Index::new()).unwrap();
    let mut index = seg.find_mut::<Index>("index").unwrap().unwrap();
    let mut model: BTreeMap<std::string::String, std::vec::Vec<std::string::String>> =
        BTreeMap::new();
    let mut rng = Rng::new(11);
    for step in 0..OPS {
        let key = format!("k{}", rng.range(0, 60));
        let word = format!("w{step}");
        match rng.range(0, 5) {
            0 => {
                let fresh = index
                    .insert_with(key.as_str(), [word.as_str(), "x"], |_| ())
                    .unwrap()
                    .is_none();
                assert_eq!(fresh, model.insert(key, vec![word, "x".into()]).is_none());
            }
            1 | 2 => {
                index
                    .entry(key.as_str())
                    .unwrap()
                    .or_insert(Vec::new())
                    .unwrap()
                    .push(word.as_str())
                    .unwrap();
                model.entry(key).or_default().push(word);
            }
            3 => assert_eq!(
                index.remove_with(key.as_str(), |k, v| (k.to_string(), v.len())),
                model.remove(&key).map(|v| (key, v.len()))
            ),
            _ => {
                assert_eq!(index.contains_key("k7"), model.contains_key("k7"));
                let range = (Bound::Included("k2"), Bound::Excluded("k4"));
                let ours: std::vec::Vec<&str> = index
                    .range::<str, _>(range)
                    .map(|(k, _)| k.as_str())
                    .collect();
                let theirs: std::vec::Vec<&str> = model
                    .range::<str, _>(range)
                    .map(|(k, _)| k.as_str())
                    .collect();
                assert_eq!(ours, theirs);
            }
        }
        if full_check(step) || step + 1 == OPS {
            assert!(index
                .iter()
                .map(|(k, v)| (k.as_str(), v.len()))
                .eq(model.iter().map(|(k, v)| (k.as_str(), v.len()))));
        }
    }
    let first = model.keys().next().cloned().unwrap_or_default();
    assert_eq!(
        index.get(first.as_str()).map(|v| v.len()),
        model.get(&first).map(|v| v.len())
    );
    assert!(seg.destroy::<Index>("index").unwrap());
    assert!(seg.all_memory_deallocated());
}
