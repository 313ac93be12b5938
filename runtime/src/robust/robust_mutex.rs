//! A process-shared mutex that cannot be left locked forever by a dead process.
//!
//! The lock word holds the owner's id (and a "waiters" bit), so a waiter can ask the kernel
//! whether the owner still lives (see [`super::owner`]). Uncontended, lock and unlock are one
//! atomic read-modify-write each; waiting spins briefly, then sleeps on the word (a shared
//! futex) with a timeout, after which the waiter checks the owner and takes the lock over if
//! it died, reporting [`Acquired::OwnerDied`] so the caller repairs what the dead owner may
//! have left half-done.
//!
//! No wake-up is lost: unlock swaps the word and wakes a sleeper whenever the bit was set,
//! and a waiter sets the bit before it sleeps and sleeps only while the word still holds it.
//! The timeout serves only to notice a dead owner, never to recover a missed wake-up.
//!
//! Which owner ids name whom is the caller's business: the segment's internal locks name the
//! mapping, the user locks of `crate::sync` the thread.

use super::atomic::{const_unless_loom, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::crash::point;
use super::wait;

const WAITERS: u32 = 1 << 31;
const OWNER_MASK: u32 = !WAITERS;
/// The owner of a poisoned lock: above every owner id.
const POISONED: u32 = OWNER_MASK;
/// How long a sleeping waiter may take to notice that the owner died: it sleeps at most this
/// long before it asks the kernel again.
pub const LIVENESS_POLL: Duration = Duration::from_millis(10);
/// How many times a waiter looks at the word, a `pause` apart, before it sleeps: about a
/// microsecond (a few on CPUs with a long `pause`), enough for a holder on another CPU to
/// finish a short critical section, too short to starve a holder preempted on this one.
/// (One under the model checker, which explores each look.)
pub const SPINS: u32 = if cfg!(loom) { 1 } else { 40 };

/// How the lock was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Acquired {
    /// From a live owner (or nobody): the protected data is consistent.
    Clean,
    /// From a process that died holding it: the protected data may be half-updated.
    OwnerDied,
    /// Not acquired: a holder found the data beyond repair and poisoned the lock for good.
    Poisoned,
    /// Not acquired: the deadline passed first.
    TimedOut,
}

/// A robust process-shared mutex; 4 bytes, all-zero is unlocked, so a freshly truncated
/// segment holds an unlocked one.
#[repr(C)]
#[derive(Default)]
pub struct RobustMutex {
    word: AtomicU32,
}

/// What a lock word read as bytes says (for the inspector, which reads words it does not
/// take): free, held by an owner id, or poisoned for good.
pub(crate) fn decode_word(word: u32) -> Option<Option<u32>> {
    match word & OWNER_MASK {
        POISONED => None,
        0 => Some(None),
        id => Some(Some(id)),
    }
}

impl RobustMutex {
    const_unless_loom! {
        /// An unlocked mutex.
        pub fn new() -> Self {
            RobustMutex {
                word: AtomicU32::new(0),
            }
        }
    }

    /// Blocks until owner `me` holds the lock; `alive` says whether another owner may
    /// still release it (a dead one's lock is taken over).
    #[inline]
    pub fn lock(&self, me: u32, alive: impl Fn(u32) -> bool) -> Acquired {
        if self.try_lock(me) {
            return Acquired::Clean;
        }
        self.lock_contended(me, &alive, None)
    }

    /// Takes the lock for owner `me` if it is free right now.
    #[inline]
    pub fn try_lock(&self, me: u32) -> bool {
        point("lock: trying a free word");
        let taken = self
            .word
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        if taken {
            point("lock: taken from a free word");
        }
        taken
    }

    /// As [`lock`](Self::lock) after a failed [`try_lock`](Self::try_lock), giving up with
    /// [`Acquired::TimedOut`] at `deadline`. An owner that holds the lock already waits
    /// for itself: the caller tells its own nesting apart first.
    #[cold]
    pub fn lock_contended(
        &self,
        me: u32,
        alive: &dyn Fn(u32) -> bool,
        deadline: Option<Instant>,
    ) -> Acquired {
        for _ in 0..SPINS {
            // The real hint under loom too: loom's yields, and would let the holder run to
            // its unlock before the waiter looks again, so that no waiter ever slept.
            std::hint::spin_loop();
            if self.word.load(Ordering::Relaxed) == 0 && self.try_lock(me) {
                return Acquired::Clean;
            }
        }
        loop {
            let cur = self.word.load(Ordering::Relaxed);
            if cur & OWNER_MASK == POISONED {
                return Acquired::Poisoned;
            }
            if cur == 0 {
                // Others may still sleep; keep the waiters bit so our unlock wakes them.
                if self
                    .word
                    .compare_exchange(0, me | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    point("lock: taken after waiting");
                    return Acquired::Clean;
                }
                continue;
            }
            let owner = cur & OWNER_MASK;
            if owner != me && !alive(owner) {
                if self
                    .word
                    .compare_exchange(cur, me | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    point("lock: taken over from a dead owner");
                    return Acquired::OwnerDied;
                }
                continue;
            }
            let mut poll = LIVENESS_POLL;
            if let Some(deadline) = deadline {
                match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => poll = poll.min(left),
                    _ => return Acquired::TimedOut,
                }
            }
            if cur & WAITERS == 0
                && self
                    .word
                    .compare_exchange(cur, cur | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            point("lock: waiters bit set, about to sleep");
            wait::wait(&self.word, cur | WAITERS, Some(poll));
            point("lock: awake");
        }
    }

    /// Releases the lock. Must be called by the owner that holds it.
    #[inline]
    pub fn unlock(&self) {
        point("unlock: before the swap");
        if self.word.swap(0, Ordering::Release) & WAITERS != 0 {
            self.wake_one();
        }
        point("unlock: released");
    }

    #[cold]
    fn wake_one(&self) {
        point("unlock: released, a waiter not yet woken");
        wait::wake(&self.word, 1);
    }

    /// Releases the lock for good: every later `lock` returns [`Acquired::Poisoned`]
    /// (checked only on the contended path, so it costs the uncontended path nothing).
    pub fn poison(&self) {
        self.word.store(POISONED, Ordering::Release);
        wait::wake_all(&self.word);
    }

    /// Marks the lock free whoever holds it. Only for a private copy of a segment (a
    /// copy-on-write mapping, a heap image, a buffer), whose lock word was copied from a
    /// holder that cannot release it here.
    pub fn force_unlock(&self) {
        self.word.store(0, Ordering::Release);
    }

    /// Makes owner `id` the holder, as if it had taken the lock (with waiters parked).
    #[cfg(any(test, loom))]
    pub(crate) fn hand_to(&self, id: u32) {
        self.word.store(id | WAITERS, Ordering::Relaxed);
    }

    /// Whether a waiter sleeps (or slept) on the lock.
    pub fn has_waiters(&self) -> bool {
        self.word.load(Ordering::Relaxed) & WAITERS != 0
    }

    /// The owner id of the current holder, if any.
    pub fn owner(&self) -> Option<u32> {
        match self.word.load(Ordering::Relaxed) & OWNER_MASK {
            0 => None,
            id => Some(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const ME: u32 = 2;
    const DEAD: u32 = 77;

    /// A counter guarded by the mutex under test.
    struct Guarded {
        mutex: RobustMutex,
        count: std::cell::UnsafeCell<u64>,
    }
    // SAFETY: `count` is only touched while `mutex` is held.
    unsafe impl Sync for Guarded {}

    #[test]
    fn excludes_threads() {
        let rounds = if cfg!(miri) { 50 } else { 20_000 };
        let g = Arc::new(Guarded {
            mutex: RobustMutex::new(),
            count: std::cell::UnsafeCell::new(0),
        });
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let g = g.clone();
                std::thread::spawn(move || {
                    for _ in 0..rounds {
                        assert_eq!(g.mutex.lock(ME, |id| id == ME), Acquired::Clean);
                        // SAFETY: we hold the mutex.
                        unsafe { *g.count.get() += 1 };
                        g.mutex.unlock();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // SAFETY: all threads are joined.
        assert_eq!(unsafe { *g.count.get() }, 4 * rounds);
    }

    #[test]
    fn a_dead_owner_is_detected() {
        let m = RobustMutex::new();
        let alive = |id| id == ME;
        // Pretend a dead owner held the lock with waiters parked.
        m.hand_to(DEAD);
        assert_eq!(m.owner(), Some(DEAD));
        assert_eq!(m.lock(ME, alive), Acquired::OwnerDied);
        assert_eq!(m.owner(), Some(ME));
        m.unlock();
        assert_eq!(m.lock(ME, alive), Acquired::Clean);
        m.unlock();
        assert_eq!(m.owner(), None);
    }

    #[test]
    fn a_poisoned_lock_stays_poisoned() {
        let m = RobustMutex::new();
        assert!(m.try_lock(ME));
        m.poison();
        assert_eq!(m.lock(ME, |_| true), Acquired::Poisoned);
        assert!(!m.try_lock(ME));
    }
}
