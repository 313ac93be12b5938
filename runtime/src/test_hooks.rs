//! Internals that the integration tests and the benchmark look at. Not API: hidden from the
//! documentation and free to change in any release. Everything here only describes or
//! inspects; what could change a segment or the registry says so in its documentation.

/// The segment header's layout and format constants, for tests that forge or patch headers
/// byte by byte (by `offset_of!` on the real struct) and for size limits.
pub use crate::manager::header::{state, SegmentHeader, FORMAT_VERSION, MAGIC, MIN_SEGMENT_SIZE};

/// The per-process registry of mappings, for tests that build pointers between hand-made
/// mappings. `register` changes what [`OffsetPtr`](crate::OffsetPtr) trusts: registering a
/// range that is not a live mapping of this process lets pointers reach memory that is not
/// there. Tests only.
pub mod registry {
    pub use crate::registry::{lookup, register, MappingInfo, Registration};
}
