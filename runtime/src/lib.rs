//! shmkit runtime: the raw OS layer, managed segments on every backend, the in-segment
//! allocator, offset pointers and the per-process registry of mappings.

pub mod os;
pub mod error;

pub use error::{Error, Result};
