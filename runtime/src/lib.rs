//! shmkit runtime: the raw OS layer, managed segments on every backend, the in-segment
//! allocator, offset pointers and the per-process registry of mappings.

pub mod error;
pub mod os;

pub use error::{Error, Result};
pub mod alloc;
pub mod segment;
pub mod sync;

pub use alloc::{Allocation, Command};
pub use segment::{
    CopyOnWrite, Handle, ManagedAnonymousSharedMemory, ManagedExternalBuffer, ManagedHeapMemory,
    ManagedMappedFile, ManagedSegment, ManagedSharedMemory, ManagedXsiSharedMemory, ReadOnly,
    ReadWrite, SegmentOptions,
};

pub mod position;
pub mod ptr;
pub mod registry;

pub use position::{PositionIndependent, ShmMut, ShmSafe};
pub use ptr::{relocate_value, relocate_values, OffsetPtr};
pub use registry::{MappingInfo, Registration};
