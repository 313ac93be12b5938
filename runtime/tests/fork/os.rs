//! Anonymous shared memory between a parent and a forked child.

use shmkit_runtime::os::MappedRegion;

pub fn anonymous_shared_memory_is_shared_with_a_forked_child() {
    const LEN: usize = 10_000;
    let region = MappedRegion::anonymous_shared(LEN).expect("anonymous_shared");
    assert_eq!(region.len(), LEN);
    let ptr = region.as_ptr();
    // SAFETY: the region is alive and `LEN` bytes long; nothing else refers to its bytes
    // (the child only runs after this and before we read them again).
    let bytes = unsafe { std::slice::from_raw_parts_mut(ptr, LEN) };
    assert!(
        bytes.iter().all(|&b| b == 0),
        "anonymous memory starts zeroed"
    );
    bytes.fill(1);

    // SAFETY: this process is single-threaded (no test harness), so the child may run any
    // code; it ends with `_exit` and never returns into `main`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // Child: check the parent's bytes, then overwrite them all.
        // SAFETY: the child inherited the mapping; the parent does not touch it until the
        // child has exited.
        let bytes = unsafe { std::slice::from_raw_parts_mut(ptr, LEN) };
        let code = if bytes.iter().all(|&b| b == 1) { 0 } else { 1 };
        bytes.fill(2);
        // SAFETY: `_exit` ends the child at once, without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }

    let mut status = 0;
    // SAFETY: `status` is a valid `c_int` for `waitpid` to write.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid, "waitpid: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status),
        "the child did not exit normally: {status:#x}"
    );
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the child did not see the parent's bytes"
    );

    // SAFETY: the region is alive and `LEN` bytes long; the child that wrote it has exited.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, LEN) };
    assert!(
        bytes.iter().all(|&b| b == 2),
        "the parent sees the child's writes"
    );
}
