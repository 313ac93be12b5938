//! Second round of attacks on the segment containers with safe code (and forged image
//! bytes, as a corrupt file would hold them): cycles and nesting through every container,
//! forged hash tables read-only, forged `Arc` counts, shared `Map` nodes, `Vec::drain` and
//! `Deque::insert/remove` misuse.

#![allow(missing_docs)]

mod arc;
mod cycles;
mod deque;
mod hash_ro;
mod map_shared;

/// What `#[derive(ShmSafe)]` names the runtime by in this crate (the facade's layout).
mod shm {
    pub use shmkit_runtime::*;
}
