//! Locks for data shared between threads and processes: what `std::sync` is for `Arc<T>`
//! across threads, for a segment across processes. On a shared mapping, data changes only
//! through atomics and these types; their guards hand out `&mut T` for plain data and
//! [`ShmMut<T>`](crate::ShmMut) for the rest.
//!
//! # Robustness: holders are threads, and their death is seen
//!
//! Each lock word names the thread holding it by a lock owner id that the thread claims on
//! the segment's lock file description (an open-file-description lock on one byte per id),
//! and gives back when it exits. A waiter that has slept [`LIVENESS_POLL`] asks the kernel
//! whether the holder's id is still held; if not (the process died, even by SIGKILL, or the
//! thread exited with its guard leaked) it takes the lock over and gets it poisoned, shaped
//! like std's [`PoisonError`] and telling a death ([`PoisonCause::OwnerDied`]) from a panic
//! ([`PoisonCause::Panicked`]). Process ids play no part, so pid reuse and pid namespaces
//! cannot fool a waiter. A lock in memory outside every segment, or in one mapping alone
//! (heap segments, buffers), is judged the same way by the threads of this process.
//!
//! # Waiting
//!
//! A waiter looks at the lock [`SPINS`] times (about a microsecond), then sleeps on it (a
//! shared futex). Unlocking wakes a sleeper whenever one announced itself, so no wake-up is
//! lost; the sleep's timeout only bounds how long a dead holder goes unnoticed.

mod atomic_wait;
mod condvar;
#[cfg(test)]
mod crash_tests;
mod mutex;
mod named;
mod poison;
mod raw;
mod reentrant;
mod rwlock;
mod semaphore;
mod seqlock;

pub use crate::robust::{LIVENESS_POLL, SPINS};
pub use atomic_wait::{atomic_notify_all, atomic_notify_one, atomic_wait, WaitOutcome};
pub use condvar::{Condvar, WaitTimeoutResult, WAIT_SPINS, WAIT_YIELDS};
pub use mutex::{Mutex, MutexGuard};
pub use named::{Named, NamedCondvar, NamedMutex, NamedRwLock, NamedSemaphore};
pub use poison::{LockError, LockResult, PoisonCause, PoisonError, TryLockError, TryLockResult};
pub use reentrant::{ReentrantMutex, ReentrantMutexGuard};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockUpgradableReadGuard, RwLockWriteGuard};
pub use semaphore::Semaphore;
pub use seqlock::{ReadError, SeqLock, SeqLockData, SeqLockWriteGuard};
