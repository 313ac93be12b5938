//! [`AlgorithmView`]: a segment's memory algorithm as itself (Boost's
//! `get_memory_algorithm`), apart from the thread caches and objects the segment adds.

use super::managed::{Backing, ManagedSegment};
use super::mode::Mode;
use crate::alloc::{AlgorithmStats, MemoryAlgorithm};
use crate::error::Result;
use crate::manager::SegmentCore;
use crate::objects::IndexKind;

/// The memory algorithm of one mapped segment, borrowed from it. Read-only: it describes
/// and checks, it never allocates.
#[derive(Clone, Copy, Debug)]
pub struct AlgorithmView<'a> {
    core: &'a SegmentCore,
    name: &'static str,
}

impl AlgorithmView<'_> {
    /// The algorithm's name ([`MemoryAlgorithm::NAME`]: `"tlsf"` by default).
    pub fn name(&self) -> &'static str {
        self.name
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

impl<B: Backing, M: Mode, I: IndexKind, A: MemoryAlgorithm> ManagedSegment<B, M, I, A> {
    /// The segment's memory algorithm, to read its own view of the segment.
    pub fn memory_algorithm(&self) -> AlgorithmView<'_> {
        AlgorithmView {
            core: self.core(),
            name: A::NAME,
        }
    }
}
