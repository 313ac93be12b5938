//! Managed segments: [`ManagedSegment`] over the segment manager, the access modes, and one
//! backing per kind of memory (shared memory, mapped file, heap, external buffer, anonymous,
//! XSI).

pub mod backing;
pub mod managed;
pub mod mode;
mod objects_api;
mod root_api;

pub use self::backing::anonymous::{
    AnonymousMemory, BasicManagedAnonymousSharedMemory, ManagedAnonymousSharedMemory,
};
pub use self::backing::buffer::{
    BasicManagedExternalBuffer, ExternalBuffer, ManagedExternalBuffer,
};
pub use self::backing::device::{
    BasicManagedMappedFile, BasicManagedSharedMemory, Device, DeviceBacking, ManagedMappedFile,
    ManagedSharedMemory,
};
pub use self::backing::heap::{BasicManagedHeapMemory, HeapMemory, ManagedHeapMemory};
pub use self::backing::xsi::{BasicManagedXsiSharedMemory, ManagedXsiSharedMemory, XsiBacking};
pub use self::managed::{Backing, ManagedSegment, SegmentOptions};
pub use self::mode::{CopyOnWrite, Mode, ReadOnly, ReadWrite, Writable};
