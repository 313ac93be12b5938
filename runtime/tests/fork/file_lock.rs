//! `FileLock` across `fork`: a child holds none of its parent's locks, and dropping its
//! copy of a guard releases nothing of the parent's.

use shmkit_runtime::os::FileLock;
use shmkit_runtime::Error;
use shmkit_test_support::TempPath;

use crate::segment::wait_success;

pub fn a_child_forked_while_its_parent_holds_a_file_lock_neither_holds_nor_releases_it() {
    let path = TempPath::new();
    std::fs::write(path.get(), b"").unwrap();
    let mut lock = FileLock::open(path.get()).unwrap();
    let guard = lock.lock().unwrap();
    // SAFETY: this process is single-threaded (no test harness); the child leaves with
    // `_exit` below and never returns into `main`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // The child's copy of the guard: dropping it must not release the parent's lock.
        drop(guard);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let refused = matches!(lock.try_lock(), Err(Error::Unsupported { .. }))
                && matches!(lock.lock_shared(), Err(Error::Unsupported { .. }));
            let mut own = FileLock::open(path.get()).unwrap();
            let kept_out = own.try_lock_shared().unwrap().is_none();
            refused && kept_out
        }));
        // SAFETY: `_exit` ends the child at once, without the parent's destructors.
        unsafe { libc::_exit(if matches!(result, Ok(true)) { 0 } else { 1 }) };
    }
    wait_success(pid, "child forked while its parent held a file lock");
    let mut other = FileLock::open(path.get()).unwrap();
    assert!(
        other.try_lock_shared().unwrap().is_none(),
        "the parent's lock was released by its child"
    );
    drop(guard);
    assert!(other.try_lock().unwrap().is_some());
}
