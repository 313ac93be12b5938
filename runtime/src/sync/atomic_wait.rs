//! Waiting on an [`AtomicU32`] until another thread or process changes it and says so: the
//! shared futex under every shmkit lock, for protocols of one's own (a doorbell, a sequence
//! number, a state word in a segment).

use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicU32, Ordering};

use crate::robust::wait::futex as wait;

/// Why [`atomic_wait`] returned. Only [`TimedOut`](Self::TimedOut) means anything for
/// sure: whatever the reason, re-check the condition you wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitOutcome {
    /// The atomic no longer held `expected` when the call returned.
    Changed,
    /// Woken (by a notify, a signal or spuriously) while the atomic holds `expected`
    /// (again, or still).
    Woken,
    /// The timeout passed with the atomic holding `expected`.
    TimedOut,
}

/// Sleeps while `atomic` holds `expected`, until a [`atomic_notify_one`] or
/// [`atomic_notify_all`] on it, or for at most `timeout` (None: no limit).
///
/// Checking the value and falling asleep are one step (in the kernel), so a change plus
/// notify made after the caller last read `expected` is never missed. Wake-ups without a
/// notify happen (signals, other users of the address): call it in a loop around the
/// condition. Works across processes when the atomic lives in a shared mapping (the futex
/// is the shared kind), also at different addresses in each process.
pub fn atomic_wait(atomic: &AtomicU32, expected: u32, timeout: Option<Duration>) -> WaitOutcome {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let left = match deadline {
        Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Some(left),
            _ => return outcome(atomic, expected, true),
        },
        None => None,
    };
    wait::wait(atomic, expected, left);
    outcome(
        atomic,
        expected,
        deadline.is_some_and(|d| Instant::now() >= d),
    )
}

fn outcome(atomic: &AtomicU32, expected: u32, late: bool) -> WaitOutcome {
    if atomic.load(Ordering::Acquire) != expected {
        WaitOutcome::Changed
    } else if late {
        WaitOutcome::TimedOut
    } else {
        WaitOutcome::Woken
    }
}

/// Wakes one thread (of any process) sleeping in [`atomic_wait`] on `atomic`. Change the
/// atomic first: a waiter that has not fallen asleep yet sees the new value instead.
pub fn atomic_notify_one(atomic: &AtomicU32) {
    wait::wake(atomic, 1);
}

/// Wakes every thread (of any process) sleeping in [`atomic_wait`] on `atomic`.
pub fn atomic_notify_all(atomic: &AtomicU32) {
    wait::wake(atomic, i32::MAX as u32);
}
