//! [`MemoryAlgorithm`]: a segment's memory algorithm as itself (Boost's
//! `get_memory_algorithm`), apart from the thread caches and objects the segment adds.
//! Segments have one algorithm today, TLSF; when the algorithm becomes a type parameter
//! (the pluggable-algorithm work), this view is where its own counters show.

use super::managed::{Backing, ManagedSegment};
use super::mode::Mode;
use crate::alloc::tlsf::{self, AlgorithmStats};
use crate::error::Result;
use crate::manager::SegmentCore;
use crate::objects::IndexKind;

/// The memory algorithm of one mapped segment, borrowed from it. Read-only: it describes
/// and checks, it never allocates.
#[derive(Clone, Copy, Debug)]
pub struct MemoryAlgorithm<'a> {
    core: &'a SegmentCore,
}

impl MemoryAlgorithm<'_> {
    /// The algorithm's name: `"tlsf"`.
    pub fn name(&self) -> &'static str {
        tlsf::NAME
    }

    /// Its counters, measured in one go.
    pub fn stats(&self) -> AlgorithmStats {
        self.core.algorithm_stats()
    }

    /// Checks every invariant of the algorithm's structures (and of this thread's cache in
    /// the segment); the error says what is wrong (Boost's `check_sanity`).
    pub fn check(&self) -> Result<()> {
        self.core.check()
    }
}

impl<B: Backing, M: Mode, I: IndexKind> ManagedSegment<B, M, I> {
    /// The segment's memory algorithm, to read its own view of the segment.
    pub fn memory_algorithm(&self) -> MemoryAlgorithm<'_> {
        MemoryAlgorithm { core: self.core() }
    }
}
