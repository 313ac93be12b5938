//! Access modes as types, so that writing through a read-only mapping, or taking `&mut`
//! through a mapping that others share, does not compile.
//!
//! Four modes: [`ReadWrite`] (shared), [`Exclusive`], [`ReadOnly`] and [`CopyOnWrite`];
//! a fifth, [`Observe`], only inside a [`SegmentObserver`](crate::SegmentObserver).
//! Which mappings may coexist is enforced when a device is opened (see
//! `ARCHITECTURE.md`, "Sharing"): an exclusive mapping excludes every other, and read-only
//! or copy-on-write mappings exclude shared read-write ones.

use crate::layout::{ShmImmutable, ShmObservable, ShmSafe};
use crate::os::MapMode;

mod sealed {
    pub trait Sealed {}
}

/// How a segment is mapped. Sealed: the four modes below are all there is.
pub trait Mode: sealed::Sealed + Send + Sync + 'static {
    /// The mapping mode this access mode uses.
    const MAP: MapMode;
    /// Which types its mappings lend as `&T` ([`Lends`]): [`AnyType`] or [`ImmutableTypes`].
    type Lending;
    /// Whether no other mapping may exist while this one lives.
    #[doc(hidden)]
    const EXCLUSIVE: bool = false;
    /// Whether this read-only mapping lets writers in (a [`SegmentObserver`](crate::SegmentObserver)'s).
    #[doc(hidden)]
    const OBSERVES: bool = false;
}

/// Modes that may change the segment's bytes (in the device, or privately).
#[diagnostic::on_unimplemented(
    message = "a `{Self}` segment cannot be written",
    label = "opened read-only",
    note = "to change it, open it read-write (`open`) or copy-on-write (`options().copy_on_write().open(..)`); to read it, use `root`, `find_root` or `find`"
)]
pub trait Writable: Mode<Lending = AnyType> {}

/// Modes whose mappings may hand out `&T`: every mode for every [`ShmSafe`] `T`, except that
/// a read-only mapping lends only [`ShmImmutable`] types. An atomic found there could be
/// written through `&T`, into memory lent as immutable (on a read-only page: a fault), so
/// asking for one does not compile:
///
/// ```compile_fail,E0277
/// use std::sync::atomic::AtomicU64;
/// fn bump(segment: &shmkit_runtime::ManagedSharedMemory<shmkit_runtime::ReadOnly>) {
///     let _ = segment.find::<AtomicU64>("hits"); // open it read-write to reach atomics
/// }
/// ```
///
/// Code generic over a [`Writable`] mode needs no bound: such a mode lends any type.
pub trait Lends<T: ShmSafe>: Mode {}

impl<M: Mode, T: Lendable<M::Lending>> Lends<T> for M {}

/// The [`Mode::Lending`] of writable modes: every [`ShmSafe`] type.
#[derive(Debug)]
pub enum AnyType {}
/// The [`Mode::Lending`] of read-only mappings: [`ShmImmutable`] types only.
#[derive(Debug)]
pub enum ImmutableTypes {}

/// The [`Mode::Lending`] of observers: [`ShmObservable`] types only.
#[derive(Debug)]
pub enum ObservableTypes {}

/// `T` may be lent under the rule `L` ([`AnyType`], [`ImmutableTypes`] or
/// [`ObservableTypes`]).
pub trait Lendable<L>: ShmSafe {}

impl<T: ShmSafe> Lendable<AnyType> for T {}
impl<T: ShmImmutable> Lendable<ImmutableTypes> for T {}
impl<T: ShmObservable> Lendable<ObservableTypes> for T {}

/// Modes that hand out `&mut` (through [`ShmMut`](crate::ShmMut)) to what the segment
/// holds: nobody else can see the bytes change, since no other mapping exists
/// ([`Exclusive`]) or the writes are private ([`CopyOnWrite`]).
#[diagnostic::on_unimplemented(
    message = "a `{Self}` mapping hands out `&T` only, never `&mut T` or `ShmMut<T>`",
    label = "not exclusive: other mappings and processes may read these bytes meanwhile",
    note = "change shared data through an atomic or a lock inside it (`root`/`find` give `&T`), or open the segment exclusively: `options().exclusive().open(..)`, then `into_shared()` once it is built"
)]
pub trait ExclusiveAccess: Writable {}

/// Modes a segment can be created in: read-write, shared or exclusive.
pub trait CreateMode: Writable {}

/// Read and write, shared: changes reach the device and every other mapping, so the
/// segment hands out `&T` only; shared data changes through atomics and locks inside it.
#[derive(Debug)]
pub enum ReadWrite {}
/// Read and write, exclusive: no other mapping, in this or another process, exists while
/// this one lives (opening one fails with [`Error::InUse`](crate::Error::InUse)), so the
/// segment hands out `&mut` ([`find_mut`](crate::ManagedSegment::find_mut),
/// [`root_mut`](crate::ManagedSegment::root_mut)). Heap memory and external buffers are
/// always exclusive; a device is opened so with `options().exclusive()`.
#[derive(Debug)]
pub enum Exclusive {}
/// Read only: the mapping is not writable, and the API offers no way to write: allocating
/// through a read-only segment does not compile.
///
/// ```compile_fail,E0599
/// fn write(segment: &shmkit_runtime::ManagedSharedMemory<shmkit_runtime::ReadOnly>) {
///     let _ = segment.allocate(8); // no `allocate` on a read-only segment
/// }
/// ```
/// ```
/// fn read(segment: &shmkit_runtime::ManagedSharedMemory<shmkit_runtime::ReadOnly>) -> usize {
///     segment.free_memory() // reading is fine
/// }
/// ```
#[derive(Debug)]
pub enum ReadOnly {}
/// Copy-on-write: changes stay private to this mapping; the device is never modified.
#[derive(Debug)]
pub enum CopyOnWrite {}
/// Read only, with writers: the mode of a [`SegmentObserver`](crate::SegmentObserver),
/// which hands out [`ShmObservable`] types only, read without any lock.
#[derive(Debug)]
pub enum Observe {}

impl sealed::Sealed for ReadWrite {}
impl sealed::Sealed for Exclusive {}
impl sealed::Sealed for ReadOnly {}
impl sealed::Sealed for CopyOnWrite {}
impl sealed::Sealed for Observe {}

impl Mode for ReadWrite {
    const MAP: MapMode = MapMode::ReadWrite;
    type Lending = AnyType;
}
impl Mode for Exclusive {
    const MAP: MapMode = MapMode::ReadWrite;
    type Lending = AnyType;
    const EXCLUSIVE: bool = true;
}
impl Mode for ReadOnly {
    const MAP: MapMode = MapMode::ReadOnly;
    type Lending = ImmutableTypes;
}
impl Mode for CopyOnWrite {
    const MAP: MapMode = MapMode::CopyOnWrite;
    type Lending = AnyType;
}
impl Mode for Observe {
    const MAP: MapMode = MapMode::ReadOnly;
    type Lending = ObservableTypes;
    const OBSERVES: bool = true;
}

impl Writable for ReadWrite {}
impl Writable for Exclusive {}
impl Writable for CopyOnWrite {}

impl ExclusiveAccess for Exclusive {}
impl ExclusiveAccess for CopyOnWrite {}

impl CreateMode for ReadWrite {}
impl CreateMode for Exclusive {}
