//! Lock owners across `fork`: a child must never take or release a lock in its parent's
//! name, nor use a mapping it did not inherit.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use shmkit_runtime::{Error, ManagedAnonymousSharedMemory, ManagedSharedMemory};
use shmkit_test_support::ShmGuard;

use crate::segment::{fork_child, wait_success};

/// How long the parent holds its lock while it watches whether the child gets in.
const HOLD: Duration = Duration::from_millis(1500);

/// Fills this process's descriptor table (its soft limit lowered to `limit`): a child
/// forked now cannot open anything until it closes some of them.
fn fill_descriptor_table(limit: u64) -> (Vec<std::fs::File>, Rlimit) {
    let before = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(limit),
            maximum: before.maximum,
        },
    )
    .unwrap();
    let mut files = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        files.push(f);
    }
    (files, before)
}

pub fn a_child_that_cannot_reopen_the_description_does_not_take_the_parents_lock() {
    let seg = ManagedAnonymousSharedMemory::new(64 * 1024).unwrap();
    let (mut parent_end, mut child_end) = UnixStream::pair().unwrap();
    let (fillers, limit) = fill_descriptor_table(256);
    let seg = &seg;
    let pid = fork_child(move || {
        drop(fillers);
        child_end.set_read_timeout(Some(10 * HOLD)).unwrap();
        let mut byte = [0u8];
        child_end.read_exact(&mut byte).unwrap();
        // The parent holds the lock now: this waits until it lets go, or is refused (this
        // child has no description of its own to take locks on).
        match seg.with_lock(|| ()) {
            Ok(()) => child_end.write_all(b"t").is_ok(),
            Err(e) => matches!(e, Error::Os { .. }) && e.to_string().contains("forked child"),
        }
    });
    setrlimit(Resource::Nofile, limit).unwrap();
    let child_got_in = seg
        .with_lock(|| {
            parent_end.write_all(b"h").unwrap();
            parent_end.set_read_timeout(Some(HOLD)).unwrap();
            parent_end.read_exact(&mut [0u8]).is_ok()
        })
        .unwrap();
    wait_success(pid, "child without a description of its own");
    assert!(
        !child_got_in,
        "the child took the segment lock while its parent held it"
    );
}

pub fn a_child_forked_inside_with_lock_does_not_release_the_parents_lock() {
    let seg = ManagedAnonymousSharedMemory::new(64 * 1024).unwrap();
    let (mut parent_end, mut child_end) = UnixStream::pair().unwrap();
    let mut pid = -1;
    let child_got_in = seg
        .with_lock(|| {
            // SAFETY: this process is single-threaded (no test harness); the child leaves
            // with `_exit` below and never returns into `main`.
            pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
            if pid == 0 {
                // The child leaves the critical section with its copy of the guard.
                return false;
            }
            parent_end.set_read_timeout(Some(HOLD)).unwrap();
            parent_end.read_exact(&mut [0u8]).is_ok()
        })
        .unwrap();
    if pid == 0 {
        // The parent still holds the lock: this waits until it lets go.
        let code = match seg.with_lock(|| child_end.write_all(b"t")) {
            Ok(Ok(())) => 0,
            _ => 1,
        };
        // SAFETY: `_exit` ends the child at once, without the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    wait_success(pid, "child forked inside with_lock");
    assert!(
        !child_got_in,
        "the child's copy of the guard released the lock its parent held"
    );
}

pub fn an_exclusive_mapping_used_in_a_forked_child_is_an_error_not_a_crash() {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::options()
        .exclusive()
        .create(name.get(), 64 * 1024)
        .unwrap();
    seg.construct("n", 1u64).unwrap();
    let base = seg.base_address().as_ptr();
    // The child's handle is a copy of the parent's; its bytes are not mapped there. The
    // child owns its copy and drops it (the parent drops its own when this returns).
    let pid = fork_child(move || {
        let refused = |r: Result<(), Error>| matches!(r, Err(Error::InUse { .. }));
        let errors = refused(seg.find::<u64>("n").map(drop))
            && refused(seg.allocate(8).map(drop))
            && refused(seg.check())
            && refused(seg.flush())
            && !seg.contains(base)
            && seg.handle_from_address(base).is_none();
        // What cannot fail with an error panics, quietly here.
        std::panic::set_hook(Box::new(|_| {}));
        let panics = std::panic::catch_unwind(|| seg.size()).is_err();
        drop(seg);
        errors && panics
    });
    wait_success(pid, "child using the exclusive mapping");
    let seg = ManagedSharedMemory::open(name.get()).unwrap();
    assert_eq!(seg.find::<u64>("n").unwrap(), Some(&1));
    seg.check().unwrap();
}

/// As above, for a segment large enough to have thread caches, with blocks in this
/// thread's cache at the fork: `allocate` and `deallocate` try the cache before the check
/// that the mapping is here, and must still refuse (the cache is reached only through a
/// slot recorded under this process's pid, which the child does not have).
pub fn an_exclusive_mapping_with_a_thread_cache_used_in_a_forked_child_is_an_error() {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::options()
        .exclusive()
        .create(name.get(), 16 << 20)
        .unwrap();
    // The first allocation claims this thread's slot, the second refills its bin with a
    // run (cached), the free caches one more; `live` stays allocated.
    let p = seg.allocate(8).unwrap();
    let live = seg.allocate(8).unwrap();
    // SAFETY: a live allocation of this segment, not used afterwards.
    unsafe { seg.deallocate(p) }.unwrap();
    assert!(seg.cached_memory() > 0, "no thread cache to test");
    let pid = fork_child(|| {
        let refused = |r: Result<(), Error>| matches!(r, Err(Error::InUse { .. }));
        // SAFETY: `live` is a live allocation of the parent's mapping, freed once here.
        refused(seg.allocate(8).map(drop)) && refused(unsafe { seg.deallocate(live) })
    });
    wait_success(pid, "child using the cached exclusive mapping");
    // SAFETY: `live` is still live in this process (the child's free was refused).
    unsafe { seg.deallocate(live) }.unwrap();
    seg.check().unwrap();
}

pub fn a_parent_that_dies_holding_the_lock_does_not_block_its_child() {
    let (mut report, mut reporter) = UnixStream::pair().unwrap();
    // The middle process plays the parent: it makes the segment, forks, and dies holding
    // the lock; its child (our grandchild: a nested fork) must take the lock over.
    let middle = fork_child(move || {
        let seg = ManagedAnonymousSharedMemory::new(64 * 1024).unwrap();
        let (mut held, mut wait) = UnixStream::pair().unwrap();
        fork_child(|| {
            wait.set_read_timeout(Some(10 * HOLD)).unwrap();
            wait.read_exact(&mut [0u8]).unwrap();
            // Watchdog: a hang is death by SIGALRM, which the report then lacks.
            // SAFETY: `alarm` only arms a timer for this process.
            unsafe { libc::alarm(5) };
            let took_over = seg.allocate(100).is_ok() && seg.check_sanity();
            reporter.write_all(&[u8::from(took_over)]).is_ok()
        });
        seg.with_lock(|| {
            held.write_all(b"h").unwrap();
            // Dies holding the lock.
            // SAFETY: `_exit` ends this process at once.
            unsafe { libc::_exit(0) }
        })
        .is_ok()
    });
    wait_success(middle, "parent dying with the lock");
    report.set_read_timeout(Some(10 * HOLD)).unwrap();
    let mut took_over = [0u8];
    report.read_exact(&mut took_over).unwrap();
    assert_eq!(took_over, [1], "the child took over its dead parent's lock");
}

/// attack9: an open that finds no descriptor left for a description of its own holds its
/// locks on its mapping's description instead (or fails): either way, an in-place destroy
/// through the process's other mapping is refused while it maps.
pub fn an_open_short_of_descriptors_still_excludes_destroys() {
    let name = ShmGuard::new();
    let pid = fork_child(|| {
        let mut a = ManagedSharedMemory::create(name.get(), 64 * 1024).unwrap();
        a.construct("n", 7u64).unwrap();
        let (mut fillers, limit) = fill_descriptor_table(256);
        // One descriptor free: the device opens, its reopen does not.
        fillers.pop();
        let b = ManagedSharedMemory::open(name.get());
        drop(fillers);
        setrlimit(Resource::Nofile, limit).unwrap();
        let Ok(mut b) = b else {
            // Refused for want of descriptors: nothing to exclude.
            return a.destroy::<u64>("n").unwrap();
        };
        let kept = b.find::<u64>("n").unwrap().unwrap() as *const u64;
        let refused = matches!(a.destroy::<u64>("n"), Err(Error::InUse { .. }))
            && matches!(b.destroy_ptr(kept), Err(Error::InUse { .. }));
        drop(a);
        refused && b.destroy::<u64>("n").unwrap()
    });
    wait_success(pid, "child short of descriptors");
}
