//! [`Condvar`]: `std::sync::Condvar` for shmkit's [`Mutex`], shared by threads and processes.
//!
//! # The algorithm, and why no death can lose a wake-up
//!
//! No word names a waiter, and none holds a count a death can leave wrong in a way that
//! matters:
//!
//! - `seq`, the futex word: every notification adds one. A waiter reads it while it still
//!   holds the mutex, unlocks, and sleeps only while `seq` still holds what it read. A
//!   notifier changes the shared state under the same mutex, so any notification that
//!   state needs comes after the waiter's read and moves `seq` away from it: the kernel
//!   then refuses the sleep, or the notifier's wake finds the sleeper. (Only 2^32
//!   notifications between a waiter's read and its sleep could bring `seq` back.)
//! - `waiters`, a hint: how many waiters may be asleep. It only lets a notifier skip the
//!   `futex` call when nobody sleeps. A waiter counts itself (a sequentially consistent
//!   read-modify-write) before it looks at `seq` a last time and sleeps; a notifier moves
//!   `seq` (likewise) before it reads the hint. Of two such pairs at least one sees the
//!   other's write (Dekker), so either the waiter sees the new `seq` and does not sleep, or
//!   the notifier sees it counted and wakes. A waiter that dies stays counted: the hint
//!   is too high for good, which costs each later notification a `futex` call and nothing
//!   else. It saturates at `u32::MAX` instead of wrapping and never goes below zero, so
//!   no bytes, forged or left by any number of deaths, read 0 while a waiter is counted.
//! - `notifier_cpu` and `same_cpu`, hints for spinning (below); any values only make a
//!   waiter spin when it need not, or not when it could.
//!
//! A sleeper wakes up at least every [`LIVENESS_POLL`] and returns if `seq` moved since it
//! began waiting. That is what keeps a notification from dying with its waiter: the
//! kernel's `notify_one` wake-up may go to a waiter that is killed before it returns (or
//! one that returns and dies before it takes the mutex again), but every other waiter that
//! was waiting then sees `seq` moved at its next poll and returns: a spurious wake-up for
//! all but one of them, which the caller's predicate loop absorbs. A waiter writes
//! nothing but hints, so its death leaves nothing half-done.
//!
//! # Spinning, bounded
//!
//! Before it sleeps, a waiter looks at `seq` [`WAIT_SPINS`] times, a `pause` apart, then
//! yields the CPU [`WAIT_YIELDS`] times, looking after each: a few microseconds in all. A
//! notification that comes meanwhile (the other side of a hand-off taking its turn on
//! another CPU, or on this one while it yields) costs neither side a system call: the
//! notifier calls `futex` only when a waiter is counted asleep. A notifier records its
//! CPU; a waiter notified from its own CPU (both pinned to one) leaves out the `pause`s
//! next time, since spinning there only delays the notifier it waits for.

use std::fmt;
use std::time::{Duration, Instant};

use super::mutex::MutexGuard;
use super::poison::{LockError, LockResult, PoisonError};
use crate::layout::{leaf_fingerprint, PositionIndependent, ShmMut, ShmSafe};
use crate::robust::atomic::{AtomicU32, Ordering};
use crate::robust::{wait, LIVENESS_POLL};

/// How many times a waiter looks at the sequence word, a `pause` apart, before it yields:
/// about a microsecond (0.8 µs where a `pause` takes 26 ns, twice that on CPUs with a long
/// `pause`), long enough for a notifier running on another CPU to take its turn and come
/// back. Skipped while the last wait ended by a notification from the waiter's own CPU
/// (both pinned to one CPU): spinning there only keeps the notifier from running.
pub const WAIT_SPINS: u32 = 32;

/// How many times a waiter then yields the CPU to other runnable threads (`sched_yield`),
/// looking at the sequence word after each, before it sleeps. With the notifier on the
/// same CPU each yield runs it at once, and the hand-off costs neither side a `futex` call;
/// on an otherwise idle CPU each yield returns at once (a system call: about 0.6 µs in a
/// virtual machine, less on bare metal), so the whole wait before sleeping stays within a
/// few microseconds.
pub const WAIT_YIELDS: u32 = 4;

/// A condition variable for shmkit's [`Mutex`](super::Mutex), shared by every thread of
/// every process that maps it: `std::sync::Condvar`, robust.
///
/// - **Deaths.** No waiter is named anywhere, so a waiter that dies (killed while it
///   waits, after it was woken, or holding the mutex again) blocks nobody. A
///   [`notify_one`](Self::notify_one) whose woken waiter dies before it returns still
///   reaches every other waiter that was waiting: each returns within
///   [`LIVENESS_POLL`] of the notification.
/// - **Spurious wake-ups** happen, as with std: always wait in a loop on a predicate
///   ([`wait_while`](Self::wait_while) does). Besides the usual causes, a waiter that has
///   waited longer than [`LIVENESS_POLL`] returns once any notification was made since it
///   began, even one that woke another waiter.
/// - **Fairness.** None: `notify_one` wakes whichever sleeper the kernel picks.
/// - Change the predicate only while holding the mutex the waiters use (notifying may
///   come after unlocking): a change made without it can slip between a waiter's check
///   and its sleep, and its notification be missed, as with std.
/// - Waking, a waiter takes the mutex again; a poisoned mutex is reported as
///   [`Mutex::lock`](super::Mutex::lock) reports it, with the guard inside.
///
/// Sixteen bytes; all-zero bytes are a condition variable nobody waits on, and any bytes
/// are one that works (a count too high costs notifiers a system call each).
#[repr(C)]
#[derive(Default)]
pub struct Condvar {
    /// The futex word: moved by every notification.
    seq: AtomicU32,
    /// How many waiters may be asleep: a hint, never too low while one is counted.
    waiters: AtomicU32,
    /// The CPU the last notification came from, plus one (0: unknown).
    notifier_cpu: AtomicU32,
    /// Nonzero when the last wait to end was notified from its own CPU: spinning would
    /// only keep the next notifier from running, so waiters yield at once.
    same_cpu: AtomicU32,
}

/// Whether a timed wait returned because its time was up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// True when the wait ended at its timeout (with a predicate: still unmet).
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

impl Condvar {
    /// A condition variable nobody waits on.
    pub const fn new() -> Self {
        Condvar {
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            notifier_cpu: AtomicU32::new(0),
            same_cpu: AtomicU32::new(0),
        }
    }

    /// Unlocks the guard's mutex, waits for a notification (or a spurious wake-up), and
    /// takes the mutex again.
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        self.wait_until(guard, None).0
    }

    /// Waits while `condition` holds, checking it under the mutex before each wait.
    pub fn wait_while<'a, T, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: F,
    ) -> LockResult<MutexGuard<'a, T>>
    where
        F: FnMut(ShmMut<'_, T>) -> bool,
    {
        while condition(guard.as_shm_mut()) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// As [`wait`](Self::wait), for at most `timeout`.
    pub fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let (relocked, timed_out) = self.wait_until(guard, Instant::now().checked_add(timeout));
        with_result(relocked, WaitTimeoutResult(timed_out))
    }

    /// As [`wait_while`](Self::wait_while), for at most `timeout` in all: timed out when
    /// `condition` still holds at the end.
    pub fn wait_timeout_while<'a, T, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
        mut condition: F,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)>
    where
        F: FnMut(ShmMut<'_, T>) -> bool,
    {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if !condition(guard.as_shm_mut()) {
                return Ok((guard, WaitTimeoutResult(false)));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok((guard, WaitTimeoutResult(true)));
            }
            let (relocked, timed_out) = self.wait_until(guard, deadline);
            guard = with_result(relocked, WaitTimeoutResult(timed_out))?.0;
        }
    }

    /// Wakes one waiter, if any waits (and, within [`LIVENESS_POLL`], every other one that
    /// has waited that long: see the type docs).
    #[inline]
    pub fn notify_one(&self) {
        if self.notify() {
            wait::wake(&self.seq, 1);
        }
    }

    /// Wakes every waiter.
    #[inline]
    pub fn notify_all(&self) {
        if self.notify() {
            wait::wake_all(&self.seq);
        }
    }

    /// Moves the sequence word; whether a waiter may sleep on it.
    #[inline]
    fn notify(&self) -> bool {
        self.notifier_cpu.store(this_cpu(), Ordering::Relaxed);
        self.seq.fetch_add(1, Ordering::SeqCst);
        self.waiters.load(Ordering::SeqCst) != 0
    }

    /// Unlocks, waits until notified or past `deadline`, relocks; whether it timed out.
    fn wait_until<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> (LockResult<MutexGuard<'a, T>>, bool) {
        let mutex = guard.mutex();
        // Read under the mutex: a notification the predicate needs comes after this.
        let seen = self.seq.load(Ordering::Relaxed);
        drop(guard);
        let timed_out = !self.spin(seen) && self.sleep(seen, deadline);
        if !timed_out {
            let same = u32::from(self.notifier_cpu.load(Ordering::Relaxed) == this_cpu());
            if self.same_cpu.load(Ordering::Relaxed) != same {
                self.same_cpu.store(same, Ordering::Relaxed);
            }
        }
        (mutex.lock(), timed_out)
    }

    /// Looks for a notification a little before sleeping; whether one came.
    fn spin(&self, seen: u32) -> bool {
        let spins = if self.same_cpu.load(Ordering::Relaxed) == 0 {
            WAIT_SPINS
        } else {
            0
        };
        for _ in 0..spins {
            if self.seq.load(Ordering::Relaxed) != seen {
                return true;
            }
            std::hint::spin_loop();
        }
        for _ in 0..WAIT_YIELDS {
            if self.seq.load(Ordering::Relaxed) != seen {
                return true;
            }
            std::thread::yield_now();
        }
        false
    }

    /// Sleeps, counted in the hint, until `seq` leaves `seen` or `deadline` passes; whether
    /// it timed out.
    fn sleep(&self, seen: u32, deadline: Option<Instant>) -> bool {
        let counted = self.count_in();
        let timed_out = loop {
            // After counting in (Dekker, see the module docs): a notifier that moved `seq`
            // after this read sees the count, and wakes.
            if self.seq.load(Ordering::SeqCst) != seen {
                break false;
            }
            let mut poll = LIVENESS_POLL;
            if let Some(deadline) = deadline {
                match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => poll = poll.min(left),
                    _ => break true,
                }
            }
            wait::wait(&self.seq, seen, Some(poll));
        };
        if counted {
            self.count_out();
        }
        timed_out
    }

    /// Adds this waiter to the hint; false if it is saturated (it then stays so).
    fn count_in(&self) -> bool {
        self.waiters
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_add(1))
            .is_ok()
    }

    /// Takes a waiter counted in back out; a saturated hint stays saturated.
    fn count_out(&self) {
        let _ = self
            .waiters
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n != 0 && n != u32::MAX).then(|| n - 1)
            });
    }
}

/// Puts `extra` next to the relocked guard, inside a poison error too.
fn with_result<G, X>(relocked: LockResult<G>, extra: X) -> LockResult<(G, X)> {
    match relocked {
        Ok(guard) => Ok((guard, extra)),
        Err(LockError::Poisoned(p)) => {
            let cause = p.cause();
            Err(LockError::Poisoned(PoisonError::new(
                (p.into_inner(), extra),
                cause,
            )))
        }
        Err(LockError::Failed(e)) => Err(LockError::Failed(e)),
    }
}

/// The sequence word and the waiters hint, read without waiting.
impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar")
            .field("sequence", &self.seq.load(Ordering::Relaxed))
            .field("waiters_hint", &self.waiters.load(Ordering::Relaxed))
            .finish()
    }
}

// SAFETY: two atomics, and any bytes are a working state (see the type docs); nothing
// position-dependent.
unsafe impl ShmSafe for Condvar {
    const LAYOUT_FINGERPRINT: u64 = leaf_fingerprint(
        "Condvar",
        std::mem::size_of::<Self>(),
        std::mem::align_of::<Self>(),
    );
    const ALL_BIT_PATTERNS_VALID: bool = true;

    fn type_fingerprint() -> u64 {
        Self::LAYOUT_FINGERPRINT
    }
}

// SAFETY: the words mean the same anywhere.
unsafe impl PositionIndependent for Condvar {}

/// The CPU this thread runs on, plus one (0 if unknown).
fn this_cpu() -> u32 {
    // SAFETY: no arguments; glibc reads it from the thread's rseq area.
    (unsafe { libc::sched_getcpu() } as u32).wrapping_add(1)
}
