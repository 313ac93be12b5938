//! Group `rwlock`: the uncontended read lock, shmkit's beside std's in one process run.
//!
//! - `rwlock_read_uncontended`: 1e6 × { `read()`; `escape(*guard)`; drop } on a
//!   `shmkit::sync::RwLock<u64>` constructed in a fresh shm segment (one thread: no
//!   contention, and no writer ever).
//! - `std_rwlock_read`: the same loop on a `std::sync::RwLock<u64>` on the heap.
//!
//! Each loop runs once untimed first (warming caches, the thread's owner id and the
//! registry lookup), then timed. Not in the peer (Boost's sharable mutex has no such line).

use std::sync::RwLock as StdRwLock;

use shmkit::sync::RwLock;

use crate::check_eq;
use crate::segment::{ShmGuard, SEG_SIZE};
use crate::timing::{escape, now, report, secs};

const OPS: u64 = 1_000_000;
const VALUE: u64 = 0x5EED;

pub fn run() {
    let guard = ShmGuard::new("rwlock");
    let seg = guard.create_prefaulted(SEG_SIZE);
    let lock = match seg.construct("rwlock", RwLock::new(VALUE)) {
        Ok(lock) => lock,
        Err(e) => panic!("construct the RwLock failed: {e}"),
    };
    let shmkit_read = || match lock.read() {
        Ok(guard) => escape(*guard),
        Err(e) => panic!("read lock failed: {e}"),
    };
    let std_lock = StdRwLock::new(VALUE);
    let std_read = || match std_lock.read() {
        Ok(guard) => escape(*guard),
        Err(e) => panic!("std read lock failed: {e}"),
    };
    report("rwlock_read_uncontended", OPS, timed(shmkit_read));
    report("std_rwlock_read", OPS, timed(std_read));
}

/// Seconds for `OPS` × `read`, after one untimed pass; checks the values read.
fn timed(read: impl Fn() -> u64) -> f64 {
    let mut sum = 0u64;
    for _ in 0..OPS {
        sum = sum.wrapping_add(read());
    }
    let t0 = now();
    for _ in 0..OPS {
        sum = sum.wrapping_add(read());
    }
    let t1 = now();
    check_eq!(sum, 2 * OPS * VALUE);
    secs(t0, t1)
}
