//! [`ReentrantMutex<T>`]: Boost's `interprocess_recursive_mutex`, a lock its holder may take
//! again. Cheap here because the lock word names the holding thread already: nesting is a
//! compare with the caller's id and a count only the holder touches.

use std::fmt;
use std::ops::Deref;
use std::time::{Duration, Instant};

use super::poison::{LockError, LockResult, PoisonCause, PoisonError, TryLockError, TryLockResult};
use super::raw::{Denied, Held, NamesItsThread, RawMutex, Wait};
use crate::error::Error;
use crate::robust::atomic::{const_unless_loom, AtomicU32, Ordering::Relaxed};

/// A robust mutex that the thread holding it may lock again (each guard releases one level;
/// the lock is free when the outermost goes). Like `parking_lot::ReentrantMutex` and std's
/// `ReentrantLock`, its guards give `&T` only: two nested guards of one thread could
/// otherwise give two `&mut T`. Mutate through atomics inside `T`.
///
/// Robust as [`Mutex`](super::Mutex): a holder that dies, or exits with a guard leaked, is
/// taken over and the lock poisoned; a holder that panics poisons it. Nesting is limited to
/// `u32::MAX` levels (`Error::InvalidSize` beyond).
///
/// Rust code rarely needs one (a function that needs the lock can take the guard as a
/// parameter); it serves code ported from Boost that locks recursively.
#[repr(C)]
pub struct ReentrantMutex<T> {
    raw: RawMutex,
    /// Levels held beyond the first; read and written only by the holding thread.
    depth: AtomicU32,
    data: T,
}

// SAFETY: the lock hands `&T` to one thread at a time (its nested guards included), so `T`
// need not be `Sync`, as with std's `ReentrantLock`.
unsafe impl<T: Send> Send for ReentrantMutex<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for ReentrantMutex<T> {}

impl<T> ReentrantMutex<T> {
    const_unless_loom! {
        /// An unlocked mutex holding `value`.
        pub fn new(value: T) -> Self {
            ReentrantMutex {
                raw: RawMutex::new(),
                depth: AtomicU32::new(0),
                data: value,
            }
        }
    }

    /// Blocks until this thread holds the lock (at once if it holds it already).
    pub fn lock(&self) -> LockResult<ReentrantMutexGuard<'_, T>> {
        self.acquire(Wait::Until(None)).map_err(|e| match e {
            TryLockError::Poisoned(p) => LockError::Poisoned(p),
            TryLockError::Failed(e) => LockError::Failed(e),
            TryLockError::WouldBlock => unreachable!("a lock without deadline timed out"),
        })
    }

    /// Takes the lock if nobody else holds it now.
    pub fn try_lock(&self) -> TryLockResult<ReentrantMutexGuard<'_, T>> {
        self.acquire(Wait::No)
    }

    /// Blocks until this thread holds the lock or `timeout` has passed.
    pub fn lock_timeout(&self, timeout: Duration) -> TryLockResult<ReentrantMutexGuard<'_, T>> {
        self.acquire(Wait::Until(Instant::now().checked_add(timeout)))
    }

    fn acquire(&self, wait: Wait) -> TryLockResult<ReentrantMutexGuard<'_, T>> {
        let held = match self.raw.acquire_or_nest(wait) {
            Ok((held, false)) => {
                // Nobody holds a level now: a dead holder's nesting ends with it.
                self.depth.store(0, Relaxed);
                held
            }
            Ok((held, true)) => {
                let depth = self.depth.load(Relaxed);
                let deeper = depth.checked_add(1).ok_or_else(|| {
                    TryLockError::Failed(Error::InvalidSize {
                        size: u64::from(depth),
                        reason: "a reentrant lock nested more than u32::MAX levels".into(),
                    })
                })?;
                self.depth.store(deeper, Relaxed);
                // A nested level reports no poison: the outermost did.
                held.without_poison()
            }
            Err(Denied::WouldBlock) => return Err(TryLockError::WouldBlock),
            Err(Denied::Failed(e)) => return Err(TryLockError::Failed(e)),
        };
        let poisoned = held.poisoned;
        let guard = ReentrantMutexGuard {
            lock: self,
            held,
            _not_send: NamesItsThread::default(),
        };
        match poisoned {
            None => Ok(guard),
            Some(cause) => Err(TryLockError::Poisoned(PoisonError::new(guard, cause))),
        }
    }

    /// Whether the last holder panicked or died holding the lock.
    pub fn is_poisoned(&self) -> bool {
        self.raw.poisoned().is_some()
    }

    /// How the last holder of a poisoned lock ended.
    pub fn poison_cause(&self) -> Option<PoisonCause> {
        self.raw.poisoned()
    }

    /// Marks the data repaired.
    pub fn clear_poison(&self) {
        self.raw.clear_poison();
    }
}

impl<T: Default> Default for ReentrantMutex<T> {
    fn default() -> Self {
        ReentrantMutex::new(T::default())
    }
}

/// The lock's state and the data (readable whatever the lock's state: guards give `&T`
/// only).
impl<T: fmt::Debug> fmt::Debug for ReentrantMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReentrantMutex")
            .field("lock", &self.raw)
            .finish_non_exhaustive()
    }
}

super::lock_is_shm_safe!(ReentrantMutex, |lock| &mut lock.data);

/// One level of a held [`ReentrantMutex`].
#[must_use = "dropping the guard releases one level of the lock at once"]
pub struct ReentrantMutexGuard<'a, T> {
    lock: &'a ReentrantMutex<T>,
    held: Held,
    _not_send: NamesItsThread,
}

impl<T> Deref for ReentrantMutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.lock.data
    }
}

/// Guards of one thread are alike, in whatever order they go (as std's `ReentrantLock`):
/// each removes one level, and the last one releases the lock.
impl<T> Drop for ReentrantMutexGuard<'_, T> {
    fn drop(&mut self) {
        if self.held.inherited() {
            return;
        }
        match self.lock.depth.load(Relaxed) {
            0 => self.lock.raw.release(&self.held),
            depth => {
                self.lock.raw.poison_if_interrupted(&self.held);
                self.lock.depth.store(depth - 1, Relaxed);
            }
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for ReentrantMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
