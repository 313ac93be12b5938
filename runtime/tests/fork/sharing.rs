//! A forked child never inherits exclusivity: the exclusive mapping is not mapped in the
//! child (`MADV_DONTFORK`; its range is reserved, inaccessible), and the child's copy of its
//! descriptor no longer refers to the locked description, so the parent's drop frees the
//! segment while the child lives.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;

use shmkit_runtime::{Error, ManagedSharedMemory};
use shmkit_test_support::ShmGuard;

use crate::liveness::wait_within;
use crate::segment::{fork_child, wait_success};

/// Whether `addr` lies in a readable mapping of this process (from `/proc/self/maps`).
fn is_readable(addr: usize) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines().any(|line| {
        let mut fields = line.split(' ');
        let (start, end) = fields.next().unwrap().split_once('-').unwrap();
        let start = usize::from_str_radix(start, 16).unwrap();
        let end = usize::from_str_radix(end, 16).unwrap();
        (start..end).contains(&addr) && fields.next().unwrap().starts_with('r')
    })
}

pub fn a_forked_child_does_not_inherit_an_exclusive_mapping() {
    let name = ShmGuard::new();
    let mut seg = ManagedSharedMemory::options()
        .exclusive()
        .create(name.get(), 64 * 1024)
        .unwrap();
    seg.construct("n", 1u64).unwrap();
    *seg.find_mut::<u64>("n").unwrap().unwrap().get_mut() = 2;
    let base = seg.base_address().as_ptr().addr();
    let (mut parent_end, mut child_end) = UnixStream::pair().unwrap();

    let pid = fork_child(|| {
        // The exclusive mapping is not there, and the parent's still excludes this process.
        let unmapped = !is_readable(base);
        let refused = matches!(
            ManagedSharedMemory::open(name.get()),
            Err(Error::InUse { .. })
        );
        child_end.write_all(b"c").unwrap();
        // Live until the parent has opened the segment again (bounded: this child holds
        // the parent's end too, so the parent's death would not end the read).
        child_end
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let mut byte = [0u8];
        child_end.read_exact(&mut byte).unwrap();
        unmapped && refused
    });
    assert!(is_readable(base), "the parent keeps its mapping");
    let mut byte = [0u8];
    parent_end.read_exact(&mut byte).unwrap();
    drop(seg);
    // The child lives and holds its copy of every descriptor: none keeps the lock.
    let again = ManagedSharedMemory::options()
        .exclusive()
        .open(name.get())
        .expect("the child does not keep the exclusive lock");
    assert_eq!(again.find::<u64>("n").unwrap(), Some(&2));
    parent_end.write_all(b"p").unwrap();
    wait_success(pid, "exclusive child");
}

/// A byte far from the runtime's own locks, which the converting thread locks on its
/// description so that a child can tell that description from one of its own.
const MARK: i64 = 1 << 61;

/// `F_OFD_SETLK` (exclusive) or `F_OFD_GETLK` (asking for an exclusive lock) on [`MARK`]:
/// whether it succeeded, and the lock type the kernel wrote back. Async-signal-safe.
fn mark(fd: libc::c_int, cmd: libc::c_int) -> (bool, libc::c_short) {
    // SAFETY: all-zero is a valid `flock`; `l_pid` must be 0 for OFD locks.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = MARK;
    lock.l_len = 1;
    // SAFETY: `lock` is a valid `flock`, read and written by the kernel during the call.
    let ok = unsafe { libc::fcntl(fd, cmd, &mut lock) } == 0;
    (ok, lock.l_type)
}

/// The descriptor of the segment being converted (-1: none) and its file's inode, as the
/// forking thread's children read them.
static CONVERTING: AtomicI32 = AtomicI32::new(-1);
static INODE: AtomicU64 = AtomicU64::new(0);

/// In a child forked at any moment: whether the converting segment's descriptor refers to
/// the placeholder (before the conversion) or to a description of the child's own (after
/// it), never to the parent's, which holds [`MARK`]. Async-signal-safe.
fn not_the_parents_description() -> bool {
    let fd = CONVERTING.load(Ordering::Acquire);
    if fd < 0 {
        return true;
    }
    // SAFETY: all-zero is a valid `stat`, which `fstat` fills.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `stat` is valid for `fstat` to write.
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return false;
    }
    if stat.st_ino != INODE.load(Ordering::Relaxed) {
        return true;
    }
    // Another description holds MARK exclusively: this one is the child's own.
    mark(fd, libc::F_OFD_GETLK) == (true, libc::F_WRLCK as libc::c_short)
}

pub fn a_child_forked_while_a_mapping_is_shared_never_keeps_its_parents_description() {
    const ROUNDS: usize = 300;
    let done = Arc::new(AtomicBool::new(false));
    let forking = Arc::clone(&done);
    let forker = std::thread::spawn(move || {
        let mut forks = 0;
        while !forking.load(Ordering::Relaxed) {
            // SAFETY: the child makes only async-signal-safe calls (atomic loads, `fstat`,
            // `fcntl`) and leaves with `_exit`, as a child of a threaded process must.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
            if pid == 0 {
                let code = if not_the_parents_description() { 0 } else { 1 };
                // SAFETY: ends the child at once.
                unsafe { libc::_exit(code) };
            }
            let status = wait_within(pid, "a child forked during a conversion");
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "fork {forks}: the child kept its parent's description: {status:#x}"
            );
            forks += 1;
        }
        forks
    });
    for _ in 0..ROUNDS {
        let name = ShmGuard::new();
        let seg = ManagedSharedMemory::options()
            .exclusive()
            .create(name.get(), 64 * 1024)
            .unwrap();
        let fd = seg.backing().device().as_fd().as_raw_fd();
        assert!(mark(fd, libc::F_OFD_SETLK).0, "locking the mark");
        let stat = rustix::fs::fstat(seg.backing().device()).unwrap();
        INODE.store(stat.st_ino, Ordering::Relaxed);
        CONVERTING.store(fd, Ordering::Release);
        let seg = seg.into_shared().unwrap();
        CONVERTING.store(-1, Ordering::Release);
        drop(seg);
    }
    done.store(true, Ordering::Relaxed);
    let forks = forker.join().expect("the forking thread");
    assert!(forks > 0, "no fork ran during the conversions");
}
