//! Names no other test uses.

use std::sync::atomic::{AtomicUsize, Ordering};

/// A name no other test (in this process or a concurrent run) uses: `shmkit_t_<pid>_<n>`.
/// Valid as a shared memory name, a file name and an XSI key file name.
pub fn unique_name() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "shmkit_t_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
