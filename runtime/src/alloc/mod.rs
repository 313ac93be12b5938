//! The in-segment allocator: the block format every memory algorithm keeps, the heap view
//! the segment and its algorithm share, the algorithms (TLSF by default), the thread
//! caches, and Boost's `allocation_command`.

pub mod algorithm;
pub mod block;
pub mod cache;
pub mod command;
pub mod heap;
pub mod seqfit;
pub mod tlsf;

pub use algorithm::{AlgorithmStats, MemoryAlgorithm};
pub use block::{GRANULE as MIN_ALIGN, HEADER as PAYLOAD_PER_ALLOCATION};
pub use command::{Allocation, Command};
pub use heap::Heap;
pub use seqfit::SeqFit;
pub use tlsf::Tlsf;

#[cfg(test)]
mod block_tests;
#[cfg(test)]
pub(crate) mod crash_tests;
