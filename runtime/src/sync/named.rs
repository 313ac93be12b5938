//! Synchronisation objects found by name, Boost's `named_mutex`, `named_semaphore`,
//! `named_condition` and `named_sharable_mutex`: [`Named<T>`] puts any lock type of this
//! module in a small shared memory segment of its own, named as the object is.

use std::fmt;
use std::ops::Deref;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use super::{Condvar, Mutex, RwLock, Semaphore};
use crate::error::{Error, Result};
use crate::layout::ShmSafe;
use crate::manager::header::DEFAULT_INIT_TIMEOUT;
use crate::{ManagedSharedMemory, MIN_SEGMENT_SIZE};

/// The size of the segment holding a `T`: the smallest segment (a header, the name index
/// and an entry of a lock's size fit in it) plus room for the value twice over, which
/// covers the allocator's tables growing with the segment (measured up to 64 KiB values).
const fn segment_size<T>() -> usize {
    MIN_SEGMENT_SIZE + 2 * size_of::<T>() + align_of::<T>()
}
/// [`segment_size`] plus `room` bytes the value allocates once created, and the
/// allocator's overhead for them (a block header and alignment, a sixteenth more and a
/// page covers them); `InvalidSize` past what a segment can be.
fn segment_room<T>(room: usize, name: &str) -> Result<usize> {
    let extra = if room == 0 {
        Some(0)
    } else {
        room.checked_add(room / 16)
            .and_then(|r| r.checked_add(4096))
    };
    extra
        .and_then(|extra| segment_size::<T>().checked_add(extra))
        .filter(|&size| size <= isize::MAX as usize / 2)
        .ok_or_else(|| Error::InvalidSize {
            size: room as u64,
            reason: format!("no segment can hold {room} more bytes for the named object {name:?}"),
        })
}
/// How many times [`Named::open_or_create_with_room`] tries again when the name it could
/// neither create nor open was removed in between.
const RACE_ROUNDS: u32 = 100;
/// The object's name inside its segment.
const OBJECT: &str = "shmkit::sync::Named";
/// How often [`Named::open`] looks for the object while its creator is still constructing it.
const CONSTRUCTION_POLL: Duration = Duration::from_millis(1);

/// A lock (or any [`ShmSafe`] value) that processes find by name, in a POSIX shared memory
/// object of that name holding it alone; it derefs to the value.
///
/// The object outlives the processes that use it, as Boost's named objects do: it is gone
/// only when [`remove`](Self::remove)d (processes that have it open keep using it). The
/// value has the robustness of its type: a process killed holding a [`NamedMutex`] leaves it
/// to the next locker poisoned ([`PoisonCause::OwnerDied`](super::PoisonCause::OwnerDied)),
/// a [`NamedSemaphore`] unit taken by a dead process is not given back, and so on.
///
/// Names are those of shared memory objects: 1 to 255 bytes, no `/`, no NUL, not `.` or
/// `..` ([`Error::InvalidName`] otherwise); the namespace is the one of
/// [`ManagedSharedMemory`], so a segment and a named object cannot share a name. A name
/// holding another type is a [`Error::TypeMismatch`].
///
/// Any `ShmSafe` lock type works, `Named<RwLock<()>>` and `Named<Condvar>` too; the aliases
/// name the common ones.
pub struct Named<T: ShmSafe> {
    object: NonNull<T>,
    // Keeps the mapping that `object` points into.
    _segment: ManagedSharedMemory,
    name: String,
}

/// A mutex found by name (Boost's `named_mutex`): `lock`, `try_lock` and `lock_timeout`
/// through `Deref` to [`Mutex<()>`](Mutex).
pub type NamedMutex = Named<Mutex<()>>;

/// A reader-writer lock found by name (Boost's `named_sharable_mutex` and
/// `named_upgradable_mutex`): `read`, `write` and `upgradable_read` through `Deref` to
/// [`RwLock<()>`](RwLock).
pub type NamedRwLock = Named<RwLock<()>>;

/// A counting semaphore found by name (Boost's `named_semaphore`): create it with
/// `NamedSemaphore::create_with(name, Semaphore::new(initial))`.
pub type NamedSemaphore = Named<Semaphore>;

/// A condition variable found by name (Boost's `named_condition`), used with a
/// [`NamedMutex`]'s guards: `cv.wait(mutex.lock()?)`.
pub type NamedCondvar = Named<Condvar>;

// SAFETY: shares `&T` between the threads that use the handle, as `Arc<T>` does; the mapping
// is not tied to a thread.
unsafe impl<T: ShmSafe + Send + Sync> Send for Named<T> {}
// SAFETY: as above.
unsafe impl<T: ShmSafe + Send + Sync> Sync for Named<T> {}

impl<T: ShmSafe> Named<T> {
    /// Creates the object `name` holding `T::default()` (an unlocked lock); AlreadyExists
    /// if the name is taken.
    pub fn create(name: impl AsRef<str>) -> Result<Self>
    where
        T: Default,
    {
        Self::create_with(name, T::default())
    }

    /// Creates the object `name` holding `value`; AlreadyExists if the name is taken.
    pub fn create_with(name: impl AsRef<str>, value: T) -> Result<Self> {
        Self::create_with_room(name, value, 0)
    }

    /// As [`create_with`](Self::create_with), with `room` more bytes in the object's
    /// segment for what the value allocates there once created (a message queue's slots,
    /// the buffer of a segment `Vec`), plus the allocator's overhead for them.
    pub fn create_with_room(name: impl AsRef<str>, value: T, room: usize) -> Result<Self> {
        let name = name.as_ref();
        Self::create_in(name, segment_room::<T>(room, name)?, || value)
    }

    /// Opens the object `name`, or creates it holding `T::default()`. Among processes
    /// racing on one name exactly one creates; all get the same object.
    pub fn open_or_create(name: impl AsRef<str>) -> Result<Self>
    where
        T: Default,
    {
        Self::open_or_create_with(name, T::default)
    }

    /// Opens the object `name`, or creates it holding `init()` (run by the one process
    /// that creates it).
    pub fn open_or_create_with(name: impl AsRef<str>, init: impl FnOnce() -> T) -> Result<Self> {
        Self::open_or_create_with_room(name, 0, init)
    }

    /// As [`open_or_create_with`](Self::open_or_create_with), creating with `room` more
    /// bytes as [`create_with_room`](Self::create_with_room) does. A name that holds
    /// something else is refused as [`open`](Self::open) refuses it, never taken over.
    pub fn open_or_create_with_room(
        name: impl AsRef<str>,
        room: usize,
        init: impl FnOnce() -> T,
    ) -> Result<Self> {
        let name = name.as_ref();
        let size = segment_room::<T>(room, name)?;
        let mut init = Some(init);
        // Each round either creates, or opens what another process created; a name removed
        // between the two is tried again (a few times: removals racing without end are
        // reported).
        for _ in 0..RACE_ROUNDS {
            let created = Self::create_in(name, size, || match init.take() {
                Some(init) => init(),
                None => unreachable!("a round creates at most once, and returns"),
            });
            match created {
                Err(Error::AlreadyExists { .. }) => {}
                other => return other,
            }
            match Self::open(name) {
                Err(Error::NotFound { .. }) => continue,
                other => return other,
            }
        }
        Err(Error::Timeout {
            what: Self::describe(name),
            reason: format!("created and removed by others {RACE_ROUNDS} times in a row"),
        })
    }

    /// Creates the object's segment alone (an exclusive mapping, which nobody can open
    /// meanwhile), builds the object in it and then shares it: an opener finds the object
    /// or no segment, never one still without its object. Leaves nothing behind on error.
    fn create_in(name: &str, size: usize, init: impl FnOnce() -> T) -> Result<Self> {
        let segment = ManagedSharedMemory::options()
            .exclusive()
            .create(name, size)
            .map_err(|e| Self::about(name, e))?;
        let shared = segment
            .construct(OBJECT, init())
            .map(drop)
            .and_then(|()| segment.into_shared());
        let found = shared.and_then(|segment| match segment.find::<T>(OBJECT)? {
            Some(object) => Ok(Named {
                object: NonNull::from(object),
                _segment: segment,
                name: name.to_owned(),
            }),
            None => Err(Error::NotFound {
                what: format!("{}, just constructed", Self::describe(name)),
            }),
        });
        if found.is_err() {
            // The construction's error says what went wrong.
            let _ = ManagedSharedMemory::remove(name);
        }
        found.map_err(|e| Self::about(name, e))
    }

    /// Opens the existing object `name`; [`Error::NotFound`] if there is none, and
    /// [`Error::TypeMismatch`] if the name holds a segment of another use (at once: a
    /// segment is shared only once its object is in it). Waits (up to 10 s, as segment
    /// opens do) while a creator still holds the segment alone.
    pub fn open(name: impl AsRef<str>) -> Result<Self> {
        let name = name.as_ref();
        let deadline = Instant::now() + DEFAULT_INIT_TIMEOUT;
        let segment = loop {
            match ManagedSharedMemory::open(name) {
                Err(Error::InUse { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(CONSTRUCTION_POLL)
                }
                other => break other.map_err(|e| Self::about(name, e))?,
            }
        };
        match segment
            .find::<T>(OBJECT)
            .map_err(|e| Self::about(name, e))?
        {
            Some(object) => Ok(Named {
                object: NonNull::from(object),
                _segment: segment,
                name: name.to_owned(),
            }),
            None => Err(Error::TypeMismatch {
                what: name.to_owned(),
                expected: Self::describe(name),
                found: "a shared memory segment of another use (no named object in it)".into(),
            }),
        }
    }

    /// Removes the object `name`; false if there was none. Processes that have it open
    /// keep using it; the name is free at once.
    pub fn remove(name: impl AsRef<str>) -> Result<bool> {
        let name = name.as_ref();
        ManagedSharedMemory::remove(name).map_err(|e| Self::about(name, e))
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `what` for errors and `Debug`: the type's name without module paths, and the name.
    fn describe(name: &str) -> String {
        format!(
            "named {} {name:?}",
            short_type_name(std::any::type_name::<T>())
        )
    }

    /// `e` about the named object `name` instead of its segment.
    fn about(name: &str, e: Error) -> Error {
        match e {
            Error::NotFound { .. } => Error::NotFound {
                what: Self::describe(name),
            },
            Error::AlreadyExists { .. } => Error::AlreadyExists {
                what: Self::describe(name),
            },
            Error::TypeMismatch {
                expected, found, ..
            } => Error::TypeMismatch {
                what: Self::describe(name),
                expected,
                found,
            },
            other => other,
        }
    }
}

impl<T: ShmSafe> Deref for Named<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: a live `T` found or constructed in `segment`, which stays mapped while
        // `self` lives; a shared mapping lends only `&T`.
        unsafe { self.object.as_ref() }
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for Named<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Named")
            .field("name", &self.name)
            .field("object", &**self)
            .finish()
    }
}

/// `a::b::Mutex<c::d::E>` as `Mutex<E>`.
fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut word = String::new();
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            out.push_str(word.rsplit("::").next().unwrap_or_default());
            word.clear();
            out.push(c);
        }
    }
    out.push_str(word.rsplit("::").next().unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn type_names_lose_their_paths() {
        assert_eq!(
            super::short_type_name("shmkit_runtime::sync::mutex::Mutex<()>"),
            "Mutex<()>"
        );
        assert_eq!(
            super::short_type_name("a::B<c::D, [e::F; 2]>"),
            "B<D, [F; 2]>"
        );
    }
}
