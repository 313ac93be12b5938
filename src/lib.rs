//! shmkit: typed data shared between processes.
//!
//! This facade only re-exports: the runtime (segments, allocator, offset pointers),
//! the derive macros and the segment containers. See the README for a tour.

pub use shmkit_containers as containers;
pub use shmkit_macros::*;
pub use shmkit_runtime::*;
