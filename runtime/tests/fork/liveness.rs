//! Lock-owner liveness across `fork` (issue 7): a forked child's shared mapping gets a
//! description of its own (the atfork handler in `os/fork.rs`) and claims an owner id of its
//! own there, so
//! - a forked child killed holding the lock is taken over by its parent;
//! - a parent killed holding the lock is taken over by a third process while its forked
//!   child lives on with the inherited mapping (which the child made again from its own
//!   description: the copy it inherited held on to the parent's, and with it the parent's
//!   owner id);
//! - a forked child's mapping of anonymous shared memory counts as attached: `destroy` in
//!   the parent is `InUse` until the child exits.
//!
//! Every wait is bounded: reads by socket timeouts, child exits by [`wait_within`], lock
//! waits by [`waits_for_the_holder_then_takes_over`].

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmkit_runtime::{Error, ManagedAnonymousSharedMemory, ManagedSharedMemory};
use shmkit_test_support::{owner_id, ShmGuard};

use crate::segment::fork_child;

const SIZE: usize = 64 * 1024;
/// How long a process may take for its part.
const LIMIT: Duration = Duration::from_secs(20);
/// How long the contender must stay blocked while the holder lives.
const STILL_WAITING: Duration = Duration::from_millis(300);
/// How soon after the holder's death the contender must be through.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(5);

/// A connected pair whose reads time out after [`LIMIT`] (an end may be held by a process
/// that never writes, so a closed peer is not enough to end a read).
fn socket_pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    for end in [&a, &b] {
        end.set_read_timeout(Some(LIMIT)).unwrap();
    }
    (a, b)
}

fn read_byte(end: &mut UnixStream, what: &str) -> u8 {
    let mut byte = [0u8];
    end.read_exact(&mut byte)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    byte[0]
}

/// Waits up to [`LIMIT`] for our child `pid` to end; SIGKILLs it and fails if it does not.
pub fn wait_within(pid: libc::pid_t, what: &str) -> libc::c_int {
    let deadline = Instant::now() + LIMIT;
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid `c_int` for `waitpid` to write.
        let waited = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(
            waited >= 0,
            "{what}: waitpid: {}",
            std::io::Error::last_os_error()
        );
        if waited == pid {
            return status;
        }
        if Instant::now() > deadline {
            // SAFETY: `pid` is our child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{what}: process {pid} did not end within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Makes this forked child die with `parent` (the process that forked it), so that a lock
/// holder does not outlive a failed test.
fn die_with(parent: libc::pid_t) {
    // SAFETY: prctl with integer arguments changes only this process's attributes.
    let set = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // SAFETY: `getppid` only reads. (If the parent died before the prctl, end now.)
    if set != 0 || unsafe { libc::getppid() } != parent {
        // SAFETY: ends this child at once, as `fork_child` would.
        unsafe { libc::_exit(3) };
    }
}

/// SIGKILLs our child `pid` and reaps it.
fn kill(pid: libc::pid_t, what: &str) {
    // SAFETY: `pid` is our child, not yet reaped: the signal cannot reach another process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0, "{what}");
    let status = wait_within(pid, what);
    assert!(libc::WIFSIGNALED(status), "{what} was killed: {status:#x}");
}

/// Runs `contend` on a second thread while our child `holder` holds the lock it needs:
/// asserts that it waits while the holder lives, kills the holder, and returns what
/// `contend` returned within [`TAKEOVER_LIMIT`]. On success the thread has ended when this
/// returns, so the process is single-threaded again for the next fork; on a failure it is
/// left behind, and the panic ends the process.
fn waits_for_the_holder_then_takes_over<R: Send + 'static>(
    holder: libc::pid_t,
    what: &str,
    contend: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(contend());
    });
    assert!(
        matches!(
            rx.recv_timeout(STILL_WAITING),
            Err(RecvTimeoutError::Timeout)
        ),
        "{what}: went through while the lock holder lives"
    );
    kill(holder, "the lock holder");
    let result = rx
        .recv_timeout(TAKEOVER_LIMIT)
        .unwrap_or_else(|e| panic!("{what}: not through after the holder died: {e:?}"));
    thread.join().expect("the contending thread");
    result
}

/// In a forked child: takes `seg`'s segment lock, sends its owner id through `to_parent` and
/// holds the lock until killed.
fn hold_the_lock_reporting_the_owner(
    seg: &ManagedSharedMemory,
    to_parent: &mut UnixStream,
) -> bool {
    let mine = owner_id(seg);
    seg.with_lock(|| {
        to_parent.write_all(&mine.to_ne_bytes()).unwrap();
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    })
    .is_ok()
}

/// The owner id a forked child sent through `from_child` once it held the lock.
fn owner_the_child_reports(from_child: &mut UnixStream) -> u32 {
    let mut id = [0u8; 4];
    from_child
        .read_exact(&mut id)
        .expect("the child holds the lock");
    u32::from_ne_bytes(id)
}

pub fn a_forked_child_killed_holding_the_lock_of_a_named_segment_is_taken_over() {
    let name = ShmGuard::new();
    let seg = Arc::new(ManagedSharedMemory::create(name.get(), SIZE).unwrap());
    let parent_id = owner_id(&seg);
    let (mut parent_end, mut child_end) = socket_pair();
    let me = std::process::id() as libc::pid_t;
    let pid = fork_child(|| {
        die_with(me);
        // A description and an owner id of its own: taken over when this process dies.
        hold_the_lock_reporting_the_owner(&seg, &mut child_end)
    });
    assert_ne!(
        owner_the_child_reports(&mut parent_end),
        parent_id,
        "the child claimed an id of its own"
    );
    let s = Arc::clone(&seg);
    let p = waits_for_the_holder_then_takes_over(pid, "an allocation in the parent", move || {
        s.allocate(1000)
            .map(|p| s.handle_from_address(p.as_ptr()).unwrap())
    })
    .expect("allocation after the child was killed");
    seg.check().unwrap();
    // SAFETY: allocated above, not used afterwards.
    unsafe { seg.deallocate(seg.address_from_handle(p).unwrap()) }.unwrap();
    assert!(seg.all_memory_deallocated());
}

/// The test process T forks P; P creates the segment (claiming its owner id on its
/// description), forks G, and takes the lock. T kills P: G lives on with the mapping it
/// inherited, and T opens the segment and takes the lock over. T is a subreaper for the
/// test, so that G, orphaned, becomes T's to reap.
pub fn a_parent_killed_holding_the_lock_is_taken_over_while_its_forked_child_lives() {
    let name = ShmGuard::new();
    let (mut t_end, mut p_end) = socket_pair();
    // SAFETY: prctl with an integer argument changes only this process's attributes.
    assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) }, 0);
    let t = std::process::id() as libc::pid_t;
    let p = fork_child(|| {
        die_with(t);
        let seg = ManagedSharedMemory::create(name.get(), SIZE).unwrap();
        owner_id(&seg);
        let g = fork_child(|| {
            // G: keep the inherited mapping until T says, then use it.
            read_byte(&mut p_end, "G waits for T") == b'g'
                && seg.allocate(100).is_ok()
                && seg.check_sanity()
        });
        p_end.write_all(&g.to_ne_bytes()).unwrap();
        seg.with_lock(|| {
            p_end.write_all(b"l").unwrap();
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        })
        .is_ok()
    });
    let mut g = [0u8; 4];
    t_end.read_exact(&mut g).expect("P says G's pid");
    let g = libc::pid_t::from_ne_bytes(g);
    assert_eq!(read_byte(&mut t_end, "P takes the lock"), b'l');

    let shm_name = name.get().to_owned();
    let seg = waits_for_the_holder_then_takes_over(p, "an open and allocation in T", move || {
        let seg = ManagedSharedMemory::open(&shm_name).unwrap();
        seg.allocate(1000).map(|_| seg)
    })
    .expect("allocation after P was killed");
    seg.check().unwrap();
    // SAFETY: `g` is T's descendant, not reaped (T reaps it below): a signal of 0 only tests.
    let g_lives = unsafe { libc::kill(g, 0) } == 0;
    assert!(g_lives, "G lived through the takeover");
    t_end.write_all(b"g").unwrap();
    let status = wait_within(g, "G");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "G used its inherited mapping after the takeover: {status:#x}"
    );
    seg.check().unwrap();
    // SAFETY: prctl with an integer argument changes only this process's attributes.
    assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 0) }, 0);
}

pub fn destroy_is_in_use_while_a_forked_child_maps_anonymous_memory() {
    let mut seg = ManagedAnonymousSharedMemory::new(SIZE).unwrap();
    seg.construct("n", 7u64).unwrap();
    let (mut parent_end, mut child_end) = socket_pair();
    let me = std::process::id() as libc::pid_t;
    let pid = fork_child(|| {
        die_with(me);
        child_end.write_all(b"m").unwrap();
        read_byte(&mut child_end, "the child waits for the parent") == b'p'
            && seg.find::<u64>("n").unwrap() == Some(&7)
    });
    assert_eq!(read_byte(&mut parent_end, "the child maps it"), b'm');
    let refused = seg.destroy::<u64>("n");
    assert!(matches!(refused, Err(Error::InUse { .. })), "{refused:?}");
    parent_end.write_all(b"p").unwrap();
    let status = wait_within(pid, "the mapping child");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child still found the object: {status:#x}"
    );
    assert!(seg.destroy::<u64>("n").unwrap(), "the child has exited");
    assert!(seg.all_memory_deallocated());
}

/// attack9: a forked child opens the segment its parent maps again (reusing the process
/// attachment it inherited with the parent's table) and is killed holding the lock taken
/// through that new mapping: the parent takes it over (the child's id died with it, and
/// is not held on a description the parent keeps).
pub fn a_forked_child_killed_holding_the_lock_through_a_reopened_mapping_is_taken_over() {
    let name = ShmGuard::new();
    let seg = Arc::new(ManagedSharedMemory::create(name.get(), SIZE).unwrap());
    let parent_id = owner_id(&seg);
    let (mut parent_end, mut child_end) = socket_pair();
    let me = std::process::id() as libc::pid_t;
    let pid = fork_child(|| {
        die_with(me);
        let again = ManagedSharedMemory::open(name.get()).unwrap();
        hold_the_lock_reporting_the_owner(&again, &mut child_end)
    });
    assert_ne!(
        owner_the_child_reports(&mut parent_end),
        parent_id,
        "the child's own id"
    );
    let s = Arc::clone(&seg);
    let took_over = waits_for_the_holder_then_takes_over(pid, "a lock in the parent", move || {
        s.with_lock(|| ()).is_ok()
    });
    assert!(took_over, "the parent took the lock over");
    seg.check().unwrap();
}
