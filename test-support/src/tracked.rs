//! [`Tracked`]: a plain value with an id that records its drops, for crash sweeps that
//! check a container drops each element at most once, whatever step it was stopped at.

use std::cell::RefCell;
use std::collections::HashSet;

use shmkit_runtime::{PositionIndependent, ShmImmutable, ShmSafe};

thread_local! {
    /// The ids of the `Tracked` values this thread dropped since its last [`Tracked::reset`].
    static DROPPED: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

/// A value with an id whose drop panics if a value of that id was dropped before (since
/// the thread's last [`reset`](Tracked::reset)).
#[derive(Debug, PartialEq, Eq)]
pub struct Tracked(pub u64);

impl Tracked {
    /// Forgets the drops recorded so far on this thread (ids may be used again).
    pub fn reset() {
        DROPPED.with(|d| d.borrow_mut().clear());
    }
}

// SAFETY: a plain integer; its drop glue only records the id.
unsafe impl ShmSafe for Tracked {
    const ALL_BIT_PATTERNS_VALID: bool = true;
}
// SAFETY: as above: its bytes mean the same anywhere.
unsafe impl PositionIndependent for Tracked {}
// SAFETY: no interior mutability.
unsafe impl ShmImmutable for Tracked {}

impl Drop for Tracked {
    fn drop(&mut self) {
        let first = DROPPED.with(|d| d.borrow_mut().insert(self.0));
        assert!(first, "value {} dropped twice", self.0);
    }
}
