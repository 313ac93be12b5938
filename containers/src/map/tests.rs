//! The tree's own invariants, which the public API cannot see: after every operation that
//! completes, each node other than the root holds at least `B - 1` keys, the root at
//! least one, keys are strictly increasing across the whole tree, every leaf is at level
//! 0, and the length counts exactly the elements. Checked after random operations at
//! several heights (the contents themselves are checked against std in the test binary).
//!
//! And crash consistency: an operation stopped before each of its publishing stores in
//! turn leaves a tree that still has every invariant but the occupancy and an exact
//! length (the length may count more), holds no element twice, and keeps working: more
//! operations match a model of what it held, and dropping it drops each element once.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use shmkit_runtime::{ManagedHeapMemory, PositionIndependent, ShmMut, ShmSafe};
use shmkit_test_support::Rng;

use super::node::{Node, B, CAPACITY};
use super::{Map, MapExt};

/// Checks the invariants (`strict`: all of them; else those a crash keeps); the height.
fn check<V>(map: &Map<u64, V>, strict: bool) -> usize {
    let Some(root) = map.root() else {
        assert!(!strict || map.is_empty(), "an empty tree counts elements");
        return 0;
    };
    assert!(!strict || root.len() >= 1, "an empty root");
    let mut last = None;
    let counted = subtree(root, root.level(), strict, true, &mut last);
    if strict {
        assert_eq!(counted, map.len(), "the length");
    } else {
        assert!(counted <= map.len(), "a length below the elements");
    }
    root.level()
}

/// Checks the subtree at `node`; the elements in it. `last` is the key before it.
fn subtree<V>(
    node: Node<u64, V>,
    level: usize,
    strict: bool,
    root: bool,
    last: &mut Option<u64>,
) -> usize {
    assert_eq!(node.level(), level);
    let len = node.len();
    assert!(len <= CAPACITY);
    assert!(
        !strict || root || len >= B - 1,
        "a node of {len} keys at level {level}"
    );
    let mut counted = len;
    for i in 0..=len {
        if level > 0 {
            // SAFETY: an internal node and `i <= len`.
            counted += subtree(unsafe { node.child(i) }, level - 1, strict, false, last);
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
            tallest = tallest.max(check(&map, true));
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
            check(&map, true);
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
        check(&map, true);
        for i in 0..n {
            let k = if round < 2 { i } else { n - i };
            map.remove(&k);
            if i % 97 == 0 {
                check(&map, true);
            }
        }
        map.clear();
        check(&map, true);
    }
    // Retain removes most of a tall tree, walking on after each removal.
    map.extend((0..n).map(|k| (k, k))).unwrap();
    map.retain(|k, _| k % 7 == 3);
    check(&map, true);
    assert!(map.keys().copied().eq((0..n).filter(|k| k % 7 == 3)));
}

thread_local! {
    /// Publishing stores left before the simulated crash (None: no crash planned).
    static CRASH_IN: Cell<Option<usize>> = const { Cell::new(None) };
    /// The ids of the `Tracked` values dropped so far.
    static DROPPED: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

/// The simulated crash: an unwind that skips the rest of the operation.
struct Crash;

/// Called right before every publishing store: stops the operation there when planned.
pub(super) fn crash_point() {
    CRASH_IN.with(|c| match c.get() {
        Some(0) => {
            c.set(None);
            resume_unwind(Box::new(Crash));
        }
        Some(n) => c.set(Some(n - 1)),
        None => {}
    });
}

/// A value with an id that must be dropped at most once.
#[derive(Debug, PartialEq)]
struct Tracked(u64);

// SAFETY: a plain integer; its drop glue only records the id.
unsafe impl ShmSafe for Tracked {
    const ALL_BIT_PATTERNS_VALID: bool = true;
}
// SAFETY: as above: its bytes mean the same anywhere.
unsafe impl PositionIndependent for Tracked {}

impl Drop for Tracked {
    fn drop(&mut self) {
        let first = DROPPED.with(|d| d.borrow_mut().insert(self.0));
        assert!(first, "value {} dropped twice", self.0);
    }
}

type Tree<'a> = ShmMut<'a, Map<u64, Tracked>>;

/// The operations swept: each a random case of one of the mutating methods (those that
/// walk the whole tree only on small ones, whose every store is swept).
fn operation(map: &mut Tree<'_>, rng: &mut Rng, keys: u64, next_id: &mut u64) {
    let k = rng.range(0, keys);
    *next_id += 1;
    let id = *next_id;
    let kinds = if map.len() <= 100 { 9 } else { 7 };
    match rng.range(0, kinds) {
        0 | 1 => drop(map.insert(k, Tracked(id)).unwrap()),
        2 | 3 => drop(map.remove(&k)),
        4 => drop(map.pop_first()),
        5 => drop(map.pop_last()),
        6 => drop(map.entry(k).unwrap().or_insert(Tracked(id)).unwrap()),
        7 => map.retain(|key, _| (key ^ k) % 3 != 0),
        _ => map.clear(),
    }
}

/// The elements of a map as (key, value id), each id once.
fn pairs(map: &Map<u64, Tracked>) -> BTreeMap<u64, u64> {
    let pairs: BTreeMap<u64, u64> = map.iter().map(|(k, v)| (*k, v.0)).collect();
    let ids: HashSet<u64> = pairs.values().copied().collect();
    assert_eq!(ids.len(), pairs.len(), "a value counted twice");
    pairs
}

/// Builds a random tree, then stops one random operation before each of its publishing
/// stores in turn: the tree left must keep the crash invariants, work on (more random
/// operations against a model of what it held), and drop each value at most once.
fn sweep(seed: u64, size: u64) -> usize {
    let mut points = 0;
    for crash_at in 0.. {
        DROPPED.with(|d| d.borrow_mut().clear());
        let mut seg = ManagedHeapMemory::new(4 << 20).unwrap();
        seg.construct("m", Map::<u64, Tracked>::new()).unwrap();
        let mut map = seg.find_mut::<Map<u64, Tracked>>("m").unwrap().unwrap();
        let mut rng = Rng::new(seed);
        let keys = size * 2;
        let mut next_id = 0;
        for _ in 0..size {
            let k = rng.range(0, keys);
            next_id += 1;
            drop(map.insert(k, Tracked(next_id)).unwrap());
        }
        CRASH_IN.with(|c| c.set(Some(crash_at)));
        let crashed = catch_unwind(AssertUnwindSafe(|| {
            operation(&mut map, &mut rng, keys, &mut next_id)
        }));
        CRASH_IN.with(|c| c.set(None));
        match crashed {
            Ok(()) => {
                check(&map, true);
                return points;
            }
            Err(payload) if payload.is::<Crash>() => points += 1,
            Err(payload) => resume_unwind(payload),
        }
        check(&map, false);
        let mut model = pairs(&map);
        for _ in 0..40 {
            let k = rng.range(0, keys);
            next_id += 1;
            match rng.range(0, 4) {
                0 | 1 => assert_eq!(
                    map.insert(k, Tracked(next_id)).unwrap().map(|v| v.0),
                    model.insert(k, next_id)
                ),
                2 => assert_eq!(map.remove(&k).map(|v| v.0), model.remove(&k)),
                _ => assert_eq!(map.pop_first().map(|(k, v)| (k, v.0)), model.pop_first()),
            }
        }
        check(&map, false);
        assert_eq!(pairs(&map), model, "seed {seed:#x}, crash at {crash_at}");
        assert!(seg.destroy::<Map<u64, Tracked>>("m").unwrap());
        seg.check().unwrap();
    }
    unreachable!("the operation completes once the crash point is past its last store")
}

#[test]
fn operations_stopped_at_every_publishing_store_leave_a_working_tree() {
    let (seeds, sizes): (u64, &[u64]) = if cfg!(miri) {
        (3, &[5, 40, 200])
    } else {
        (30, &[1, 5, 11, 30, 80, 300, 1200])
    };
    let mut points = 0;
    for seed in 0..seeds {
        for &size in sizes {
            points += sweep(seed * 1000 + size, size);
        }
    }
    assert!(
        points > seeds as usize * sizes.len(),
        "{points} crash points"
    );
}
