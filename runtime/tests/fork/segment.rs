//! Managed anonymous shared memory shared with forked children.

use std::ptr::NonNull;

use shmkit_runtime::{Handle, ManagedAnonymousSharedMemory};

/// Forks; the child runs `child` and exits with 0 if it returns true, 1 if false, 2 if it
/// panicked (never returning into `main`). Returns the child's pid.
pub fn fork_child(child: impl FnOnce() -> bool) -> libc::pid_t {
    // SAFETY: this process is single-threaded (no test harness), so the child may run any
    // code; it ends with `_exit` and never returns into `main`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)) {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(_) => 2,
        };
        // SAFETY: `_exit` ends the child at once, without running the parent's exit
        // handlers or destructors (the segment's mapping belongs to the parent too).
        unsafe { libc::_exit(code) };
    }
    pid
}

/// Waits for `pid` and asserts it exited with status 0.
pub fn wait_success(pid: libc::pid_t, what: &str) {
    let mut status = 0;
    // SAFETY: `status` is a valid `c_int` for `waitpid` to write.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid, "waitpid: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status),
        "{what}: the child did not exit normally: {status:#x}"
    );
    assert_eq!(libc::WEXITSTATUS(status), 0, "{what}: the child failed");
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8)
        .collect()
}

fn write(seg: &ManagedAnonymousSharedMemory, h: Handle, bytes: &[u8]) {
    assert!(h.0 as usize + bytes.len() <= seg.size());
    let p = seg.address_from_handle(h).unwrap();
    // SAFETY: the range lies inside the writable segment (checked); the test's processes
    // take turns on these bytes (the other side waits for this one to exit).
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.as_ptr(), bytes.len()) };
}

fn read(seg: &ManagedAnonymousSharedMemory, h: Handle, len: usize) -> Vec<u8> {
    assert!(h.0 as usize + len <= seg.size());
    let p = seg.address_from_handle(h).unwrap();
    let mut out = vec![0; len];
    // SAFETY: the range lies inside the segment (checked), mapped while `seg` lives.
    unsafe { std::ptr::copy_nonoverlapping(p.as_ptr(), out.as_mut_ptr(), len) };
    out
}

fn handle_of(seg: &ManagedAnonymousSharedMemory, p: NonNull<u8>) -> Handle {
    seg.handle_from_address(p.as_ptr()).unwrap()
}

pub fn a_forked_child_allocates_and_the_parent_reads_through_its_handle() {
    const LEN: usize = 5000;
    let seg = ManagedAnonymousSharedMemory::new(256 * 1024).expect("anonymous segment");
    assert!(seg.all_memory_deallocated());
    // The "known handle location": an 8-byte slot both sides know, since the child is a
    // copy of the parent.
    let slot = handle_of(&seg, seg.allocate(8).unwrap());
    write(&seg, slot, &0u64.to_ne_bytes());
    let parent_block = handle_of(&seg, seg.allocate(100).unwrap());
    write(&seg, parent_block, &pattern(1, 100));
    let free_before = seg.free_memory();

    let pid = fork_child(|| {
        // The child sees the parent's data and allocates in the shared allocator.
        if read(&seg, parent_block, 100) != pattern(1, 100) {
            return false;
        }
        let p = seg.allocate(LEN).expect("allocate in the child");
        let h = handle_of(&seg, p);
        write(&seg, h, &pattern(2, LEN));
        write(&seg, slot, &h.0.to_ne_bytes());
        // The child also frees the parent's block: frees cross processes too.
        // SAFETY: the parent's block, which the parent no longer uses after the fork.
        unsafe { seg.deallocate(seg.address_from_handle(parent_block).unwrap()) }.unwrap();
        seg.check_sanity()
    });
    wait_success(pid, "allocating child");

    let h = Handle(u64::from_ne_bytes(read(&seg, slot, 8).try_into().unwrap()));
    assert_ne!(h.0, 0, "the child stored its block's handle");
    assert_eq!(read(&seg, h, LEN), pattern(2, LEN), "the child's bytes");
    let p = seg.address_from_handle(h).unwrap();
    assert!(
        seg.usable_size(p).unwrap() >= LEN,
        "a live block for the parent too"
    );
    assert!(
        seg.usable_size(seg.address_from_handle(parent_block).unwrap())
            .is_none(),
        "the child freed the parent's block"
    );
    assert!(
        seg.free_memory() < free_before,
        "the child's allocation is accounted"
    );
    assert!(seg.check_sanity());
    // SAFETY: the child's block, which nobody uses any more.
    unsafe { seg.deallocate(p) }.unwrap();
    // SAFETY: the slot, not used any more.
    unsafe { seg.deallocate(seg.address_from_handle(slot).unwrap()) }.unwrap();
    assert!(seg.all_memory_deallocated());
}

pub fn parent_and_forked_child_allocate_concurrently_without_corruption() {
    const ROUNDS: u64 = 3000;
    let seg = ManagedAnonymousSharedMemory::new(1024 * 1024).unwrap();
    let churn = |seed: u64| -> bool {
        let mut live: Vec<(Handle, usize, u64)> = Vec::new();
        for i in 0..ROUNDS {
            let len = 16 + ((seed * 7919 + i * 104_729) % 900) as usize;
            let p = seg.allocate(len).expect("allocate while churning");
            let h = handle_of(&seg, p);
            let s = seed * 1_000_003 + i;
            write(&seg, h, &pattern(s, len));
            live.push((h, len, s));
            if live.len() > 20 || i % 3 == 0 {
                let (h, len, s) = live.swap_remove((i as usize * 13) % live.len());
                if read(&seg, h, len) != pattern(s, len) {
                    return false;
                }
                // SAFETY: allocated above by this process, not used afterwards.
                unsafe { seg.deallocate(seg.address_from_handle(h).unwrap()) }.unwrap();
            }
        }
        for (h, len, s) in live {
            if read(&seg, h, len) != pattern(s, len) {
                return false;
            }
            // SAFETY: as above.
            unsafe { seg.deallocate(seg.address_from_handle(h).unwrap()) }.unwrap();
        }
        true
    };
    let pid = fork_child(|| churn(1));
    assert!(churn(2), "the parent's blocks were overwritten");
    wait_success(pid, "churning child");
    assert!(seg.check_sanity(), "{:?}", seg.check());
    assert!(
        seg.all_memory_deallocated(),
        "both processes freed everything they allocated"
    );
}

pub fn a_forked_child_killed_holding_the_lock_does_not_block_the_parent() {
    let seg = ManagedAnonymousSharedMemory::new(64 * 1024).unwrap();
    let flag = handle_of(&seg, seg.allocate(8).unwrap());
    write(&seg, flag, &0u64.to_ne_bytes());
    let kept = handle_of(&seg, seg.allocate(300).unwrap());
    write(&seg, kept, &pattern(5, 300));
    let pid = fork_child(|| {
        seg.with_lock(|| {
            write(&seg, flag, &1u64.to_ne_bytes());
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        })
        .is_ok()
    });
    let started = std::time::Instant::now();
    while read(&seg, flag, 8) != 1u64.to_ne_bytes() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the child never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // SAFETY: `pid` is our child; SIGKILL ends it.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let mut status = 0;
    // SAFETY: `status` is a valid `c_int` for `waitpid` to write.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFSIGNALED(status),
        "the child was killed: {status:#x}"
    );

    // Watchdog: with a single thread, a hang is turned into death by SIGALRM (a failure).
    // SAFETY: `alarm` only arms a timer for this process.
    unsafe { libc::alarm(5) };
    let p = seg
        .allocate(1000)
        .expect("allocation after the lock holder was killed");
    // SAFETY: as above; 0 disarms the timer.
    unsafe { libc::alarm(0) };
    assert!(seg.check_sanity(), "{:?}", seg.check());
    assert_eq!(read(&seg, kept, 300), pattern(5, 300));
    // SAFETY: the blocks allocated above, not used afterwards.
    unsafe {
        seg.deallocate(p).unwrap();
        seg.deallocate(seg.address_from_handle(kept).unwrap())
            .unwrap();
        seg.deallocate(seg.address_from_handle(flag).unwrap())
            .unwrap();
    }
    assert!(seg.all_memory_deallocated());
}
