//! The calling process's id, cached: thread-local records carry it, so that a forked child
//! tells its parent's records from its own.

use std::sync::atomic::{AtomicU32, Ordering};

static PID: AtomicU32 = AtomicU32::new(0);

/// This process's id. Read from a cache that a fork handler refreshes in the child, so a
/// forked child never takes locks in its parent's name.
#[inline]
pub fn current_pid() -> u32 {
    match PID.load(Ordering::Relaxed) {
        0 => init_pid(),
        pid => pid,
    }
}

#[cold]
fn init_pid() -> u32 {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        #[cfg(not(miri))]
        // SAFETY: `refresh_pid` is an `extern "C"` function that only performs an atomic
        // store, which is async-signal-safe and therefore allowed in a fork child handler.
        unsafe {
            libc::pthread_atfork(None, None, Some(refresh_pid));
        }
    });
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
    PID.store(pid, Ordering::Relaxed);
    pid
}

#[cfg(not(miri))]
extern "C" fn refresh_pid() {
    PID.store(0, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_is_cached_and_correct() {
        assert_eq!(current_pid(), std::process::id());
        assert_eq!(current_pid(), std::process::id());
    }
}
