//! Synchronisation that lives inside segments and survives the death of a process.

pub(crate) mod atomic;
pub(crate) mod crash;
mod guard;
#[cfg(loom)]
pub(crate) mod model;
pub(crate) mod owner;
pub(crate) mod pause;
mod pid;
mod robust_mutex;
#[cfg(not(loom))]
pub(crate) mod thread_ids;
pub(crate) mod wait;

// The model's owner ids stand in for the threads' (see `model`).
#[cfg(loom)]
pub(crate) use model as thread_ids;

pub(crate) use guard::{lock_with_recovery, RobustGuard};
pub(crate) use owner::Owner;

pub use pid::current_pid;
pub(crate) use robust_mutex::decode_word;
pub use robust_mutex::{Acquired, RobustMutex, LIVENESS_POLL, SPINS};
