//! The crash sweep: random cases of every mutating operation, on trees from one leaf to
//! three levels of owning keys (segment strings, moved between nodes with their
//! relocation hook) and values that must be dropped at most once, are stopped at each of
//! their steps in turn (`crashes_at`, the containers' crash points, see `src/crash.rs`,
//! the strings' own included), as a SIGKILL there would stop them.
//! After each stop the map must be one `validate` accepts (read from a writable copy of
//! the segment, so that each node and key is owned through its one pointer), hold no value twice, keep working (more operations match a model of what it
//! held), and drop each value at most once; the segment then checks sound. Under Miri
//! too, which checks all of it for undefined behaviour.

use std::collections::{BTreeMap, HashSet};

use shmkit_containers::{Map, MapExt, String};
use shmkit_runtime::__private::crash::crashes_at;
use shmkit_runtime::{ManagedHeapMemory, ShmMut};
use shmkit_test_support::{sweep, Rng, Tracked};

type Tree<'a> = ShmMut<'a, Map<String, Tracked>>;

/// The string key of `k`, ordered as `k`.
fn key(k: u64) -> std::string::String {
    format!("key {k:06}")
}

/// A random case of one of the mutating methods (those that walk the whole tree only on
/// small trees, whose every step is swept).
fn operation(map: &mut Tree<'_>, rng: &mut Rng, keys: u64, next_id: &mut u64) {
    let k = key(rng.range(0, keys));
    *next_id += 1;
    let id = *next_id;
    let kinds = if map.len() <= 30 { 9 } else { 7 };
    match rng.range(0, kinds) {
        0 | 1 => drop(map.insert(k.as_str(), Tracked(id)).unwrap()),
        2 | 3 => drop(map.remove(k.as_str())),
        4 => drop(map.pop_first_with(|_, _| ())),
        5 => drop(map.pop_last_with(|_, _| ())),
        6 => drop(
            map.entry(k.as_str())
                .unwrap()
                .or_insert(Tracked(id))
                .unwrap(),
        ),
        7 => map.retain(|key, _| key.as_str() > k.as_str()),
        _ => map.clear(),
    }
}

/// The elements as (key, value id), keys strictly increasing and each id once.
fn pairs(map: &Map<String, Tracked>) -> BTreeMap<std::string::String, u64> {
    let listed: Vec<(&str, u64)> = map.iter().map(|(k, v)| (k.as_str(), v.0)).collect();
    assert!(
        listed.windows(2).all(|w| w[0].0 < w[1].0),
        "keys out of order"
    );
    let ids: HashSet<u64> = listed.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids.len(), listed.len(), "a value counted twice");
    assert!(listed.len() <= map.len(), "a length below the elements");
    listed
        .into_iter()
        .map(|(k, id)| (k.to_owned(), id))
        .collect()
}

/// Builds a random tree of `size` elements, then stops one random operation at each of
/// its steps in turn; the steps swept.
fn sweep(seed: u64, size: u64) -> usize {
    let mut steps = 0;
    for n in sweep::steps((seed + size) as u32) {
        Tracked::reset();
        // Small under Miri, which copies the whole segment to revalidate it.
        let mut seg = ManagedHeapMemory::new(if cfg!(miri) { 1 << 16 } else { 1 << 18 }).unwrap();
        seg.construct("m", Map::<String, Tracked>::new()).unwrap();
        let mut rng = Rng::new(seed);
        let keys = size * 2;
        let mut next_id = 0;
        let finished = {
            let mut map = seg.find_mut::<Map<String, Tracked>>("m").unwrap().unwrap();
            for _ in 0..size {
                next_id += 1;
                let k = key(rng.range(0, keys));
                drop(map.insert(k.as_str(), Tracked(next_id)).unwrap());
            }
            crashes_at(n, || operation(&mut map, &mut rng, keys, &mut next_id))
        };
        sweep::revalidate::<Map<String, Tracked>>(&mut seg, "m").unwrap();
        let mut map = seg.find_mut::<Map<String, Tracked>>("m").unwrap().unwrap();
        let mut model = pairs(&map);
        for _ in 0..if cfg!(miri) { 10 } else { 30 } {
            let k = key(rng.range(0, keys));
            next_id += 1;
            match rng.range(0, 4) {
                0 | 1 => assert_eq!(
                    map.insert(k.as_str(), Tracked(next_id))
                        .unwrap()
                        .map(|v| v.0),
                    model.insert(k, next_id)
                ),
                2 => assert_eq!(map.remove(k.as_str()).map(|v| v.0), model.remove(&k)),
                _ => assert_eq!(
                    map.pop_first_with(|k, v| (k.to_string(), v.0)),
                    model.pop_first()
                ),
            }
        }
        assert_eq!(pairs(&map), model, "seed {seed:#x}, stopped at step {n}");
        assert!(seg.destroy::<Map<String, Tracked>>("m").unwrap());
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
        (2, &[4, 24])
    } else {
        (30, &[1, 5, 11, 30, 80, 300, 1200])
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
