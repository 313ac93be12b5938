//! The in-segment allocator: a TLSF heap over the segment's block area, plus Boost's
//! `allocation_command`.

pub mod cache;
pub mod command;
pub mod tlsf;

pub use command::{Allocation, Command};
pub use tlsf::{AlgorithmStats, GRANULE as MIN_ALIGN, HEADER as PAYLOAD_PER_ALLOCATION};
