//! Two-process plumbing for the synchronisation workloads, as the peer does it: `fork`, a
//! child that ends with `_exit`, `waitpid`, CPU pinning and CPU time (`getrusage`).

use std::time::Duration;

use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

use crate::{check, check_eq};

/// A forked child process.
pub struct Child {
    pid: libc::pid_t,
}

/// Forks; the child runs `body` and `_exit`s with 0, or 3 if `body` panicked (never
/// returning into the parent's frames, whose guards belong to the parent). The child dies
/// with the parent (`PR_SET_PDEATHSIG`), so a parent whose CHECK fails leaves no child
/// waiting on a condition variable forever.
pub fn fork(body: impl FnOnce()) -> Child {
    let parent = std::process::id();
    // SAFETY: this process is single-threaded (the bench spawns no threads), so the child
    // may allocate and take locks.
    let pid = unsafe { libc::fork() };
    check!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: prctl with an integer argument; getppid cannot fail.
        let orphaned = unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
                || libc::getppid() as u32 != parent
        };
        let code = if orphaned {
            4
        } else {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
                Ok(()) => 0,
                Err(_) => 3,
            }
        };
        // SAFETY: ends the child at once, running no destructor of the parent's objects.
        unsafe { libc::_exit(code) };
    }
    Child { pid }
}

impl Child {
    /// Waits for the child to exit, and checks that it exited with status 0.
    pub fn wait(self) {
        let mut status = 0;
        // SAFETY: `pid` is our child, not waited for yet.
        let waited = unsafe { libc::waitpid(self.pid, &mut status, 0) };
        check_eq!(waited, self.pid);
        check!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child ended with status {status:#x}"
        );
    }
}

/// Whose CPU time to read.
#[derive(Clone, Copy)]
pub enum Who {
    /// This process.
    This,
    /// Its children that have been waited for.
    Children,
}

/// User plus system CPU time of `who` so far.
pub fn cpu_time(who: Who) -> Duration {
    let which = match who {
        Who::This => libc::RUSAGE_SELF,
        Who::Children => libc::RUSAGE_CHILDREN,
    };
    // SAFETY: an all-zero `rusage` is valid, and getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid out-pointer.
    let rc = unsafe { libc::getrusage(which, &mut usage) };
    check_eq!(rc, 0);
    let tv = |t: libc::timeval| {
        Duration::new(t.tv_sec as u64, 0) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Pins this process (and children forked later) to the lowest CPU of its affinity mask,
/// as the peer's `pingpong_samecpu` does; the old mask comes back on drop.
pub struct PinnedToLowestCpu {
    saved: CpuSet,
}

impl PinnedToLowestCpu {
    pub fn new() -> Self {
        let saved = match sched_getaffinity(None) {
            Ok(set) => set,
            Err(e) => panic!("sched_getaffinity: {e}"),
        };
        let cpu = (0..CpuSet::MAX_CPU).find(|&c| saved.is_set(c));
        check!(cpu.is_some(), "an empty affinity mask");
        let mut one = CpuSet::new();
        one.set(cpu.unwrap_or_default());
        if let Err(e) = sched_setaffinity(None, &one) {
            panic!("sched_setaffinity: {e}");
        }
        PinnedToLowestCpu { saved }
    }
}

impl Drop for PinnedToLowestCpu {
    fn drop(&mut self) {
        // Best effort: a failure only leaves this process pinned.
        let _ = sched_setaffinity(None, &self.saved);
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock of `Instant`, comparable between processes.
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}
