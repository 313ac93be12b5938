//! The crash sweep: random cases of every mutating operation, on maps of owning keys
//! (segment strings, moved with their relocation hook when the table grows or shrinks)
//! and values that must be dropped at most once, are stopped at each of their steps in
//! turn (`crashes_at`, the containers' crash points, see `src/crash.rs`, the strings'
//! own included), as a SIGKILL there would stop them. After each stop the map must be
//! one `validate` accepts (read from a writable copy of the segment, so that the table
//! and each key is owned through its one pointer), hold each key and value once, keep
//! working (more operations match a model of what it held: every element left is still
//! found by its key) and drop each value at most once; the segment then checks sound.
//! The count may be off after a crash (the module docs), so only the elements are
//! compared. Under Miri too, which checks all of it for undefined behaviour.

use std::collections::{BTreeMap, HashSet};

use shmkit_containers::{HashMap, HashMapExt, String};
use shmkit_runtime::__private::crash::crashes_at;
use shmkit_runtime::{ManagedHeapMemory, ShmMut};
use shmkit_test_support::{sweep, Rng, Tracked};

type Table<'a> = ShmMut<'a, HashMap<String, Tracked>>;

/// The steps between moving keys into a new table and publishing it.
const MOVING: &[&str] = &[
    "hash_map: an element copied to an unpublished table",
    "hash_map: a new table filled, not yet published",
];

fn key(k: u64) -> std::string::String {
    format!("key {k}")
}

/// A random case of one of the mutating methods (those that touch every element only on
/// small maps, whose every step is swept).
fn operation(map: &mut Table<'_>, rng: &mut Rng, keys: u64, next_id: &mut u64) {
    let k = key(rng.range(0, keys));
    *next_id += 1;
    let id = *next_id;
    let kinds = if map.len() <= 120 { 10 } else { 7 };
    match rng.range(0, kinds) {
        0 | 1 => drop(map.insert(k.as_str(), Tracked(id)).unwrap()),
        2 => drop(map.remove(k.as_str())),
        3 => drop(map.remove_with(k.as_str(), |_, v| v.0)),
        4 => drop(
            map.entry(k.as_str())
                .unwrap()
                .or_insert(Tracked(id))
                .unwrap(),
        ),
        5 => map.reserve(rng.range(1, 2 * keys) as usize).unwrap(),
        6 => map.shrink_to_fit().unwrap(),
        7 => map.retain(|key, _| key.as_str() > k.as_str()),
        8 => map.clear(),
        _ => {
            // Emptied, then given back: the table unpublished and freed.
            map.clear();
            map.shrink_to_fit().unwrap();
        }
    }
}

/// The elements as (key, value id), each key and each id once.
fn pairs(map: &HashMap<String, Tracked>) -> BTreeMap<std::string::String, u64> {
    let listed: Vec<(&str, u64)> = map.iter().map(|(k, v)| (k.as_str(), v.0)).collect();
    let ids: HashSet<u64> = listed.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids.len(), listed.len(), "a value listed twice");
    let model: BTreeMap<_, _> = listed.iter().map(|&(k, id)| (k.to_owned(), id)).collect();
    assert_eq!(model.len(), listed.len(), "a key listed twice");
    for (k, id) in &model {
        assert_eq!(map.get(k.as_str()).map(|v| v.0), Some(*id), "{k} not found");
    }
    model
}

/// Builds a random map of `size` elements, then stops one random operation at each of
/// its steps in turn; the steps swept.
fn sweep(seed: u64, size: u64) -> usize {
    let mut steps = 0;
    for n in sweep::steps((seed + size) as u32) {
        Tracked::reset();
        let mut seg = ManagedHeapMemory::new(if cfg!(miri) { 1 << 16 } else { 1 << 18 }).unwrap();
        seg.construct("m", HashMap::<String, Tracked>::new())
            .unwrap();
        let mut rng = Rng::new(seed);
        let keys = size * 2 + 2;
        let mut next_id = 0;
        let finished = {
            let mut map = seg
                .find_mut::<HashMap<String, Tracked>>("m")
                .unwrap()
                .unwrap();
            for _ in 0..size {
                next_id += 1;
                let k = key(rng.range(0, keys));
                drop(map.insert(k.as_str(), Tracked(next_id)).unwrap());
            }
            crashes_at(n, || operation(&mut map, &mut rng, keys, &mut next_id))
        };
        match (
            sweep::revalidate::<HashMap<String, Tracked>>(&mut seg, "m"),
            finished,
        ) {
            (Ok(()), _) => {}
            // The one window the module docs name: keys moved into a table not yet
            // published name their new place as owner, so a writable mapping's validation
            // refuses the map, with a clear error; the attached mapping reads on (below).
            (Err(e), Err(step))
                if MOVING.contains(&step) && e.to_string().contains("one owner") => {}
            (Err(e), _) => panic!("seed {seed:#x}, stopped at {finished:?}: {e}"),
        }
        let mut map = seg
            .find_mut::<HashMap<String, Tracked>>("m")
            .unwrap()
            .unwrap();
        let mut model = pairs(&map);
        for _ in 0..if cfg!(miri) { 10 } else { 30 } {
            let k = key(rng.range(0, keys));
            next_id += 1;
            match rng.range(0, 3) {
                0 | 1 => assert_eq!(
                    map.insert(k.as_str(), Tracked(next_id))
                        .unwrap()
                        .map(|v| v.0),
                    model.insert(k, next_id)
                ),
                _ => assert_eq!(map.remove(k.as_str()).map(|v| v.0), model.remove(&k)),
            }
        }
        assert_eq!(pairs(&map), model, "seed {seed:#x}, stopped at step {n}");
        assert!(seg.destroy::<HashMap<String, Tracked>>("m").unwrap());
        seg.check()
            .unwrap_or_else(|e| panic!("seed {seed:#x}, stopped at step {n}: {e}"));
        match finished {
            Ok(()) => return steps,
            Err(_step) => steps += 1,
        }
    }
    unreachable!("the operation runs to its end once `n` is past its last step")
}

#[test]
fn every_operation_stopped_at_every_step_leaves_a_working_map() {
    let (seeds, sizes): (u64, &[u64]) = if cfg!(miri) {
        (2, &[3, 20])
    } else {
        (16, &[0, 1, 3, 7, 14, 30, 110, 400])
    };
    let mut steps = 0;
    for seed in 0..seeds {
        for &size in sizes {
            steps += sweep(seed * 1000 + size, size);
        }
    }
    assert!(
        steps * sweep::STRIDE as usize > 2 * seeds as usize * sizes.len(),
        "only {steps} steps swept"
    );
}
