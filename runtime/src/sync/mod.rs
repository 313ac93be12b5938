//! Synchronisation that lives inside segments and survives the death of a process.

mod pid;
mod robust_mutex;

pub use pid::{current_pid, process_alive};
pub use robust_mutex::{Acquired, RobustMutex};
