//! Groups `map` (lines `map_insert`, `map_find`), `map_nodealloc` and `unordered_map`
//! (`unordered_map_insert`, `unordered_map_find`): the peer's workloads 7 and 8 on the
//! segment `Map` (a B-tree) and `HashMap`. The
//! map is the named object "map" in a fresh 512 MiB segment; 1,000,000 xorshift64 keys are
//! made untimed; timed: `insert(keys[i], i)` for every key, then a lookup of every key in
//! insertion order, summing the values; plus the `# mem` line (segment bytes per entry,
//! with the map object, its named-object entry and its table).
//!
//! The segment is mapped exclusively, as in `vec_push`: the peer inserts from its one
//! process without a lock. The peer's `boost::unordered_map` hashes `uint64_t` with the
//! identity; the segment `HashMap`'s fixed hasher costs one multiply per integer. The
//! peer's `map_nodealloc` puts its red-black tree's nodes in a node pool; the B-tree's
//! nodes hold many entries each and come from the segment allocator's thread cache, so
//! that group runs the same `Map` (reported under the peer's line names). A node pool
//! would not help it: the `node_alloc` group shows the thread cache faster than any pool
//! shared by processes (ARCHITECTURE.md, "Node pools, measured and not kept").

use shmkit::containers::{HashMap, HashMapExt, Map, MapExt};
use shmkit::{Exclusive, ManagedSharedMemory, ShmMut};

use crate::rng::make_keys;
use crate::segment::{check_segment, used, ShmGuard, SEG_SIZE};
use crate::timing::{now, print_line, report, secs};
use crate::{check, check_eq};

const N: u64 = 1_000_000;

/// What the workload does with a segment map: the std-named methods of both maps.
trait SegmentMap: shmkit::ShmSafe + Default + Sized {
    fn put(map: &mut ShmMut<'_, Self>, k: u64, v: u64);
    fn value(&self, k: u64) -> Option<u64>;
    fn count(&self) -> usize;
}

impl SegmentMap for HashMap<u64, u64> {
    #[inline]
    fn put(map: &mut ShmMut<'_, Self>, k: u64, v: u64) {
        if let Err(e) = map.insert(k, v) {
            panic!("insert {k} failed: {e}");
        }
    }
    #[inline]
    fn value(&self, k: u64) -> Option<u64> {
        self.get(&k).copied()
    }
    fn count(&self) -> usize {
        self.len()
    }
}

impl SegmentMap for Map<u64, u64> {
    #[inline]
    fn put(map: &mut ShmMut<'_, Self>, k: u64, v: u64) {
        if let Err(e) = map.insert(k, v) {
            panic!("insert {k} failed: {e}");
        }
    }
    #[inline]
    fn value(&self, k: u64) -> Option<u64> {
        self.get(&k).copied()
    }
    fn count(&self) -> usize {
        self.len()
    }
}

/// The workload on the map type `M`, reporting `insert_line` and `find_line`.
fn run_on<M: SegmentMap>(tag: &str, insert_line: &str, find_line: &str) {
    let keys = make_keys(N as usize);
    let guard = ShmGuard::new(tag);
    let mut seg: ManagedSharedMemory<Exclusive> = guard.create_exclusive_prefaulted(SEG_SIZE);
    let used0 = used(&seg);
    check!(seg.construct("map", M::default()).is_ok());
    let mut map = match seg.find_mut::<M>("map") {
        Ok(Some(m)) => m,
        other => panic!("finding the map failed: {:?}", other.err()),
    };

    let t0 = now();
    for (i, &k) in keys.iter().enumerate() {
        M::put(&mut map, k, i as u64);
    }
    let t1 = now();

    let (mut sum, mut missing) = (0u64, 0u64);
    let t2 = now();
    for &k in &keys {
        match map.value(k) {
            Some(v) => sum = sum.wrapping_add(v),
            None => missing += 1,
        }
    }
    let t3 = now();
    check_eq!(missing, 0);
    check_eq!(map.count() as u64, N);
    check!(sum == N * (N - 1) / 2, "sum {sum}");
    report(insert_line, N, secs(t0, t1));
    report(find_line, N, secs(t2, t3));
    let bytes = used(&seg) - used0;
    print_line(&format!(
        "# mem {insert_line}: entries={N} used_bytes={bytes} used_per_entry={:.3}",
        bytes as f64 / N as f64
    ));
    check!(matches!(seg.destroy::<M>("map"), Ok(true)));
    check_eq!(used(&seg), used0);
    check_segment(&seg);
}

/// Group `map`.
pub fn run_ordered() {
    run_on::<Map<u64, u64>>("map", "map_insert", "map_find");
}

/// Group `map_nodealloc` (see the module docs).
pub fn run_ordered_nodealloc() {
    run_on::<Map<u64, u64>>("mapna", "map_nodealloc_insert", "map_nodealloc_find");
}

/// Group `unordered_map`.
pub fn run_unordered() {
    run_on::<HashMap<u64, u64>>("umap", "unordered_map_insert", "unordered_map_find");
}
