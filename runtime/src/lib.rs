//! shmkit runtime: the raw OS layer, managed segments on every backend, the in-segment
//! allocator, offset pointers and the per-process registry of mappings.
//!
//! Where to look:
//! - [`os`]: shared memory objects, files, mapped regions, anonymous and XSI memory;
//! - [`segment`]: managed segments ([`ManagedSharedMemory`], [`ManagedMappedFile`], …),
//!   their header and creation protocol, and the segment manager;
//! - [`alloc`]: the TLSF allocator inside a segment and `allocation_command`;
//! - [`ptr`] and [`position`]: offset pointers and the position-dependence model;
//! - [`registry`]: which address ranges of this process are segments;
//! - [`objects`]: named, unique and anonymous objects and their indexes;
//! - [`sync`]: the robust process-shared lock;
//! - [`schema`]: layouts, fingerprints and typed roots ([`ShmRoot`]).

pub mod alloc;
pub mod error;
pub mod objects;
pub mod os;
pub mod position;
pub mod ptr;
pub mod registry;
pub mod schema;
pub mod segment;
pub mod sync;

pub use alloc::{Allocation, Command};
pub use error::{Error, Result};
pub use objects::{
    Anonymous, HashIndex, IndexKind, Lookup, NamedIndex, NullIndex, ObjectInfo, ObjectKind,
    ObjectTarget, OrderedIndex, Unique, MAX_NAME_LEN,
};
pub use os::Permissions;
pub use position::{type_fingerprint_of, PositionIndependent, ShmMut, ShmSafe};
pub use ptr::{relocate_value, relocate_values, OffsetPtr};
pub use registry::{MappingInfo, Registration};
pub use schema::{FieldSchema, Schema, SchemaDiff, SchemaKind, ShmRoot, VariantSchema};
pub use segment::header::MIN_SEGMENT_SIZE;
pub use segment::{
    AlignedBuffer, CopyOnWrite, Handle, ManagedAnonymousSharedMemory, ManagedExternalBuffer,
    ManagedHeapMemory, ManagedMappedFile, ManagedSegment, ManagedSharedMemory,
    ManagedXsiSharedMemory, ParseHandleError, ReadOnly, ReadWrite, SegmentBuilder,
};

/// Items the derive macros' expansions use. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use core::mem::{align_of, offset_of, size_of};
    pub use core::stringify;

    /// What a root without a derived schema would report (the derive always gives one).
    pub const NO_SCHEMA: crate::Schema = crate::Schema {
        name: "?",
        kind: crate::SchemaKind::UnitStruct,
        size: 0,
        align: 1,
        fields: &[],
        variants: &[],
    };
}
