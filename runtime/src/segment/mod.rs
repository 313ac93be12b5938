//! Managed segments: [`ManagedSegment`] over the segment manager, the access modes, and one
//! backing per kind of memory (shared memory, mapped file, heap, external buffer, anonymous,
//! XSI).

mod algorithm;
mod allocator;
pub mod backing;
pub mod builder;
pub mod inspect;
pub mod managed;
pub mod mode;
mod objects_api;
pub mod observer;
pub mod owned;
mod root_api;

pub use self::algorithm::AlgorithmView;
pub use self::allocator::{AllocError, AllocErrorKind, SegmentAllocator};
pub use self::backing::anonymous::{AnonymousMemory, ManagedAnonymousSharedMemory};
pub use self::backing::buffer::{
    AlignedBuffer, ExternalBuffer, ImageBytes, ManagedExternalBuffer, SegmentImage,
};
pub use self::backing::device::{Device, DeviceBacking, ManagedMappedFile, ManagedSharedMemory};
pub use self::backing::heap::{HeapMemory, ManagedHeapMemory};
pub use self::backing::xsi::{ManagedXsiSharedMemory, XsiBacking};
pub use self::builder::{NamedBacking, OpensIn, SegmentBuilder};
pub use self::managed::{Backing, ManagedSegment};
pub use self::mode::{
    AnyType, CopyOnWrite, CreateMode, Exclusive, ExclusiveAccess, ImmutableTypes, Lendable, Lends,
    Mode, ObservableTypes, Observe, ReadOnly, ReadWrite, Writable,
};
pub use self::observer::{
    MappedFileObserver, Observed, SegmentObserver, SharedMemoryObserver, OBSERVE_TIMEOUT,
};
pub use crate::manager::limits::Growth;
