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

/// `ShmSafe` for a lock `$lock<T>` whose `raw` field decides who holds it (with a
/// `check_under` that runs a check where no writer races it) and whose `data` field holds
/// the `T` (`$data` gives `&mut T` from `$this`, the `&mut` lock). With `layout = "lock"`,
/// its `raw` field starts with a robust owner word, which the lock's schema (a `"lock"`
/// container) tells the inspector where to find.
macro_rules! lock_is_shm_safe {
    ($lock:ident, |$this:ident| $data:expr $(, layout = $layout:literal)?) => {
        // SAFETY: the lock words are atomics (any bytes are a state: owner ids nobody holds
        // are dead, an unknown poison word reads as a death, a depth or count only nests or
        // waits), and `T` is handled by `T`'s own impl: validated at its own offset under the
        // lock, relocated from its own old address.
        unsafe impl<T: $crate::ShmSafe> $crate::ShmSafe for $lock<T> {
            const LAYOUT_FINGERPRINT: u64 =
                $crate::layout::compound_fingerprint(stringify!($lock), &[T::LAYOUT_FINGERPRINT]);
            const POINTEE_FINGERPRINT: u64 =
                $crate::layout::compound_fingerprint(stringify!($lock), &[T::POINTEE_FINGERPRINT]);
            const ALL_BIT_PATTERNS_VALID: bool = T::ALL_BIT_PATTERNS_VALID;
            $(
            /// A lock: who holds it, from its owner word `word`; its `data` is the value's
            /// type.
            const SCHEMA: Option<&'static $crate::Schema> = Some(&$crate::Schema::container(
                stringify!($lock),
                $layout,
                size_of::<Self>(),
                align_of::<Self>(),
                &[T::LAYOUT_FINGERPRINT],
                &[
                    $crate::FieldSchema::part(
                        "word",
                        std::mem::offset_of!(Self, raw),
                        4,
                        4,
                        <u32 as $crate::ShmSafe>::LAYOUT_FINGERPRINT,
                    ),
                    $crate::FieldSchema::part(
                        "data",
                        std::mem::offset_of!(Self, data),
                        size_of::<T>(),
                        align_of::<T>(),
                        T::LAYOUT_FINGERPRINT,
                    ),
                ],
            ));

            fn for_each_schema(f: &mut dyn FnMut(&'static $crate::Schema) -> bool) {
                $crate::layout::container_schemas::<T>(Self::SCHEMA, f);
            }
            )?

            /// Validates the data under the lock: another thread or process may be writing
            /// it through the lock right now.
            unsafe fn validate(value: *const Self) -> Result<(), $crate::Invalid> {
                let offset = std::mem::offset_of!(Self, data);
                // SAFETY: a valid, aligned lock under the caller's contract; its words are
                // atomics.
                let raw = unsafe { &(*value).raw };
                raw.check_under(|| {
                    // SAFETY: the data lies within the value, under the caller's contract,
                    // and the lock keeps writers away while it is read.
                    unsafe { T::validate(value.cast::<u8>().add(offset).cast::<T>()) }
                        .map_err(|e| e.within("data", offset))
                })
            }

            #[inline(always)]
            unsafe fn relocate(&mut self, moved_from: usize) {
                let offset = std::mem::offset_of!(Self, data);
                let $this = self;
                let data: &mut T = $data;
                // SAFETY: the data moved along with the lock, from its own old address.
                unsafe { data.relocate(moved_from.wrapping_add(offset)) }
            }

            fn type_fingerprint() -> u64 {
                $crate::layout::compound_fingerprint(stringify!($lock), &[T::type_fingerprint()])
            }
        }
    };
}
pub(crate) use lock_is_shm_safe;

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
