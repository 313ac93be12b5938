//! The segment `String`, `Box` and `Arc`/`Weak`: against std (seeded random operation
//! sequences), nested in vectors and in each other (a derived recursive type too),
//! allocation failure, dropping, bytes from elsewhere, guards that lie (every container's
//! ext trait, in `liar`), and (not under Miri, which maps no shared memory and starts no
//! process) shared memory with a child process.

#![allow(missing_docs)]

mod arc;
mod boxed;
mod failure;
mod handles_crash;
mod liar;
mod model;
mod nested;
mod owned;
#[cfg(not(miri))]
mod shared;
mod validate;

/// What `#[derive(ShmSafe)]` names the runtime by in this crate (the facade's layout).
mod shm {
    pub use shmkit_runtime::*;
}
