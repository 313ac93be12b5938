//! [`Semaphore`]: a counting semaphore in a segment, Boost's `interprocess_semaphore`.

use std::fmt;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::layout::{compound_fingerprint, PositionIndependent, ShmSafe};
use crate::robust::atomic::{const_unless_loom, seqcst_under_the_model, AtomicU32, Ordering};
use crate::robust::crash::point;
use crate::robust::{wait, LIVENESS_POLL, SPINS};

/// A counting semaphore for threads and processes: [`wait`](Self::wait) takes a unit,
/// blocking while there is none; [`post`](Self::post) gives one back (or a new one).
///
/// # A unit has no owner
///
/// As with POSIX and Boost semaphores, nothing records who took a unit: a process that dies
/// (or a thread that forgets to post) while it holds one never gives it back, and the count
/// stays one lower for good. No poison says so. When a unit stands for something that
/// must come back if its holder dies, use a robust lock per unit instead: an array of
/// [`Mutex`](super::Mutex)es, one per unit, where holding a unit is holding a guard
/// (`try_lock` over the array finds a free one) and a dead holder's unit is taken over with
/// [`PoisonCause::OwnerDied`](super::PoisonCause::OwnerDied); or a `Mutex<u32>` counter
/// whose takers each also hold their own unit's `Mutex`, so that a dead one is found.
///
/// # Waiting, and dead waiters
///
/// A waiter looks at the count [`SPINS`](super::SPINS) times, then announces itself in a
/// waiter count and sleeps on the count word (a shared futex); a post wakes one sleeper
/// whenever a waiter is announced, so no post is lost. A waiter that dies leaves its
/// announcement behind: later posts then make a wake-up call for nobody (a system call,
/// never a wrong result). A waiter that dies in the instant between being woken and taking
/// its unit cannot take the unit, but it used up the wake-up: the unit stays counted and the
/// other sleepers notice it within [`LIVENESS_POLL`](super::LIVENESS_POLL), the longest a
/// sleeper sleeps before it looks again. No fairness is promised: a waiter that arrives while
/// a unit is free may take it before a sleeper wakes.
///
/// Eight bytes (the count and the waiter count); all-zero bytes are a semaphore with count 0
/// and no waiters. Any bytes are a working semaphore (a count of `u32::MAX` refuses posts
/// with [`Error::Overflow`] until a wait; a forged waiter count only costs wake-up calls).
#[repr(C)]
#[derive(Default)]
pub struct Semaphore {
    count: AtomicU32,
    /// How many waiters may sleep: a hint for `post` (never below the number that do).
    waiters: AtomicU32,
}

impl Semaphore {
    const_unless_loom! {
        /// A semaphore holding `initial` units.
        pub fn new(initial: u32) -> Self {
            Semaphore {
                count: AtomicU32::new(initial),
                waiters: AtomicU32::new(0),
            }
        }
    }

    /// Adds a unit and wakes a waiter if one may sleep. [`Error::Overflow`] when the count
    /// is `u32::MAX` already (the unit is not added).
    #[inline]
    pub fn post(&self) -> Result<()> {
        let mut count = self.count.load(Ordering::Relaxed);
        loop {
            if count == u32::MAX {
                return Err(Error::Overflow {
                    what: format!("semaphore at {self:p}"),
                    max: u32::MAX.into(),
                });
            }
            // SeqCst here and on the waiter count below, against the waiter's SeqCst
            // announcement: either this post sees the announcement, or the waiter's sleep
            // (which reads the count in the kernel, after a full barrier) sees the new unit.
            point("semaphore post: before the increment");
            match self.count.compare_exchange_weak(
                count,
                count + 1,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => count = now,
            }
        }
        point("semaphore post: incremented");
        seqcst_under_the_model();
        if self.waiters.load(Ordering::SeqCst) != 0 {
            point("semaphore post: about to wake");
            wait::wake(&self.count, 1);
        }
        Ok(())
    }

    /// Takes a unit if there is one now.
    #[inline]
    pub fn try_wait(&self) -> bool {
        let mut count = self.count.load(Ordering::Relaxed);
        while count != 0 {
            point("semaphore wait: before the decrement");
            match self.count.compare_exchange_weak(
                count,
                count - 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    point("semaphore wait: unit taken");
                    return true;
                }
                Err(now) => count = now,
            }
        }
        false
    }

    /// Blocks until it takes a unit.
    #[inline]
    pub fn wait(&self) {
        if !self.try_wait() {
            self.wait_contended(None);
        }
    }

    /// Blocks until it takes a unit (true) or `timeout` has passed (false).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.try_wait() || self.wait_contended(Instant::now().checked_add(timeout))
    }

    #[cold]
    fn wait_contended(&self, deadline: Option<Instant>) -> bool {
        for _ in 0..SPINS {
            std::hint::spin_loop();
            if self.count.load(Ordering::Relaxed) != 0 && self.try_wait() {
                return true;
            }
        }
        loop {
            if self.try_wait() {
                return true;
            }
            let mut poll = LIVENESS_POLL;
            if let Some(deadline) = deadline {
                match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => poll = poll.min(left),
                    _ => return false,
                }
            }
            point("semaphore wait: counting in");
            self.waiters.fetch_add(1, Ordering::SeqCst);
            point("semaphore wait: counted in, about to sleep");
            // Sleeps only while the count is still 0, as the kernel checks atomically.
            wait::wait(&self.count, 0, Some(poll));
            point("semaphore wait: awake");
            self.waiters.fetch_sub(1, Ordering::Relaxed);
            point("semaphore wait: counted out");
        }
    }

    /// How many waiters announced themselves, for tests that wait until they sleep.
    #[cfg(test)]
    pub(crate) fn waiters_hint(&self) -> u32 {
        self.waiters.load(Ordering::SeqCst)
    }

    /// The count now (units free to take); it may change at once.
    pub fn value(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }
}

/// The count and how many waiters announced themselves; never blocks.
impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.value())
            .field("waiters", &self.waiters.load(Ordering::Relaxed))
            .finish()
    }
}

// SAFETY: two atomic counters: any bytes are a state (see the type docs), nothing to relocate.
unsafe impl ShmSafe for Semaphore {
    const LAYOUT_FINGERPRINT: u64 = compound_fingerprint("Semaphore", &[]);
    const ALL_BIT_PATTERNS_VALID: bool = true;

    fn type_fingerprint() -> u64 {
        Self::LAYOUT_FINGERPRINT
    }
}

// SAFETY: counters mean the same at any address.
unsafe impl PositionIndependent for Semaphore {}
