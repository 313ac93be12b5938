//! Synchronisation that lives inside segments and survives the death of a process.

mod guard;
mod pid;
mod robust_mutex;

pub(crate) use guard::{lock_with_recovery, RobustGuard};

pub use pid::{current_pid, process_alive};
pub use robust_mutex::RobustMutex;
