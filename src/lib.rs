#![doc = include_str!("../README.md")]
//!
//! This facade only re-exports: the runtime (segments, allocator, offset pointers), the
//! derive macros and the segment containers.

pub use shmkit_containers as containers;
pub use shmkit_macros as macros;
pub use shmkit_macros::{shm_segment, ShmSafe};
pub use shmkit_runtime::*;
