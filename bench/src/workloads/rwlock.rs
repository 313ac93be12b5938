//! Group `rwlock`: the uncontended read lock, shmkit's beside std's in one process run.
//!
//! - `rwlock_read_uncontended`: 1e6 × { `read()`; `escape(*guard)`; drop } on a
//!   `shmkit::sync::RwLock<u64>` constructed in a fresh shm segment (one thread: no
//!   contention, and no writer ever).
//! - `std_rwlock_read`: the same loop on a `std::sync::RwLock<u64>` on the heap.
//!
//! Each loop runs once untimed first (warming caches, the thread's owner id and the
//! registry lookup), then [`PASSES`] timed passes of each alternate, and each line reports
//! its median pass: a burst of load from elsewhere on the machine then skews neither line
//! (the ratio of the two is the figure that matters). Not in the peer (Boost's sharable
//! mutex has no such line).

use std::sync::RwLock as StdRwLock;

use shmkit::sync::RwLock;

use crate::check_eq;
use crate::segment::{ShmGuard, SEG_SIZE};
use crate::timing::{escape, now, report, secs};

const OPS: u64 = 1_000_000;
/// Timed passes of each loop, alternating.
const PASSES: usize = 5;
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
    pass(&shmkit_read);
    pass(&std_read);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..PASSES {
        ours.push(timed(&shmkit_read));
        theirs.push(timed(&std_read));
    }
    report("rwlock_read_uncontended", OPS, median(ours));
    report("std_rwlock_read", OPS, median(theirs));
}

/// `OPS` × `read`, checking the values read.
fn pass(read: &impl Fn() -> u64) {
    let mut sum = 0u64;
    for _ in 0..OPS {
        sum = sum.wrapping_add(read());
    }
    check_eq!(sum, OPS * VALUE);
}

/// Seconds for one [`pass`].
fn timed(read: &impl Fn() -> u64) -> f64 {
    let t0 = now();
    pass(read);
    secs(t0, now())
}

fn median(mut seconds: Vec<f64>) -> f64 {
    seconds.sort_by(f64::total_cmp);
    seconds[seconds.len() / 2]
}
