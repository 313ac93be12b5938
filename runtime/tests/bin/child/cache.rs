//! The child of the thread-cache tests (`alloc/cache.rs`).

use shmkit_runtime::ManagedSharedMemory;

use crate::{env, tell_parent, wait_for_parent};

/// Caches blocks in the shared memory segment `SHMKIT_NAME`, reports how much its thread
/// holds, then waits to be killed.
pub fn cache_and_wait() {
    let seg = ManagedSharedMemory::open(env("SHMKIT_NAME")).unwrap();
    let blocks: Vec<_> = (0..30).map(|_| seg.allocate(100).unwrap()).collect();
    // SAFETY: allocated above, freed once each.
    unsafe {
        for p in &blocks {
            seg.deallocate(*p).unwrap();
        }
    }
    tell_parent(&format!("cached {}", seg.cached_memory()));
    wait_for_parent();
}
