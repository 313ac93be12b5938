//! The allocator seen through managed segments: allocation behaviours on heap and
//! external-buffer segments, the per-thread caches of small blocks, and the seam containers
//! allocate through. Miri runs this binary (`.ci/miri`); the tests that need OS mappings or
//! processes are ignored there.

mod attack_algorithm;
mod attack_runs;
mod bump;
mod cache;
mod on_seqfit;
mod on_tlsf;
mod seam;
