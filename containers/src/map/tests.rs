//! The tree's own invariants, which the public API cannot see: after every operation that
//! completes, each node other than the root holds at least `B - 1` keys, the root at
//! least one, keys are strictly increasing across the whole tree, every leaf is at level
//! 0, and the length counts exactly the elements. Checked after random operations at
//! several heights (the contents themselves are checked against std in the test binary).

use std::collections::BTreeMap;

use shmkit_runtime::ManagedHeapMemory;
use shmkit_test_support::Rng;

use super::node::{Node, B, CAPACITY};
use super::{Map, MapExt};

/// Checks the invariants; the height.
fn check(map: &Map<u64, u64>) -> usize {
    let Some(root) = map.root() else {
        assert!(map.is_empty(), "an empty tree counts elements");
        return 0;
    };
    assert!(root.len() >= 1, "an empty root");
    let mut last = None;
    let counted = subtree(root, root.level(), true, &mut last);
    assert_eq!(counted, map.len(), "the length");
    root.level()
}

/// Checks the subtree at `node`; the elements in it. `last` is the key before it.
fn subtree(node: Node<u64, u64>, level: usize, root: bool, last: &mut Option<u64>) -> usize {
    assert_eq!(node.level(), level);
    let len = node.len();
    assert!(len <= CAPACITY);
    assert!(
        root || len >= B - 1,
        "a node of {len} keys at level {level}"
    );
    let mut counted = len;
    for i in 0..=len {
        if level > 0 {
            // SAFETY: an internal node and `i <= len`.
            counted += subtree(unsafe { node.child(i) }, level - 1, false, last);
        }
        if i < len {
            // SAFETY: `i < len`, the map borrowed by the caller.
            let key = unsafe { *node.key_ref(i) };
            assert!(last.is_none_or(|l| l < key), "{last:?} before {key}");
            *last = Some(key);
        }
    }
    counted
}

/// Random inserts and removes over `keys` keys, checked against std and the invariants.
fn churn(seed: u64, keys: u64, ops: usize, check_every: usize) -> usize {
    let mut seg = ManagedHeapMemory::new(16 << 20).unwrap();
    seg.construct("m", Map::<u64, u64>::new()).unwrap();
    let mut map = seg.find_mut::<Map<u64, u64>>("m").unwrap().unwrap();
    let mut model = BTreeMap::new();
    let mut rng = Rng::new(seed);
    let mut tallest = 0;
    for step in 0..ops {
        let k = rng.range(0, keys);
        match rng.range(0, 8) {
            0..=3 => assert_eq!(
                map.insert(k, step as u64).unwrap(),
                model.insert(k, step as u64)
            ),
            4 | 5 => assert_eq!(map.remove(&k), model.remove(&k)),
            6 => assert_eq!(map.pop_first(), model.pop_first()),
            _ => assert_eq!(map.pop_last(), model.pop_last()),
        }
        if step % check_every == 0 {
            tallest = tallest.max(check(&map));
            assert!(map
                .iter()
                .map(|(k, v)| (*k, *v))
                .eq(model.iter().map(|(k, v)| (*k, *v))));
        }
    }
    // Empty it in a random order, checking as it shrinks through every height.
    let mut left: Vec<u64> = model.keys().copied().collect();
    while !left.is_empty() {
        let k = left.swap_remove(rng.range(0, left.len() as u64) as usize);
        assert_eq!(map.remove(&k), model.remove(&k));
        if left.len() % check_every == 0 {
            check(&map);
        }
    }
    assert!(map.is_empty());
    assert!(seg.destroy::<Map<u64, u64>>("m").unwrap());
    assert!(seg.all_memory_deallocated());
    tallest
}

#[test]
fn small_trees_keep_the_invariants_after_every_operation() {
    let ops = if cfg!(miri) { 300 } else { 20_000 };
    for seed in [1, 2, 3] {
        churn(seed, 120, ops, 1);
    }
}

#[test]
fn tall_trees_keep_the_invariants() {
    let (keys, ops) = if cfg!(miri) {
        (2000, 2500)
    } else {
        (40_000, 200_000)
    };
    let tallest = churn(7, keys, ops, if cfg!(miri) { 500 } else { 997 });
    assert!(
        tallest >= if cfg!(miri) { 2 } else { 4 },
        "height {tallest}"
    );
}

/// Ascending and descending runs fill nodes at the edges, then empty them from either end.
#[test]
fn sequential_inserts_and_removals_keep_the_invariants() {
    let n = if cfg!(miri) { 300 } else { 20_000 };
    let mut seg = ManagedHeapMemory::new(16 << 20).unwrap();
    seg.construct("m", Map::<u64, u64>::new()).unwrap();
    let mut map = seg.find_mut::<Map<u64, u64>>("m").unwrap().unwrap();
    for round in 0..4u64 {
        for i in 0..n {
            let k = if round % 2 == 0 { i } else { n - i };
            map.insert(k, k).unwrap();
        }
        check(&map);
        for i in 0..n {
            let k = if round < 2 { i } else { n - i };
            map.remove(&k);
            if i % 97 == 0 {
                check(&map);
            }
        }
        map.clear();
        check(&map);
    }
    // Retain removes most of a tall tree, walking on after each removal.
    map.extend((0..n).map(|k| (k, k))).unwrap();
    map.retain(|k, _| k % 7 == 3);
    check(&map);
    assert!(map.keys().copied().eq((0..n).filter(|k| k % 7 == 3)));
}
