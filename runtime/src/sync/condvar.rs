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
use crate::robust::atomic::{const_unless_loom, seqcst_under_the_model, AtomicU32, Ordering};
use crate::robust::crash::point;
use crate::robust::pause::{self, this_cpu};
use crate::robust::{wait, LIVENESS_POLL};

/// How many times a waiter looks at the sequence word, a `pause` apart, before it yields:
/// about a microsecond (0.8 µs where a `pause` takes 26 ns, twice that on CPUs with a long
/// `pause`), long enough for a notifier running on another CPU to take its turn and come
/// back. Skipped while the last wait ended by a notification from the waiter's own CPU
/// (both pinned to one CPU): spinning there only keeps the notifier from running. (One
/// under the model checker, which explores each look.)
pub const WAIT_SPINS: u32 = if cfg!(loom) { 1 } else { 32 };

/// How many times a waiter then yields the CPU to other runnable threads (`sched_yield`),
/// looking at the sequence word after each, before it sleeps. With the notifier on the
/// same CPU each yield runs it at once, and the hand-off costs neither side a `futex` call;
/// on an otherwise idle CPU each yield returns at once (a system call: about 0.6 µs in a
/// virtual machine, less on bare metal), so the whole wait before sleeping stays within a
/// few microseconds. (One under the model checker.)
pub const WAIT_YIELDS: u32 = if cfg!(loom) { 1 } else { 4 };

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
    const_unless_loom! {
        /// A condition variable nobody waits on.
        pub fn new() -> Self {
            Condvar {
                seq: AtomicU32::new(0),
                waiters: AtomicU32::new(0),
                notifier_cpu: AtomicU32::new(0),
                same_cpu: AtomicU32::new(0),
            }
        }
    }

    /// Unlocks the guard's mutex, waits for a notification (or a spurious wake-up), and
    /// takes the mutex again.
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        self.wait_until(guard, None).0
    }

    /// Waits while `condition` holds, checking it under the mutex before each wait (and
    /// so once more after each wake-up, spurious or not). The condition gets the data as
    /// the guard lends it, a [`ShmMut`]: `&mut T` through `DerefMut` for plain data, the
    /// `ShmMut` methods for containers. A poisoned relock ends the wait with its error.
    ///
    /// ```
    /// # use shmkit_runtime::sync::{Condvar, Mutex};
    /// let (queued, cv) = (Mutex::new(0u32), Condvar::new());
    /// *queued.lock().unwrap() += 1; // another thread or process, which then notifies
    /// cv.notify_one();
    /// let mut left = cv.wait_while(queued.lock().unwrap(), |n| *n == 0).unwrap();
    /// *left -= 1;
    /// ```
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
            point("condvar notify: about to wake");
            wait::wake(&self.seq, 1);
        }
    }

    /// Wakes every waiter.
    #[inline]
    pub fn notify_all(&self) {
        if self.notify() {
            point("condvar notify: about to wake");
            wait::wake_all(&self.seq);
        }
    }

    /// Moves the sequence word; whether a waiter may sleep on it.
    #[inline]
    fn notify(&self) -> bool {
        self.notifier_cpu.store(this_cpu(), Ordering::Relaxed);
        point("condvar notify: before moving the sequence");
        self.seq.fetch_add(1, Ordering::SeqCst);
        point("condvar notify: sequence moved");
        seqcst_under_the_model();
        self.waiters.load(Ordering::SeqCst) != 0
    }

    /// Unlocks, waits until notified or past `deadline`, relocks; whether it timed out.
    fn wait_until<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> (LockResult<MutexGuard<'a, T>>, bool) {
        self.wait_polling(guard, deadline, LIVENESS_POLL)
    }

    /// As [`wait_until`](Self::wait_until), looking at `seq` every `poll` while asleep
    /// (the tests poll too seldom to hide a lost wake-up).
    fn wait_polling<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
        poll: Duration,
    ) -> (LockResult<MutexGuard<'a, T>>, bool) {
        let mutex = guard.mutex();
        // Read under the mutex: a notification the predicate needs comes after this.
        let seen = self.seq.load(Ordering::Relaxed);
        point("condvar wait: sequence read, mutex held");
        drop(guard);
        point("condvar wait: mutex released");
        let timed_out = !self.spin(seen) && self.sleep(seen, deadline, poll);
        if !timed_out {
            let cpu = this_cpu();
            let same = u32::from(cpu != 0 && self.notifier_cpu.load(Ordering::Relaxed) == cpu);
            if self.same_cpu.load(Ordering::Relaxed) != same {
                self.same_cpu.store(same, Ordering::Relaxed);
            }
        }
        point("condvar wait: about to relock");
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
            pause::yield_now();
        }
        false
    }

    /// Sleeps, counted in the hint, until `seq` leaves `seen` (seen at the latest `poll`
    /// after it did) or `deadline` passes; whether it timed out.
    fn sleep(&self, seen: u32, deadline: Option<Instant>, poll: Duration) -> bool {
        point("condvar wait: counting in");
        let counted = self.count_in();
        point("condvar wait: counted in");
        seqcst_under_the_model();
        let timed_out = loop {
            // After counting in (Dekker, see the module docs): a notifier that moved `seq`
            // after this read sees the count, and wakes.
            if self.seq.load(Ordering::SeqCst) != seen {
                break false;
            }
            let mut sleep = poll;
            if let Some(deadline) = deadline {
                match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => sleep = sleep.min(left),
                    _ => break true,
                }
            }
            point("condvar wait: about to sleep");
            wait::wait(&self.seq, seen, Some(sleep));
            point("condvar wait: awake");
        };
        if counted {
            point("condvar wait: counting out");
            self.count_out();
            point("condvar wait: counted out");
        }
        timed_out
    }

    /// How many waiters may be asleep (the hint), for tests that wait until they are.
    #[cfg(test)]
    pub(crate) fn waiters_hint(&self) -> u32 {
        self.waiters.load(Ordering::SeqCst)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::Mutex;
    use std::sync::mpsc;
    use std::sync::Arc;

    /// Longer than any test: a wake-up the futex calls lose is not found by a poll.
    const NO_POLL: Duration = Duration::from_secs(3600);
    /// What a wait that must end may take, on a loaded machine.
    const GENEROUS: Duration = Duration::from_secs(20);

    #[derive(Default)]
    struct Shared {
        m: Mutex<u64>,
        cv: Condvar,
    }

    impl Shared {
        /// Waits, without the poll, until `m` holds at least `want`; panics at the limit.
        fn await_value(&self, want: u64) {
            let deadline = Instant::now() + GENEROUS;
            let mut g = self.m.lock().unwrap();
            while *g < want {
                g = self.wait_before(g, deadline);
            }
        }

        /// One wait without the poll, which must end before `deadline`: ending there, it
        /// would find a notification it was never woken for.
        fn wait_before<'a>(
            &self,
            g: MutexGuard<'a, u64>,
            deadline: Instant,
        ) -> MutexGuard<'a, u64> {
            let g = self.cv.wait_polling(g, Some(deadline), NO_POLL).0.unwrap();
            assert!(Instant::now() < deadline, "no wake-up (at {})", *g);
            g
        }

        /// Blocks until `n` waiters are counted asleep.
        fn await_sleepers(&self, n: u32) {
            let deadline = Instant::now() + GENEROUS;
            while self.cv.waiters.load(Ordering::SeqCst) != n {
                assert!(Instant::now() < deadline, "{n} waiters never slept");
                std::thread::yield_now();
            }
        }

        fn set(&self, value: u64) {
            *self.m.lock().unwrap() = value;
        }
    }

    fn spawn_waiters(s: &Arc<Shared>, n: usize, want: u64) -> mpsc::Receiver<()> {
        let (tx, rx) = mpsc::channel();
        for _ in 0..n {
            let (s, tx) = (s.clone(), tx.clone());
            std::thread::spawn(move || {
                s.await_value(want);
                tx.send(()).unwrap();
            });
        }
        rx
    }

    #[test]
    fn notify_all_wakes_every_sleeper_by_itself() {
        let s = Arc::new(Shared::default());
        let done = spawn_waiters(&s, 3, 1);
        s.await_sleepers(3);
        s.set(1);
        s.cv.notify_all();
        for _ in 0..3 {
            done.recv_timeout(GENEROUS)
                .expect("a sleeper missed notify_all");
        }
        assert_eq!(s.cv.waiters.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn each_notify_one_wakes_a_sleeper_by_itself() {
        let s = Arc::new(Shared::default());
        // Each waiter takes one ticket: a notify_one that woke nobody leaves one waiting.
        let (tx, done) = mpsc::channel();
        for _ in 0..3 {
            let (s, tx) = (s.clone(), tx.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + GENEROUS;
                let mut g = s.m.lock().unwrap();
                while *g == 0 {
                    g = s.wait_before(g, deadline);
                }
                *g -= 1;
                tx.send(()).unwrap();
            });
        }
        s.await_sleepers(3);
        for woken in 1..=3 {
            *s.m.lock().unwrap() += 1;
            s.cv.notify_one();
            done.recv_timeout(GENEROUS).expect("notify_one woke nobody");
            s.await_sleepers(3 - woken);
        }
    }

    #[test]
    fn a_hand_off_loses_no_wake_up() {
        let rounds = if cfg!(miri) { 30 } else { 20_000 };
        let s = Arc::new(Shared::default());
        let peer = {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..rounds {
                    s.await_value(2 * i + 1);
                    *s.m.lock().unwrap() += 1;
                    s.cv.notify_one();
                }
            })
        };
        for i in 0..rounds {
            s.await_value(2 * i);
            *s.m.lock().unwrap() += 1;
            s.cv.notify_one();
        }
        s.await_value(2 * rounds);
        peer.join().unwrap();
    }

    #[test]
    fn forged_hints_cost_no_wake_up() {
        for (waiters, same_cpu) in [(u32::MAX, 1), (7, 0), (0, u32::MAX)] {
            let s = Arc::new(Shared::default());
            s.cv.waiters.store(waiters, Ordering::SeqCst);
            s.cv.same_cpu.store(same_cpu, Ordering::SeqCst);
            s.cv.notifier_cpu.store(u32::MAX, Ordering::SeqCst);
            s.cv.seq.store(u32::MAX, Ordering::SeqCst);
            let done = spawn_waiters(&s, 1, 1);
            if waiters != u32::MAX {
                s.await_sleepers(waiters + 1);
            }
            s.set(1);
            s.cv.notify_one();
            done.recv_timeout(GENEROUS)
                .expect("a forged hint lost the wake-up");
            // A saturated hint stays so; another goes back to where it was.
            assert_eq!(s.cv.waiters.load(Ordering::SeqCst), waiters);
        }
    }

    #[test]
    fn the_hint_saturates_and_never_goes_below_zero() {
        let cv = Condvar::new();
        cv.count_out();
        assert_eq!(cv.waiters.load(Ordering::SeqCst), 0);
        cv.waiters.store(u32::MAX - 1, Ordering::SeqCst);
        assert!(cv.count_in());
        assert!(!cv.count_in());
        cv.count_out();
        assert_eq!(cv.waiters.load(Ordering::SeqCst), u32::MAX);
    }
}
