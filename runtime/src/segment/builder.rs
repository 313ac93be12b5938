//! One way to open every managed segment, in the spirit of `std::fs::OpenOptions`:
//! `ManagedSharedMemory::options()` returns a [`SegmentBuilder`], setters choose the
//! options, type-changing setters choose the access mode and the index, and a finisher
//! (`create`, `open`, `open_or_create`, …) maps the segment.
//!
//! ```
//! # fn main() -> shmkit_runtime::Result<()> {
//! use shmkit_runtime::{ManagedSharedMemory, OrderedIndex, Permissions};
//! # let name = format!("shmkit-doc-builder-{}", std::process::id());
//! # struct Remove<'a>(&'a str);
//! # impl Drop for Remove<'_> {
//! #     fn drop(&mut self) { let _ = shmkit_runtime::ManagedSharedMemory::remove(self.0); }
//! # }
//! # let _guard = Remove(&name);
//! let segment = ManagedSharedMemory::options()
//!     .permissions(Permissions::from_mode(0o640))
//!     .index::<OrderedIndex>()
//!     .create(&name, 64 * 1024)?;
//! segment.construct("answer", 42u64)?;
//! drop(segment); // a read-only mapping excludes writable ones (`Error::InUse`)
//!
//! let reader = ManagedSharedMemory::options()
//!     .read_only()
//!     .index::<OrderedIndex>()
//!     .open(&name)?;
//! assert_eq!(reader.find::<u64>("answer")?, Some(&42));
//! # drop(reader);
//! ManagedSharedMemory::remove(&name)?;
//! # Ok(())
//! # }
//! ```
//!
//! The builder's type parameters are the segment's: `SegmentBuilder<B, M, I, A>` finishes into
//! `ManagedSegment<B, M, I, A>`. The mode `M` carries exclusivity too
//! (`.exclusive()` gives [`Exclusive`]); parameters that later issues add (the allocator's
//! memory algorithm) are appended to both, with defaults, and chosen by type-changing
//! setters such as `.algorithm::<A>()`: code that spells today's types keeps compiling.
//!
//! Which backing accepts which setter is one table, the capability traits below
//! ([`NamedBacking`], [`OpensIn`]), so a setter a backing cannot honour does not compile, and
//! the error says why.

use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::Duration;

use super::backing::buffer::ExternalBuffer;
use super::backing::device::{Device, DeviceBacking};
use super::backing::xsi::XsiBacking;
use super::managed::{Backing, ManagedSegment};
use super::mode::{CopyOnWrite, CreateMode, Exclusive, Mode, ReadOnly, ReadWrite};
use crate::alloc::{MemoryAlgorithm, Tlsf};
use crate::manager::header::DEFAULT_INIT_TIMEOUT;
use crate::manager::limits::Growth;
use crate::objects::{HashIndex, IndexKind};
use crate::os::Permissions;

/// What the setters chose. Crate-private on purpose: the builder is the one way to set it,
/// so a new option (or one that only some backings honour) is a new setter, never a breaking
/// change to a public struct, and no call site can build settings the backing ignores.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// Mode bits of a created device.
    pub(crate) permissions: Permissions,
    /// How long an opener waits for another process that is still creating the segment.
    pub(crate) init_timeout: Duration,
    /// Map at this address (refusing to replace an existing mapping) instead of anywhere.
    pub(crate) address: Option<NonNull<u8>>,
    /// Reserve the device's storage at creation (`fallocate`).
    pub(crate) reserve: bool,
    /// The size a created device segment may grow to while mapped (None: the default).
    pub(crate) max_size: Option<usize>,
    /// How this mapping grows a device segment that is full.
    pub(crate) growth: Growth,
}

// SAFETY: `address` is only a requested location, never dereferenced through the settings.
unsafe impl Send for Settings {}
// SAFETY: as above.
unsafe impl Sync for Settings {}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            permissions: Permissions::default(),
            init_timeout: DEFAULT_INIT_TIMEOUT,
            address: None,
            reserve: true,
            max_size: None,
            growth: Growth::default(),
        }
    }
}

/// Options for creating or opening a managed segment with backing `B`, access mode `M` and
/// name index `I`; see the [module docs](self). Get one from the segment type's `options()`.
pub struct SegmentBuilder<B, M = ReadWrite, I = HashIndex, A = Tlsf> {
    pub(crate) settings: Settings,
    _types: PhantomData<Chosen<B, M, I, A>>,
}

/// The types a builder has chosen, as a function's result: the builder holds no `B`, `M` or
/// `I`, so it is `Send`, `Sync` and covariant whatever they are.
type Chosen<B, M, I, A> = fn() -> (B, M, I, A);

impl<B, M, I, A> Clone for SegmentBuilder<B, M, I, A> {
    fn clone(&self) -> Self {
        SegmentBuilder {
            settings: self.settings.clone(),
            _types: PhantomData,
        }
    }
}

impl<B, M, I, A> fmt::Debug for SegmentBuilder<B, M, I, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentBuilder")
            .field("backing", &std::any::type_name::<B>())
            .field("mode", &std::any::type_name::<M>())
            .field("index", &std::any::type_name::<I>())
            .field("algorithm", &std::any::type_name::<A>())
            .field("settings", &self.settings)
            .finish()
    }
}

impl<B: Backing> ManagedSegment<B, B::DefaultMode> {
    /// A builder with the default options: the backing's default mode (shared read-write,
    /// or exclusive for heap memory and external buffers), the hash index, permissions
    /// `0o600`, a 10 s wait for a concurrent creator, storage reserved at creation.
    pub fn options() -> SegmentBuilder<B, B::DefaultMode> {
        SegmentBuilder {
            settings: Settings::default(),
            _types: PhantomData,
        }
    }
}

impl<B: Backing, M: Mode, I: IndexKind, A: MemoryAlgorithm> SegmentBuilder<B, M, I, A> {
    /// The same options for another name index ([`OrderedIndex`](crate::OrderedIndex),
    /// [`NullIndex`](crate::NullIndex)). Opening checks that the segment was created with it.
    pub fn index<J: IndexKind>(self) -> SegmentBuilder<B, M, J, A> {
        self.retype()
    }

    /// The same options for another memory algorithm ([`SeqFit`](crate::alloc::SeqFit), or
    /// one of your own: see [`MemoryAlgorithm`]). The segment records it at creation;
    /// opening with another is an [`Error::AlgorithmMismatch`](crate::Error::AlgorithmMismatch).
    pub fn algorithm<G: MemoryAlgorithm>(self) -> SegmentBuilder<B, M, I, G> {
        SegmentBuilder {
            settings: self.settings,
            _types: PhantomData,
        }
    }

    /// How long an opener waits for another process that is still creating the segment
    /// (default 10 s).
    pub fn init_timeout(mut self, timeout: Duration) -> Self
    where
        B: NamedBacking,
    {
        self.settings.init_timeout = timeout;
        self
    }

    /// The builder of a [`SegmentObserver`](crate::SegmentObserver)'s mapping: only
    /// observers open in this mode (its segments would lend what writers change).
    pub(crate) fn observe(self) -> SegmentBuilder<B, super::mode::Observe, I, A> {
        self.retype()
    }

    fn retype<N: Mode, J: IndexKind>(self) -> SegmentBuilder<B, N, J, A> {
        SegmentBuilder {
            settings: self.settings,
            _types: PhantomData,
        }
    }
}

impl<B: Backing, I: IndexKind, A: MemoryAlgorithm> SegmentBuilder<B, ReadWrite, I, A> {
    /// Open or create exclusively: no other mapping, in this or another process, may exist
    /// while the segment lives (others' opens fail with
    /// [`Error::InUse`](crate::Error::InUse), and so does this one while anyone maps it),
    /// so the segment hands out `&mut` (`find_mut`, `root_mut`). Build a database offline,
    /// then [`into_shared`](crate::ManagedSegment::into_shared) it.
    pub fn exclusive(self) -> SegmentBuilder<B, Exclusive, I, A>
    where
        B: OpensIn<Exclusive>,
    {
        self.retype()
    }
}

impl<B: Backing, M: CreateMode, I: IndexKind, A: MemoryAlgorithm> SegmentBuilder<B, M, I, A> {
    /// Mode bits of a device this builder creates (default `0o600`); opening ignores them.
    pub fn permissions(mut self, permissions: Permissions) -> Self
    where
        B: NamedBacking,
    {
        self.settings.permissions = permissions;
        self
    }

    /// Open read-only: the segment can be inspected, never changed (the segment type has no
    /// writing methods). Such a builder only opens.
    pub fn read_only(self) -> SegmentBuilder<B, ReadOnly, I, A>
    where
        B: OpensIn<ReadOnly>,
    {
        self.retype()
    }

    /// Open copy-on-write: allocation and writes work but stay private to this mapping;
    /// the device and other processes never see them. Such a builder only opens.
    pub fn copy_on_write(self) -> SegmentBuilder<B, CopyOnWrite, I, A>
    where
        B: OpensIn<CopyOnWrite>,
    {
        self.retype()
    }
}

mod sealed {
    pub trait Sealed {}
}

/// Backings that live under a name or key in the OS, created by one process and opened by
/// others: they take creation permissions and an opener's wait for the creator.
///
/// ```compile_fail,E0277
/// use std::time::Duration;
/// let _ = shmkit_runtime::ManagedHeapMemory::options().init_timeout(Duration::from_secs(1));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no name in the OS: it takes no permissions or init timeout",
    note = "only shared memory, mapped files and XSI segments are created by one process and opened by others"
)]
pub trait NamedBacking: Backing + sealed::Sealed {}

/// Backings that can be mapped in access mode `M` besides read-write. XSI memory has no
/// copy-on-write attachment, so asking for one does not compile:
///
/// ```compile_fail,E0277
/// let _ = shmkit_runtime::ManagedXsiSharedMemory::options().copy_on_write();
/// ```
/// ```
/// let _ = shmkit_runtime::ManagedXsiSharedMemory::options().read_only();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be opened `{M}`",
    note = "shared memory and files open exclusive, read-only or copy-on-write, XSI segments and external buffers read-only; heap memory and external buffers are always exclusive, anonymous memory read-write only"
)]
pub trait OpensIn<M: Mode>: Backing + sealed::Sealed {}

impl<D: Device> sealed::Sealed for DeviceBacking<D> {}
impl sealed::Sealed for XsiBacking {}
impl sealed::Sealed for ExternalBuffer<'_> {}

impl<D: Device> NamedBacking for DeviceBacking<D> {}
impl NamedBacking for XsiBacking {}

impl<D: Device> OpensIn<Exclusive> for DeviceBacking<D> {}
impl<D: Device> OpensIn<ReadOnly> for DeviceBacking<D> {}
impl<D: Device> OpensIn<CopyOnWrite> for DeviceBacking<D> {}
impl OpensIn<ReadOnly> for XsiBacking {}
impl OpensIn<ReadOnly> for ExternalBuffer<'_> {}
