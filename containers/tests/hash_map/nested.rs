//! Maps of vectors, vectors of maps and maps of maps: the inner headers are
//! position-dependent, so a growing table relocates them, never hands one out by value,
//! and drops them in place.

use std::collections::HashMap as StdMap;

use shmkit_containers::{HashMap, HashMapExt, Vec, VecExt};
use shmkit_runtime::{ManagedHeapMemory, PositionIndependent, ShmMut, ShmSafe};
use shmkit_test_support::Rng;

use crate::model::OPS;

type Rows = HashMap<u64, Vec<u32>>;

fn snapshot(rows: &Rows) -> StdMap<u64, std::vec::Vec<u32>> {
    rows.iter().map(|(k, v)| (*k, v.to_vec())).collect()
}

/// Random operations on `rows` and on a std model; returns how often the table moved
/// (which relocates every row header in it).
fn run(rows: &mut ShmMut<'_, Rows>, seed: u64, ops: usize) -> usize {
    let mut rng = Rng::new(seed);
    let mut model = snapshot(rows);
    let mut moves = 0;
    for step in 0..ops {
        let k = rng.range(0, 24 + step as u64 / 4);
        let x = rng.range(0, 20) as u32;
        let capacity = rows.capacity();
        match rng.range(0, 10) {
            0..=2 => {
                let old = rows.insert_with(k, 0..x, |old| old.to_vec()).unwrap();
                assert_eq!(old, model.insert(k, (0..x).collect()));
            }
            3 | 4 => {
                rows.entry(k)
                    .unwrap()
                    .or_insert(Vec::new())
                    .unwrap()
                    .push(x)
                    .unwrap();
                model.entry(k).or_default().push(x);
            }
            5 => {
                if let Some(mut row) = rows.value_mut(&k) {
                    row.extend_from_slice(&[x, x]).unwrap();
                    model.get_mut(&k).unwrap().extend([x, x]);
                }
            }
            6 => assert_eq!(rows.remove_with(&k, |_, r| r.to_vec()), model.remove(&k)),
            7 => {
                rows.retain(|_, r| r.len() % 4 != 1);
                model.retain(|_, r| r.len() % 4 != 1);
            }
            8 => {
                for (_, mut row) in rows.iter_mut() {
                    row.truncate(6);
                    row.shrink_to_fit().unwrap();
                }
                model.values_mut().for_each(|r| r.truncate(6));
            }
            _ => {
                if x < 2 {
                    rows.shrink_to_fit().unwrap();
                }
            }
        }
        if rows.capacity() != capacity && capacity > 0 && !rows.is_empty() {
            moves += 1;
        }
        assert_eq!(snapshot(rows), model, "step {step} (seed {seed:#x})");
    }
    moves
}

#[test]
fn a_map_of_vectors_matches_std_and_relocates_rows_when_its_table_moves() {
    let mut seg = ManagedHeapMemory::new(4 << 20).unwrap();
    seg.construct("rows", Rows::new()).unwrap();
    let moves = run(
        &mut seg.find_mut::<Rows>("rows").unwrap().unwrap(),
        0xfeed,
        OPS / 2,
    );
    assert!(moves > 0, "the table never moved: relocation untested");
    assert!(seg.destroy::<Rows>("rows").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// A vector of maps: the outer buffer moves the map headers (relocating their table
/// pointers, and leaving those without a table without one).
#[test]
fn a_vector_of_maps_moves_their_headers() {
    let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
    seg.construct("maps", Vec::<HashMap<u64, u64>>::new())
        .unwrap();
    {
        let mut maps = seg
            .find_mut::<Vec<HashMap<u64, u64>>>("maps")
            .unwrap()
            .unwrap();
        let n = if cfg!(miri) { 12 } else { 60 };
        for i in 0..n {
            // Every third map stays empty: a header without a table moves too.
            maps.push([(i, i * 10)].into_iter().filter(|_| i % 3 != 0))
                .unwrap();
            if let Some(mut last) = maps.last_mut() {
                last.extend((0..i).map(|j| (j + 1000, j))).unwrap();
            }
        }
        for (i, m) in maps.iter().enumerate() {
            let i = i as u64;
            assert_eq!(m.len() as u64, i + u64::from(i % 3 != 0));
            assert_eq!(m.get(&i), (i % 3 != 0).then_some(&(i * 10)));
            assert_eq!(m.get(&1000), (i > 0).then_some(&0));
        }
        maps.retain(|m| m.len() % 2 == 0);
        maps.pop_with(|mut m| m.clear());
    }
    assert!(seg.destroy::<Vec<HashMap<u64, u64>>>("maps").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// Maps of maps, built from pairs of sources in place.
#[test]
fn maps_nest_and_build_from_pairs() {
    let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
    type Nested = HashMap<u64, HashMap<u64, Vec<u32>>>;
    seg.construct("nested", Nested::new()).unwrap();
    {
        let mut nested = seg.find_mut::<Nested>("nested").unwrap().unwrap();
        for i in 0..20u64 {
            nested
                .insert_with(i, [(1u64, 0..i as u32), (2, 5..7)], |_| ())
                .unwrap();
        }
        let mut inner = nested.entry(3).unwrap().or_insert(HashMap::new()).unwrap();
        inner.value_mut(&1).unwrap().push(99).unwrap();
        assert_eq!(nested[&3][&1], [0, 1, 2, 99]);
        assert_eq!(nested[&19][&2], [5, 6]);
        // Replacing an inner map drops the old one in place.
        let old_len = nested
            .insert_with(3, [(7u64, 0..1u32)], |old| old.len())
            .unwrap();
        assert_eq!(old_len, Some(2));
        assert_eq!(nested[&3].len(), 1);
    }
    assert!(seg.destroy::<Nested>("nested").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// A key type that borrows as `u64` (hashing as `u64` does, like `String` and `str`).
#[derive(Hash, PartialEq, Eq, Debug)]
#[repr(transparent)]
struct Id(u64);

// SAFETY: one `u64`.
unsafe impl ShmSafe for Id {
    const ALL_BIT_PATTERNS_VALID: bool = true;
}
// SAFETY: as above.
unsafe impl PositionIndependent for Id {}

impl std::borrow::Borrow<u64> for Id {
    fn borrow(&self) -> &u64 {
        &self.0
    }
}

/// Vector keys (position-dependent, looked up by another segment vector) and keys found
/// through a borrowed form.
#[test]
fn keys_are_built_in_place_and_found_through_borrowed_forms() {
    let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
    seg.construct("paths", HashMap::<Vec<u32>, u64>::new())
        .unwrap();
    seg.construct("probe", Vec::<u32>::new()).unwrap();
    seg.construct("ids", HashMap::<Id, u32>::new()).unwrap();
    {
        let mut paths = seg
            .find_mut::<HashMap<Vec<u32>, u64>>("paths")
            .unwrap()
            .unwrap();
        for n in 0..40u32 {
            assert_eq!(paths.insert(0..n, u64::from(n)).unwrap(), None);
        }
        // The same key from another source: the value is replaced, the key kept.
        assert_eq!(paths.insert(&[0u32, 1, 2][..], 33).unwrap(), Some(3));
        assert_eq!(paths.len(), 40);
    }
    {
        let mut probe = seg.find_mut::<Vec<u32>>("probe").unwrap().unwrap();
        probe.extend(0..5).unwrap();
    }
    {
        let mut ids = seg.find_mut::<HashMap<Id, u32>>("ids").unwrap().unwrap();
        ids.insert(Id(7), 70).unwrap();
        assert_eq!(
            (ids.get(&7u64), ids.contains_key(&8u64)),
            (Some(&70), false)
        );
        assert_eq!(ids.remove(&7u64), Some(70));
    }
    {
        let paths = seg
            .find::<HashMap<Vec<u32>, u64>>("paths")
            .unwrap()
            .unwrap();
        let probe = seg.find::<Vec<u32>>("probe").unwrap().unwrap();
        assert_eq!(paths.get(probe), Some(&5));
        assert_eq!(paths.get_key_value(probe).map(|(k, _)| k.len()), Some(5));
    }
    assert!(seg.destroy::<HashMap<Vec<u32>, u64>>("paths").unwrap());
    assert!(seg.destroy::<Vec<u32>>("probe").unwrap());
    assert!(seg.destroy::<HashMap<Id, u32>>("ids").unwrap());
    assert!(seg.all_memory_deallocated());
}
