//! Synchronisation that lives inside segments and survives the death of a process.

pub(crate) mod atomic;
mod guard;
pub(crate) mod owner;
mod pid;
mod robust_mutex;
pub(crate) mod thread_ids;
pub(crate) mod wait;

pub(crate) use guard::{lock_with_recovery, RobustGuard};
pub(crate) use owner::Owner;

pub use pid::current_pid;
pub use robust_mutex::{Acquired, RobustMutex, LIVENESS_POLL, SPINS};
