//! Segment-resident containers (`Vec`, `String`, `Map`, …) of shmkit. They build on the
//! runtime's allocator and offset pointers; the containers issue fills this crate.
//!
//! # How a container reaches its allocator
//!
//! A container stores no allocator: it finds one from its own address with
//! [`SegmentAllocator::of(self)`](shmkit_runtime::SegmentAllocator::of), which looks the
//! address up in the per-process registry of mappings (a thread-local fast path, no heap
//! allocation) and yields the allocator of exactly the mapping the container lives in, with
//! this thread's cache there. A container that is not in a writable segment (a `Vec::new()`
//! on the stack, one in a read-only mapping) gets an error instead, which a growing
//! operation returns and `Drop` of an empty container never needs. The allocator borrows
//! the container, so it cannot outlive the mapping.
//!
//! Growth first tries [`grow_in_place`](shmkit_runtime::SegmentAllocator::grow_in_place)
//! (the next block, when free). Otherwise plain-data elements move with
//! [`grow`](shmkit_runtime::SegmentAllocator::grow), which copies bytes; position-dependent
//! elements (holding offset pointers) are moved one by one into a new block with their
//! relocation hook. Failures are the `Copy` [`AllocError`](shmkit_runtime::AllocError),
//! convertible into the runtime `Error`.
