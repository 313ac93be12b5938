//! Attacks on the segment containers with safe code (and forged image bytes, as a corrupt
//! file would hold them): regression tests of the findings (fixed) and of attacks that
//! held.

#![allow(missing_docs)]

mod cross;
mod hash_panics;
mod recursion;

/// What `#[derive(ShmSafe)]` names the runtime by in this crate (the facade's layout).
mod shm {
    pub use shmkit_runtime::*;
}
