//! A process-shared mutex that cannot be left locked forever by a dead process.
//!
//! The lock word holds the owner's id (and a "waiters" bit), so a waiter can ask the kernel
//! whether the owner still lives (see [`super::owner`]). Uncontended, lock and unlock are one atomic each;
//! waiting uses a shared futex with a timeout, after which the waiter checks the owner and
//! takes the lock over if it died, reporting [`Acquired::OwnerDied`] so the caller repairs
//! what the dead owner may have left half-done.
//!
//! Limits (documented, not hidden): ownership is per mapping, so two threads of one mapping
//! exclude each other only through the CAS, and a thread killed alone (not its process) is
//! not detected.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rustix::thread::futex;

const WAITERS: u32 = 1 << 31;
const OWNER_MASK: u32 = !WAITERS;
/// The owner of a poisoned lock: above every owner id.
const POISONED: u32 = OWNER_MASK;
/// How long a waiter sleeps before it checks again whether the owner is alive.
const LIVENESS_POLL: Duration = Duration::from_millis(10);
const SPINS: u32 = 64;

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
}

/// A robust process-shared mutex; 4 bytes, all-zero is unlocked, so a freshly truncated
/// segment holds an unlocked one.
#[repr(C)]
#[derive(Default)]
pub struct RobustMutex {
    word: AtomicU32,
}

impl RobustMutex {
    pub const fn new() -> Self {
        RobustMutex {
            word: AtomicU32::new(0),
        }
    }

    /// Blocks until owner `me` holds the lock; `alive` says whether another owner may
    /// still release it (a dead one's lock is taken over).
    #[inline]
    pub fn lock(&self, me: u32, alive: impl Fn(u32) -> bool) -> Acquired {
        match self
            .word
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Acquired::Clean,
            Err(_) => self.lock_contended(me, &alive),
        }
    }

    /// Takes the lock for owner `me` if it is free right now.
    #[inline]
    pub fn try_lock(&self, me: u32) -> bool {
        self.word
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    #[cold]
    fn lock_contended(&self, me: u32, alive: &dyn Fn(u32) -> bool) -> Acquired {
        for _ in 0..SPINS {
            std::hint::spin_loop();
            if self.word.load(Ordering::Relaxed) == 0 && self.try_lock(me) {
                return Acquired::Clean;
            }
        }
        let timeout = futex::Timespec {
            tv_sec: 0,
            tv_nsec: LIVENESS_POLL.as_nanos() as _,
        };
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
                    return Acquired::OwnerDied;
                }
                continue;
            }
            if cur & WAITERS == 0
                && self
                    .word
                    .compare_exchange(cur, cur | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            // Spurious wake-ups, EAGAIN (the word changed) and timeouts all just loop.
            let _ = futex::wait(
                &self.word,
                futex::Flags::empty(),
                cur | WAITERS,
                Some(&timeout),
            );
        }
    }

    /// Releases the lock. Must be called by the mapping that holds it.
    ///
    /// Without waiters this is a plain release store, not a second atomic read-modify-write
    /// (which would double the cost of an uncontended lock/unlock pair). A waiter that sets
    /// its bit between our load and our store would sleep unwoken, but only if it managed a
    /// whole `futex` system call in the gap between two adjacent instructions of ours (i.e.
    /// we were descheduled right there); its timed wait bounds even that rare case to one
    /// [`LIVENESS_POLL`] of latency, never a hang.
    #[inline]
    pub fn unlock(&self) {
        if self.word.load(Ordering::Relaxed) & WAITERS == 0 {
            self.word.store(0, Ordering::Release);
        } else if self.word.swap(0, Ordering::Release) & WAITERS != 0 {
            self.wake_one();
        }
    }

    #[cold]
    fn wake_one(&self) {
        let _ = futex::wake(&self.word, futex::Flags::empty(), 1);
    }

    /// Releases the lock for good: every later `lock` returns [`Acquired::Poisoned`]
    /// (checked only on the contended path, so it costs the uncontended path nothing).
    pub fn poison(&self) {
        self.word.store(POISONED, Ordering::Release);
        let _ = futex::wake(&self.word, futex::Flags::empty(), i32::MAX as u32);
    }

    /// Marks the lock free whoever holds it. Only for a private copy of a segment (a
    /// copy-on-write mapping, a heap image, a buffer), whose lock word was copied from a
    /// holder that cannot release it here.
    pub fn force_unlock(&self) {
        self.word.store(0, Ordering::Release);
    }

    /// Makes owner `id` the holder, as if it had taken the lock (with waiters parked).
    #[cfg(test)]
    pub(super) fn hand_to(&self, id: u32) {
        self.word.store(id | WAITERS, Ordering::Relaxed);
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
