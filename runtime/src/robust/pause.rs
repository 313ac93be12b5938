//! How a waiter lets time pass without sleeping on a word: yielding the CPU, a short sleep,
//! the clock, and the CPU it runs on. The lock algorithms call these, not the OS, so that
//! under `--cfg loom` the model stands in (see `super::model`):
//!
//! - [`yield_now`] is nothing there: a bounded number of yields only shapes timing, which
//!   the model explores anyway, and loom's yield would put the waiter last, so that it
//!   would hardly ever reach the sleep the model must check.
//! - [`sleep`] is loom's yield: it ends an unbounded retry loop's round, and the model must
//!   let the others run before the next.
//! - [`now`] stands still (loom replays executions, which must not depend on real time),
//!   and jumps [`LIVENESS_POLL`](super::LIVENESS_POLL) ahead at each call once a killed
//!   model thread ended, so that a waiter that measures how long a dead owner's work stood
//!   still gives up then, as the model's timed futex waits do.
//! - [`this_cpu`] is unknown there.

use std::time::{Duration, Instant};

/// Yields the CPU to another runnable thread (nothing under the model).
#[inline]
pub(crate) fn yield_now() {
    #[cfg(not(loom))]
    std::thread::yield_now();
}

/// Sleeps for `duration` (under the model: lets the other threads run).
pub(crate) fn sleep(duration: Duration) {
    #[cfg(not(loom))]
    std::thread::sleep(duration);
    #[cfg(loom)]
    {
        let _ = duration;
        loom::thread::yield_now();
    }
}

/// The time now, for measuring how long something stood still.
#[inline]
pub(crate) fn now() -> Instant {
    #[cfg(not(loom))]
    return Instant::now();
    #[cfg(loom)]
    return super::model::now();
}

/// The CPU this thread runs on, plus one (0 if unknown: under Miri and the model).
#[inline]
pub(crate) fn this_cpu() -> u32 {
    if cfg!(any(miri, loom)) {
        return 0;
    }
    // SAFETY: no arguments; glibc reads it from the thread's rseq area.
    (unsafe { libc::sched_getcpu() } as u32).wrapping_add(1)
}
