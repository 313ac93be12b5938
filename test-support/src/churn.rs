//! Index churn that an observer's lock-free lookups race (`tests/segment/observer.rs`
//! with a writer thread, `tests/multiprocess/observer.rs` with a writer process; the
//! child binary compiles this module too): objects constructed one after another (the
//! hash table grows under the probes), constructions undone (their entries retired), some
//! published together under the index lock, the index reserved far ahead (a table
//! replaced at once). Each kept object holds a value its name determines, so a lookup
//! that lands on another object's bytes, or on a retired entry, is caught.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shmkit_runtime::{Error, ManagedSharedMemory, SharedMemoryObserver};

/// The `AtomicU64` holding how many kept objects exist (constructed before the churn).
pub const MADE: &str = "made";

/// How long one lookup may wait for a writer holding the index lock (a loaded machine
/// may preempt it there).
const PATIENCE: Duration = Duration::from_secs(20);

/// The name of the `i`th object the churn keeps.
pub fn kept(i: usize) -> String {
    format!("kept-{i}")
}

/// The name of the `i`th construction the churn undoes: never an object.
pub fn undone(i: usize) -> String {
    format!("undone-{i}")
}

/// What the `i`th kept object holds.
pub fn value(i: usize) -> u64 {
    (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

/// Yields one element but claims two: the construction is undone.
struct Short(bool);

impl Iterator for Short {
    type Item = AtomicU64;
    fn next(&mut self) -> Option<AtomicU64> {
        let first = !std::mem::replace(&mut self.0, true);
        first.then(|| AtomicU64::new(u64::MAX))
    }
}

impl ExactSizeIterator for Short {
    fn len(&self) -> usize {
        2
    }
}

/// Constructs `kept(i)` for `i` in `0..n`, counting them in [`MADE`]: every 7th after an
/// undone construction, every 50th together with an undone one in one `atomic_func`,
/// and every 500th after reserving the named index for four times its objects.
pub fn churn(seg: &ManagedSharedMemory, n: usize) {
    let made = seg
        .find::<AtomicU64>(MADE)
        .expect("the counter's lookup")
        .expect("the counter is constructed before the churn");
    let undo = |i| {
        let undone = seg.construct_from_iter(undone(i).as_str(), Short(false));
        assert!(
            matches!(undone, Err(Error::IteratorTooShort { .. })),
            "{undone:?}"
        );
    };
    for i in 0..n {
        if i % 500 == 0 {
            seg.reserve_named_objects(4 * seg.num_named_objects())
                .expect("room to reserve");
        }
        if i % 7 == 0 {
            undo(i);
        }
        let keep = || {
            seg.construct(kept(i).as_str(), AtomicU64::new(value(i)))
                .expect("room for the kept objects");
        };
        if i % 50 == 0 {
            seg.atomic_func(|| {
                keep();
                undo(i);
            })
            .expect("the index lock");
        } else {
            keep();
        }
        made.store(i as u64 + 1, Ordering::Release);
    }
}

/// Looks the kept and undone objects of `range` up through `observer`: a kept one found
/// holds its value, an undone one is never found. How many kept ones were found.
pub fn look(observer: &SharedMemoryObserver, range: Range<usize>) -> usize {
    let mut found = 0;
    for i in range {
        match observer.find_timeout::<AtomicU64>(&kept(i), PATIENCE) {
            Ok(Some(v)) => {
                assert_eq!(v.load(), value(i), "{} holds another value", kept(i));
                found += 1;
            }
            Ok(None) => {}
            Err(e) => panic!("{}: {e}", kept(i)),
        }
        match observer.find_timeout::<AtomicU64>(&undone(i), PATIENCE) {
            Ok(None) => {}
            other => panic!("{}, never an object: {other:?}", undone(i)),
        }
    }
    found
}

/// Looks objects up near the churn's progress until it has made `n` (within `limit`),
/// then checks that every one is there.
pub fn watch(observer: &SharedMemoryObserver, n: usize, limit: Duration) {
    let made = observer
        .find::<AtomicU64>(MADE)
        .expect("the counter's lookup")
        .expect("the counter is constructed before the churn");
    let started = std::time::Instant::now();
    let mut rounds = 0u64;
    loop {
        let now = made.load() as usize;
        if now >= n {
            break;
        }
        assert!(started.elapsed() < limit, "the churn made {now} of {n}");
        look(observer, now.saturating_sub(16)..now + 4);
        rounds += 1;
    }
    assert_eq!(look(observer, 0..n), n, "after {rounds} rounds of lookups");
}
