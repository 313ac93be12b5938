//! [`Mutex<T>`]: `std::sync::Mutex` for data in a segment, shared by threads and processes.

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use super::poison::{LockError, LockResult, PoisonCause, PoisonError, TryLockError, TryLockResult};
use super::raw::{Denied, Held, NamesItsThread, RawMutex, Wait};
use crate::layout::{PositionIndependent, ShmDerefMut, ShmMut};
use crate::robust::atomic::const_unless_loom;

/// A mutual-exclusion lock for data that lives in a segment, shared by every thread of
/// every process that maps it: `std::sync::Mutex`, robust.
///
/// - The holder is a thread, named by an id whose liveness the kernel keeps (see the
///   [module docs](super)). When a holder dies (its process is killed, or its thread exits
///   with the guard leaked), the next locker takes the lock over within
///   [`LIVENESS_POLL`](super::LIVENESS_POLL) and gets it poisoned with
///   [`PoisonCause::OwnerDied`]; a holder that panics poisons it with
///   [`PoisonCause::Panicked`]. The poison stays until [`clear_poison`](Self::clear_poison).
/// - Taking a lock the calling thread holds is [`Error::WouldDeadlock`](crate::Error), not a
///   hang.
/// - The guard derefs to `&T`, to `&mut T` for plain data ([`PositionIndependent`]), and
///   gives a [`ShmMut<T>`] for everything ([`MutexGuard::as_shm_mut`]). It is not `Send`:
///   the lock names the thread that took it.
///
/// Eight bytes ahead of `T`; all-zero bytes are an unlocked, clean mutex.
#[repr(C)]
pub struct Mutex<T> {
    pub(super) raw: RawMutex,
    data: UnsafeCell<T>,
}

// SAFETY: as `std::sync::Mutex`: the lock hands `T` to one thread at a time.
unsafe impl<T: Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    const_unless_loom! {
        /// An unlocked mutex holding `value`.
        pub fn new(value: T) -> Self {
            Mutex {
                raw: RawMutex::new(),
                data: UnsafeCell::new(value),
            }
        }
    }

    /// Blocks until this thread holds the lock.
    #[inline]
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        match self.acquire(Wait::Until(None)) {
            Ok(guard) => guard,
            Err(TryLockError::Failed(e)) => Err(LockError::Failed(e)),
            Err(TryLockError::Poisoned(p)) => Err(LockError::Poisoned(p)),
            // No deadline: never returned.
            Err(TryLockError::WouldBlock) => unreachable!("a lock without deadline timed out"),
        }
    }

    /// Takes the lock if nobody holds it now ([`TryLockError::WouldBlock`] otherwise, also
    /// when this thread holds it).
    #[inline]
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        self.acquire(Wait::No)
            .and_then(|guard| guard.map_err(Into::into))
    }

    /// Blocks until this thread holds the lock or `timeout` has passed
    /// ([`TryLockError::WouldBlock`]).
    pub fn lock_timeout(&self, timeout: Duration) -> TryLockResult<MutexGuard<'_, T>> {
        let deadline = Instant::now().checked_add(timeout);
        self.acquire(Wait::Until(deadline))
            .and_then(|guard| guard.map_err(Into::into))
    }

    #[inline]
    fn acquire(
        &self,
        wait: Wait,
    ) -> Result<LockResult<MutexGuard<'_, T>>, TryLockError<MutexGuard<'_, T>>> {
        match self.raw.acquire(wait) {
            Ok(held) => {
                let guard = MutexGuard {
                    mutex: self,
                    held,
                    _not_send: NamesItsThread::default(),
                };
                Ok(match held.poisoned {
                    None => Ok(guard),
                    Some(cause) => Err(LockError::Poisoned(PoisonError::new(guard, cause))),
                })
            }
            Err(Denied::WouldBlock) => Err(TryLockError::WouldBlock),
            Err(Denied::Failed(e)) => Err(TryLockError::Failed(e)),
        }
    }

    /// Whether the last holder panicked or died holding the lock (and nobody cleared it).
    pub fn is_poisoned(&self) -> bool {
        self.raw.poisoned().is_some()
    }

    /// How the last holder of a poisoned lock ended; None when it is not poisoned.
    pub fn poison_cause(&self) -> Option<PoisonCause> {
        self.raw.poisoned()
    }

    /// Marks the data repaired: later lockers get clean guards.
    pub fn clear_poison(&self) {
        self.raw.clear_poison();
    }

    /// The data, through exclusive access to the mutex (no locking needed).
    pub fn get_mut(&mut self) -> Result<&mut T, PoisonError<&mut T>>
    where
        T: PositionIndependent,
    {
        let cause = self.raw.poisoned();
        let data = self.data.get_mut();
        match cause {
            None => Ok(data),
            Some(cause) => Err(PoisonError::new(data, cause)),
        }
    }

    /// The data of a mutex held by value (never one in a segment, which lives in place).
    pub fn into_inner(self) -> Result<T, PoisonError<T>> {
        let cause = self.raw.poisoned();
        let data = self.data.into_inner();
        match cause {
            None => Ok(data),
            Some(cause) => Err(PoisonError::new(data, cause)),
        }
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Mutex::new(value)
    }
}

/// The lock's state (holder, poison, waiters) and, if it can be taken right now, the data.
impl<T: fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        d.field("lock", &self.raw);
        match self.try_lock() {
            Ok(guard) => d.field("data", &&*guard),
            Err(TryLockError::Poisoned(p)) => d.field("data", &&*p.into_inner()),
            Err(_) => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

super::lock_is_shm_safe!(Mutex, |lock| lock.data.get_mut(), layout = "lock");

// SAFETY: the lock words mean the same anywhere (owner ids, not addresses); `T` is plain.
unsafe impl<T: PositionIndependent> PositionIndependent for Mutex<T> {}

/// A held [`Mutex`]: the data is this thread's until the guard is dropped, which releases
/// the lock (poisoning it if the thread is panicking).
#[must_use = "dropping the guard releases the lock at once"]
pub struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
    held: Held,
    _not_send: NamesItsThread,
}

// SAFETY: sharing the guard shares `&T` only, as std's `MutexGuard`.
unsafe impl<T: Sync> Sync for MutexGuard<'_, T> {}

impl<'a, T> MutexGuard<'a, T> {
    /// The mutex this guard holds: what a condition variable unlocks and takes again.
    pub(crate) fn mutex(&self) -> &'a Mutex<T> {
        self.mutex
    }

    /// Mutable access to the data in place: for position-dependent data (containers,
    /// offset pointers), whose methods take a `ShmMut`.
    #[inline]
    pub fn as_shm_mut(&mut self) -> ShmMut<'_, T> {
        // SAFETY: the lock makes this the only access to the data; `ShmMut` hands out `&mut T`
        // only for position-independent types, so position-dependent data is not moved.
        unsafe { ShmMut::new(&mut *self.mutex.data.get()) }
    }
}

impl<T> ShmDerefMut for MutexGuard<'_, T> {
    #[inline]
    fn as_shm_mut(&mut self) -> ShmMut<'_, T> {
        MutexGuard::as_shm_mut(self)
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the lock is held: nobody else accesses the data.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: PositionIndependent> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above; plain data may be moved out and back.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.mutex.raw.release(&self.held);
    }
}

impl<T: fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
