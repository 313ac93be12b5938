//! shmkit runtime: the raw OS layer, managed segments on every backend, the in-segment
//! allocator, offset pointers and the per-process registry of mappings.
//!
//! # Layers
//!
//! Each folder is a layer; a layer uses only the layers before it (tests aside), which the
//! `use crate::` lines of each file show. The layers in backticks are internal: only what
//! the public layers re-export of them is API.
//!
//! 1. [`os`]: shared memory objects, files, mapped regions, anonymous and XSI memory, file
//!    locks;
//! 2. `robust`: the robust lock word, lock owner ids and the recover-or-poison guard of the internal locks;
//! 3. `alloc`: the TLSF allocator inside a segment, the thread caches, `allocation_command`;
//! 4. `manager`: the segment manager, one formatted segment as an allocator under its lock,
//!    and the segment header (the on-disk format);
//! 5. [`layout`], [`ptr`], `registry`: what may live in a segment ([`ShmSafe`], the
//!    [`ShmMut`] guard, [`Schema`] and fingerprints), offset pointers, and which address
//!    ranges of this process are segments;
//! 6. [`objects`]: named, unique and anonymous objects and their indexes, over the manager;
//! 7. [`segment`]: managed segments ([`ManagedSharedMemory`], [`ManagedMappedFile`], …), their
//!    backings and access modes, with the object and root methods;
//! 8. [`sync`]: `Mutex<T>` and the other locks for user data, robust across processes.
//!
//! [`error`] is used by every layer. The containers crate and the `shmkit` facade come on top.
//!
//! # Model checking
//!
//! Built with `--cfg loom`, the lock algorithms run on loom's atomics and a model of the
//! futex and of thread deaths (`robust::model`), so that `tests/loom.rs` checks every
//! interleaving of their own source:
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p shmkit-runtime --test loom
//! --release` (a target of its own: `--cfg loom` rebuilds every crate).

// Under the model the threads' owner ids are the model's, which leaves their helpers unused.
#![cfg_attr(loom, allow(dead_code))]

pub(crate) mod alloc;
pub mod error;
pub mod layout;
pub(crate) mod manager;
pub mod objects;
pub mod os;
pub mod ptr;
pub(crate) mod registry;
pub(crate) mod robust;
pub mod segment;
#[cfg(feature = "serde")]
mod serde_support;
pub mod sync;
#[doc(hidden)]
pub mod test_hooks;

pub use alloc::{AlgorithmStats, Allocation, Command};

pub mod algorithm {
    //! Memory algorithms: how a segment finds free space in its block area.
    //!
    //! A segment's algorithm is a type parameter ([`Tlsf`], the default, or [`SeqFit`], or one
    //! of your own implementing [`MemoryAlgorithm`]), chosen on the builder
    //! (`ManagedHeapMemory::options().algorithm::<SeqFit>()`) and recorded in the segment
    //! header: opening with another is an [`Error::AlgorithmMismatch`](crate::Error::AlgorithmMismatch).
    //!
    //! # The block format
    //! Whatever the algorithm, the block area is a chain of blocks that the rest of the segment
    //! (thread caches, object entries, containers, recovery, the inspector) walks and checks
    //! without it. Each block starts with a header word: its size in bytes (header included, a
    //! multiple of [`GRANULE`], at least [`MIN_BLOCK`], below [`MAX_BLOCK`]) and flags:
    //! [`FREE`] (the algorithm's), [`ALGORITHM_BIT`] (the algorithm's own use), and the marks
    //! [`ENTRY`] and [`INTERNAL`] that the owner of a used block sets without the lock (an
    //! algorithm keeps them as they are). The next block starts `size` bytes later; the area
    //! ends in a zero-sized used sentinel at [`Heap::end`]. A used block's payload starts
    //! [`HEADER`] bytes in; a free block's bytes after its header are the algorithm's.

    pub use crate::alloc::block::{
        size_in, Block, ALGORITHM_BIT, ENTRY, FLAGS, FREE, GRANULE, HEADER, INTERNAL, MARKS,
        MAX_BLOCK, MIN_BLOCK,
    };
    pub use crate::alloc::{AlgorithmStats, Heap, MemoryAlgorithm, SeqFit, Tlsf};
}
pub use error::{Error, Result};
pub use layout::{
    type_fingerprint_of, FieldSchema, Invalid, NoPadding, PositionIndependent, Schema, SchemaDiff,
    SchemaKind, ShmDerefMut, ShmImmutable, ShmMut, ShmObservable, ShmRoot, ShmSafe, VariantSchema,
};
pub use manager::header::MIN_SEGMENT_SIZE;
pub use manager::{Handle, ParseHandleError};
pub use objects::{
    Anonymous, HashIndex, IndexKind, Lookup, NamedIndex, NullIndex, ObjectInfo, ObjectKind,
    ObjectTarget, OrderedIndex, Unique, MAX_NAME_LEN,
};
pub use os::Permissions;
pub use os::{FileLock, FileLockGuard, FileLockSharedGuard};
pub use ptr::{relocate_value, relocate_values, OffsetPtr};
pub use segment::inspect;
pub use segment::{
    AlignedBuffer, AllocError, AllocErrorKind, CopyOnWrite, Exclusive, Growth, ImageBytes,
    ManagedAnonymousSharedMemory, ManagedExternalBuffer, ManagedHeapMemory, ManagedMappedFile,
    ManagedSegment, ManagedSharedMemory, ManagedXsiSharedMemory, MappedFileObserver, Observed,
    ReadOnly, ReadWrite, SegmentAllocator, SegmentBuilder, SegmentImage, SegmentObserver,
    SharedMemoryObserver,
};

/// Items the derive macros' expansions use. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use core::mem::{align_of, offset_of, size_of};
    pub use core::stringify;

    pub use crate::layout::{
        field_fingerprint, payload_start, pointee_fingerprint, variant_field_offset,
        ForwardsImmutable, Invalid,
    };

    /// What the derive puts in place of the type itself in a field that points back at it
    /// (`OffsetPtr<Node>` inside `Node`) while deciding whether the type is `ShmImmutable`:
    /// such a field adds no field of its own, and the bound would otherwise be a cycle.
    /// User code can name it and implement its own traits for it; that cannot change the
    /// answer, since the derive puts it only inside [`ForwardsImmutable`] types, arrays and
    /// tuples, which ask nothing of it but `ShmImmutable`.
    pub enum AssumedImmutable {}
    // SAFETY: uninhabited: there is never a value to relocate or read.
    unsafe impl crate::ShmSafe for AssumedImmutable {}
    // SAFETY: as above.
    unsafe impl crate::ShmImmutable for AssumedImmutable {}

    /// The helpers of the derived `Serialize` impl.
    #[cfg(feature = "serde")]
    pub use crate::serde_support::{
        Field as SerdeField, Sink as SerdeSink, StructSink, VariantSink, ViaOpaque, ViaSerialize,
    };
    /// serde, for `#[derive(ShmSafe)]`'s `Serialize` impl (feature `serde`).
    #[cfg(feature = "serde")]
    pub use ::serde;
    /// Keeps the derived `Serialize` impl given to it: the runtime has the `serde` feature.
    #[cfg(feature = "serde")]
    #[macro_export]
    #[doc(hidden)]
    macro_rules! __shmkit_serde_impl {
        ($($impl:tt)*) => { $($impl)* };
    }
    /// Drops the derived `Serialize` impl given to it: the runtime has no `serde` feature.
    #[cfg(not(feature = "serde"))]
    #[macro_export]
    #[doc(hidden)]
    macro_rules! __shmkit_serde_impl {
        ($($impl:tt)*) => {};
    }
    pub use crate::__shmkit_serde_impl as serde_impl;

    /// Simulated crashes for the sweeps of the crates above (feature `crash-points`).
    #[cfg(feature = "crash-points")]
    pub use crate::robust::crash::external as crash;

    /// Without `crash-points`, the steps at which a process may die compile to nothing.
    #[cfg(not(feature = "crash-points"))]
    pub mod crash {
        /// Marks a step at which a process may die: nothing here.
        #[inline(always)]
        pub fn point(_step: &'static str) {}

        /// Whether the thread is unwinding from a simulated crash: never here.
        #[inline(always)]
        pub fn crashing() -> bool {
            false
        }
    }

    /// What a root without a derived schema would report (the derive always gives one).
    pub const NO_SCHEMA: crate::Schema = crate::Schema {
        name: "?",
        kind: crate::SchemaKind::UnitStruct,
        size: 0,
        align: 1,
        fields: &[],
        variants: &[],
        generics: &[],
    };
}
