//! A process-shared mutex that cannot be left locked forever by a dead process.
//!
//! The lock word holds the owner's process id (and a "waiters" bit), so a waiter can ask the
//! kernel whether the owner still lives. Uncontended, lock and unlock are one atomic each;
//! waiting uses a shared futex with a timeout, after which the waiter checks the owner and
//! takes the lock over if it died, reporting [`Acquired::OwnerDied`] so the caller repairs
//! what the dead owner may have left half-done.
//!
//! Limits (documented, not hidden): ownership is per process, so two threads of one process
//! exclude each other only through the CAS, and a thread killed alone (not its process) is
//! not detected; process ids must be comparable, i.e. all users share a pid namespace; a
//! recycled pid makes the waiter believe the owner lives on.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rustix::thread::futex;

use super::pid::{current_pid, process_alive};

const WAITERS: u32 = 1 << 31;
const PID_MASK: u32 = !WAITERS;
/// The owner of a poisoned lock: above any pid Linux hands out (at most 2^22).
const POISONED: u32 = PID_MASK;
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

    /// Blocks until this process holds the lock.
    #[inline]
    pub fn lock(&self) -> Acquired {
        let me = current_pid();
        match self
            .word
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Acquired::Clean,
            Err(_) => self.lock_contended(me),
        }
    }

    /// Takes the lock if it is free right now.
    #[inline]
    pub fn try_lock(&self) -> bool {
        self.word
            .compare_exchange(0, current_pid(), Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    #[cold]
    fn lock_contended(&self, me: u32) -> Acquired {
        for _ in 0..SPINS {
            std::hint::spin_loop();
            if self.word.load(Ordering::Relaxed) == 0 && self.try_lock() {
                return Acquired::Clean;
            }
        }
        let timeout = futex::Timespec {
            tv_sec: 0,
            tv_nsec: LIVENESS_POLL.as_nanos() as _,
        };
        loop {
            let cur = self.word.load(Ordering::Relaxed);
            if cur & PID_MASK == POISONED {
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
            let owner = cur & PID_MASK;
            if owner != me && !process_alive(owner) {
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

    /// Releases the lock. Must be called by the process that holds it.
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

    /// Makes process `pid` the holder, as if it had taken the lock (with waiters parked).
    #[cfg(test)]
    pub(super) fn hand_to(&self, pid: u32) {
        self.word.store(pid | WAITERS, Ordering::Relaxed);
    }

    /// The process id of the current holder, if any.
    pub fn owner(&self) -> Option<u32> {
        match self.word.load(Ordering::Relaxed) & PID_MASK {
            0 => None,
            pid => Some(pid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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
                        assert_eq!(g.mutex.lock(), Acquired::Clean);
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
    #[cfg_attr(miri, ignore = "spawns a process")]
    fn a_dead_owner_is_detected() {
        let m = RobustMutex::new();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        // Pretend the exited child held the lock with waiters parked.
        m.hand_to(dead);
        assert_eq!(m.owner(), Some(dead));
        assert_eq!(m.lock(), Acquired::OwnerDied);
        assert_eq!(m.owner(), Some(std::process::id()));
        m.unlock();
        assert_eq!(m.lock(), Acquired::Clean);
        m.unlock();
        assert_eq!(m.owner(), None);
    }
}
