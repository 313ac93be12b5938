//! [`SegmentObserver`]: a read-only mapping that lets writers in, for readers that must
//! not be able to write (telemetry, monitors) of values that keep changing.
//!
//! A [`ReadOnly`](crate::ReadOnly) mapping keeps writers out for as long as it lives, so
//! that the `&T` it lends never changes. An observer does not: writers open, write and go
//! while it reads. So it lends only what can be read while written: [`ShmObservable`]
//! types (atomics, [`SeqLock`](crate::sync::SeqLock)s, arrays of them), and only through
//! [`Observed`], which offers their reading methods alone (its pages are read-only: a
//! store would fault). It finds objects without the index lock, as a writable mapping's
//! `find` does, and never writes a byte: not a lock word, not a cache.
//!
//! How it attaches (see ARCHITECTURE.md, "Sharing"): it holds `ATTACH` shared, so objects
//! it may be reading are never destroyed nor the segment resized or opened exclusively
//! while it lives. When a trusted writer is attached, the bytes are what trusted writers
//! wrote; when none is, the open validates the segment in full, as a read-only open does,
//! keeping writers out until it is done.

use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use super::backing::device::{Device, DeviceBacking};
use super::managed::{Backing, ManagedSegment};
use super::mode::Observe;
use crate::error::Result;
use crate::layout::ShmObservable;
use crate::objects::HashIndex;
use crate::os::{MappableFile, SharedMemoryObject};

/// How long [`SegmentObserver::find`] looks again while writers keep the object or the
/// index busy.
pub const OBSERVE_TIMEOUT: Duration = Duration::from_secs(1);

/// A read-only mapping of a segment that writers keep changing: see the [module
/// docs](self). Hash-indexed segments only (the default), whose lookups need no lock.
///
/// ```
/// # fn main() -> shmkit_runtime::Result<()> {
/// use shmkit_runtime::sync::SeqLock;
/// use shmkit_runtime::{ManagedSharedMemory, SharedMemoryObserver};
/// # let name = format!("shmkit-doc-observer-{}", std::process::id());
/// # struct Remove<'a>(&'a str);
/// # impl Drop for Remove<'_> {
/// #     fn drop(&mut self) { let _ = ManagedSharedMemory::remove(self.0); }
/// # }
/// # let _guard = Remove(&name);
/// let writer = ManagedSharedMemory::create(&name, 64 * 1024)?;
/// let quote = writer.construct("quote", SeqLock::new([100u64, 101]))?;
///
/// let observer = SharedMemoryObserver::open(&name)?; // the writer stays attached
/// let seen = observer.find::<SeqLock<[u64; 2]>>("quote")?.expect("constructed above");
/// quote.write([102, 103])?;
/// assert_eq!(seen.read()?, [102, 103]); // never half of one write and half of another
/// # Ok(())
/// # }
/// ```
///
/// Only observable types are lent: a plain `u64` could change under a `&u64`.
///
/// ```compile_fail,E0277
/// fn peek(observer: &shmkit_runtime::SharedMemoryObserver) {
///     let _ = observer.find::<u64>("hits"); // an `AtomicU64` or a `SeqLock<u64>` instead
/// }
/// ```
///
/// Shared memory and files only: XSI and anonymous memory have no observers.
///
/// ```compile_fail,E0277
/// fn watch(_: shmkit_runtime::SegmentObserver<shmkit_runtime::os::XsiSharedMemory>) {}
/// ```
pub struct SegmentObserver<D: Device> {
    segment: ManagedSegment<DeviceBacking<D>, Observe, HashIndex>,
}

/// An observer of a POSIX shared memory segment.
pub type SharedMemoryObserver = SegmentObserver<SharedMemoryObject>;
/// An observer of a segment in a memory-mapped file.
pub type MappedFileObserver = SegmentObserver<MappableFile>;

impl<D: Device> SegmentObserver<D> {
    /// Opens the segment `name` to observe it; `NotFound` if it is absent, `InUse` while
    /// an exclusive mapping holds it, or while a writer is still opening it and no trusted
    /// one is attached (then try again).
    pub fn open(name: impl AsRef<D::Name>) -> Result<Self> {
        Self::open_timeout(name, crate::manager::header::DEFAULT_INIT_TIMEOUT)
    }

    /// As [`open`](Self::open), waiting up to `init_timeout` for a creator still making
    /// the segment (as [`SegmentBuilder::init_timeout`](crate::SegmentBuilder::init_timeout)).
    pub fn open_timeout(name: impl AsRef<D::Name>, init_timeout: Duration) -> Result<Self> {
        let segment = ManagedSegment::<DeviceBacking<D>>::options()
            .init_timeout(init_timeout)
            .observe()
            .open(name)?;
        Ok(SegmentObserver { segment })
    }

    /// The named object `name` as a `T`, read without any lock: None if there is none;
    /// `TypeMismatch` for an object of another type; `InUse` if writers keep the index
    /// or the object busy (being built or destroyed) for [`OBSERVE_TIMEOUT`].
    ///
    /// Rarely, a lookup racing a writer's failed construction of another object misses an
    /// object that is there (the writer moves index slots): look again before concluding.
    pub fn find<T: ShmObservable>(&self, name: &str) -> Result<Option<Observed<'_, T>>> {
        self.find_timeout(name, OBSERVE_TIMEOUT)
    }

    /// As [`find`](Self::find), looking again for up to `timeout` while writers keep the
    /// object or the index busy.
    pub fn find_timeout<T: ShmObservable>(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<Option<Observed<'_, T>>> {
        // A timeout too long for the clock waits without one.
        let deadline = Instant::now().checked_add(timeout);
        match self.segment.find_observed::<T>(name, deadline)? {
            None => Ok(None),
            // SAFETY: a live, validated `T` of this mapping, which stays mapped and the
            // object alive (no destroy while an observer is attached) as long as `self` is
            // borrowed.
            Some((p, 1)) => Ok(Some(Observed::new(unsafe { p.as_ref() }))),
            Some((_, n)) => Err(crate::Error::TypeMismatch {
                what: format!("named object {name:?}"),
                expected: std::any::type_name::<T>().into(),
                found: format!("an array of {n} {}", std::any::type_name::<T>()),
            }),
        }
    }

    /// The segment's size in bytes.
    pub fn size(&self) -> usize {
        self.segment.size()
    }
}

impl<D: Device> fmt::Debug for SegmentObserver<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentObserver")
            .field("segment", &self.segment.backing().describe())
            .finish_non_exhaustive()
    }
}

/// A value an observer found: its reading methods only (a store into the observer's
/// read-only pages would fault). A [`SeqLock`](crate::sync::SeqLock) reads whole values
/// ([`read`](Observed::<crate::sync::SeqLock<T>>::read)), an atomic loads, an array
/// hands out its elements.
///
/// No writing method, and no `&T` to call one on:
///
/// ```compile_fail,E0599
/// use std::sync::atomic::{AtomicU64, Ordering};
/// fn bump(seen: shmkit_runtime::Observed<'_, AtomicU64>) {
///     seen.store(1, Ordering::Relaxed); // its pages are read-only
/// }
/// ```
/// ```compile_fail,E0599
/// fn publish(seen: shmkit_runtime::Observed<'_, shmkit_runtime::sync::SeqLock<u64>>) {
///     let _ = seen.write(1);
/// }
/// ```
///
/// It borrows its observer, which keeps the bytes mapped and the object alive:
///
/// ```compile_fail,E0505
/// fn keep(observer: shmkit_runtime::SharedMemoryObserver) -> u64 {
///     let seen = observer.find::<std::sync::atomic::AtomicU64>("hits").unwrap().unwrap();
///     drop(observer); // would unmap what `seen` reads
///     seen.load()
/// }
/// ```
pub struct Observed<'a, T> {
    value: NonNull<T>,
    _borrows: PhantomData<&'a T>,
}

impl<'a, T> Observed<'a, T> {
    fn new(value: &'a T) -> Self {
        Observed {
            value: NonNull::from(value),
            _borrows: PhantomData,
        }
    }

    /// The value, for its reading methods (crate code only: users get those methods).
    #[inline]
    pub(crate) fn get(&self) -> &'a T {
        // SAFETY: made from a `&'a T` (`new`).
        unsafe { self.value.as_ref() }
    }
}

impl<T> Clone for Observed<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Observed<'_, T> {}

// SAFETY: as a `&T`: reading methods only, atomic accesses.
unsafe impl<T: Sync> Send for Observed<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Observed<'_, T> {}

impl<T: fmt::Debug> fmt::Debug for Observed<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.get(), f)
    }
}

impl<'a, T: ShmObservable, const N: usize> Observed<'a, [T; N]> {
    /// Element `index`, None when out of bounds.
    pub fn get_element(&self, index: usize) -> Option<Observed<'a, T>> {
        self.get().get(index).map(Observed::new)
    }

    /// The elements, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Observed<'a, T>> + 'a {
        self.get().iter().map(Observed::new)
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        N
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        N == 0
    }
}

macro_rules! observed_atomics {
    ($($atomic:ty => $value:ty),* $(,)?) => {$(
        impl Observed<'_, $atomic> {
            /// The value, with acquire ordering (what the store it reads published is
            /// visible afterwards): a relaxed load and a fence, the kind of load that is
            /// defined on the observer's read-only pages (an acquire load is not).
            #[inline]
            pub fn load(&self) -> $value {
                let value = self.get().load(std::sync::atomic::Ordering::Relaxed);
                std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
                value
            }
        }
    )*};
}

observed_atomics!(
    std::sync::atomic::AtomicBool => bool,
    std::sync::atomic::AtomicU8 => u8,
    std::sync::atomic::AtomicI8 => i8,
    std::sync::atomic::AtomicU16 => u16,
    std::sync::atomic::AtomicI16 => i16,
    std::sync::atomic::AtomicU32 => u32,
    std::sync::atomic::AtomicI32 => i32,
    std::sync::atomic::AtomicU64 => u64,
    std::sync::atomic::AtomicI64 => i64,
    std::sync::atomic::AtomicUsize => usize,
    std::sync::atomic::AtomicIsize => isize,
);
