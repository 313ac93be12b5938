//! The calling process's id, cached (it is written into every lock we take), and a liveness
//! check for the owner of a lock.

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

/// Whether process `pid` still runs. A zombie (dead, not yet reaped) counts as dead: it will
/// never release a lock. A process we may not signal (EPERM) is alive.
pub fn process_alive(pid: u32) -> bool {
    let Some(p) = rustix::process::Pid::from_raw(pid as i32) else {
        return false;
    };
    match rustix::process::test_kill_process(p) {
        Err(rustix::io::Errno::SRCH) => false,
        _ => !is_zombie(pid),
    }
}

fn is_zombie(pid: u32) -> bool {
    // /proc/<pid>/stat is "pid (comm) S ..."; comm may hold spaces or parentheses, so the
    // state is the first field after the last ')'.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace()
                .next()
                .map(|st| st == "Z" || st == "X")
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_is_cached_and_correct() {
        assert_eq!(current_pid(), std::process::id());
        assert_eq!(current_pid(), std::process::id());
    }

    #[test]
    #[cfg_attr(miri, ignore = "spawns a process")]
    fn dead_and_zombie_processes_are_not_alive() {
        assert!(process_alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Wait until it has exited but do not reap it: a zombie.
        while !is_zombie(pid) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(!process_alive(pid));
        child.wait().unwrap();
        assert!(!process_alive(pid));
    }
}
