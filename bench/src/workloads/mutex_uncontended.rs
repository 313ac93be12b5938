//! Group `mutex_uncontended` (lines `mutex_uncontended`, `std_mutex_uncontended`; not in
//! the peer): 1,000,000 × `*m.lock() += 1` (lock, add, unlock) by one thread, on a
//! `shmkit::sync::Mutex<u64>` in a fresh 64 MiB shared memory segment (pre-faulted), then on
//! a `std::sync::Mutex<u64>` on the heap, in the same process. The counter is checked
//! afterwards, untimed.

use shmkit::sync::Mutex;

use crate::check_eq;
use crate::segment::{ShmGuard, SMALL_SEG_SIZE};
use crate::timing::{escape, now, report, secs};

const ITERATIONS: u64 = 1_000_000;

pub fn run() {
    let guard = ShmGuard::new("mutex");
    let seg = guard.create_prefaulted(SMALL_SEG_SIZE);
    let m = match seg.construct("m", Mutex::new(0u64)) {
        Ok(m) => escape(m),
        Err(e) => panic!("construct \"m\" failed: {e}"),
    };
    let t0 = now();
    for _ in 0..ITERATIONS {
        match m.lock() {
            Ok(mut g) => *g += 1,
            Err(e) => panic!("lock failed: {e}"),
        }
    }
    let t1 = now();
    check_eq!(*m.lock().unwrap_or_else(|e| panic!("{e}")), ITERATIONS);
    report("mutex_uncontended", ITERATIONS, secs(t0, t1));

    let m = escape(Box::new(std::sync::Mutex::new(0u64)));
    let t0 = now();
    for _ in 0..ITERATIONS {
        match m.lock() {
            Ok(mut g) => *g += 1,
            Err(e) => panic!("lock failed: {e}"),
        }
    }
    let t1 = now();
    check_eq!(*m.lock().unwrap_or_else(|e| panic!("{e}")), ITERATIONS);
    report("std_mutex_uncontended", ITERATIONS, secs(t0, t1));
}
