//! `FileLock`: exclusive and shared whole-file locks between threads (each with a
//! `FileLock` of its own) and between processes; try, timed and blocking waits; atomic
//! downgrade; errors; what does not release a lock (other descriptors of the file closing)
//! and what does (the holder's process being SIGKILLed, in kill loops with the helper
//! binary's `file-lock-hold` role).

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::fs::{fcntl_lock, FlockOperation};
use shmkit_runtime::os::FileLock;
use shmkit_runtime::{Error, ManagedMappedFile};
use shmkit_test_support::{spawn_child, within, TempPath};

/// How long a test may wait for something that should happen at once.
const PROMPT: Duration = Duration::from_secs(5);
/// How long a waiter must stay blocked to count as blocked.
const STILL_WAITING: Duration = Duration::from_millis(150);
/// Kill loop rounds (issue 10: at least 50).
const ROUNDS: usize = 50;

/// An empty file to lock, removed on drop.
fn lock_file() -> TempPath {
    let path = TempPath::new();
    std::fs::write(path.get(), b"").unwrap();
    path
}

/// Runs `take` on another thread with a `FileLock` of its own on `path` and reports on the
/// channel once it holds the lock; the thread then holds it for `hold`.
fn locker_thread(
    path: &Path,
    hold: Duration,
    take: fn(&mut FileLock) -> Box<dyn std::fmt::Debug + '_>,
) -> (mpsc::Receiver<()>, std::thread::JoinHandle<()>) {
    let mut lock = FileLock::open(path).unwrap();
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let guard = take(&mut lock);
        tx.send(()).unwrap();
        std::thread::sleep(hold);
        drop(guard);
    });
    (rx, thread)
}

fn exclusive(lock: &mut FileLock) -> Box<dyn std::fmt::Debug + '_> {
    Box::new(lock.lock().unwrap())
}

fn shared(lock: &mut FileLock) -> Box<dyn std::fmt::Debug + '_> {
    Box::new(lock.lock_shared().unwrap())
}

/// Asserts that `took` reports nothing for [`STILL_WAITING`]: its thread is blocked.
fn assert_blocked(took: &mpsc::Receiver<()>, what: &str) {
    assert_eq!(
        took.recv_timeout(STILL_WAITING),
        Err(RecvTimeoutError::Timeout),
        "{what}"
    );
}

// ----- threads of one process ----------------------------------------------------------------

#[test]
fn file_locks_of_one_process_exclude_each_other_across_threads() {
    let path = lock_file();
    let inside = Arc::new(AtomicU32::new(0));
    let entries = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let mut lock = FileLock::open(path.get()).unwrap();
            let (inside, entries) = (inside.clone(), entries.clone());
            std::thread::spawn(move || {
                for _ in 0..40 {
                    let _guard = lock.lock().unwrap();
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    std::thread::sleep(Duration::from_micros(200));
                    inside.fetch_sub(1, Ordering::SeqCst);
                    entries.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    within(Duration::from_secs(60), "four threads locking", move || {
        for t in threads {
            t.join().unwrap();
        }
    });
    assert_eq!(entries.load(Ordering::SeqCst), 160);
}

#[test]
fn a_blocked_lock_gets_the_file_once_the_holder_lets_go() {
    let path = lock_file();
    let mut holder = FileLock::open(path.get()).unwrap();
    let guard = holder.lock().unwrap();
    let (took, waiter) = locker_thread(path.get(), Duration::ZERO, exclusive);
    assert_blocked(
        &took,
        "lock() returned while another FileLock held the file",
    );
    drop(guard);
    took.recv_timeout(PROMPT)
        .expect("the waiter got the file after the holder let go");
    waiter.join().unwrap();

    let shared_guard = holder.lock_shared().unwrap();
    let (took, waiter) = locker_thread(path.get(), Duration::ZERO, exclusive);
    assert_blocked(&took, "lock() returned while a shared lock was held");
    drop(shared_guard);
    took.recv_timeout(PROMPT).unwrap();
    waiter.join().unwrap();

    let guard = holder.lock().unwrap();
    let (took, waiter) = locker_thread(path.get(), Duration::ZERO, shared);
    assert_blocked(
        &took,
        "lock_shared() returned while an exclusive lock was held",
    );
    drop(guard);
    took.recv_timeout(PROMPT).unwrap();
    waiter.join().unwrap();
}

#[test]
fn shared_locks_coexist_and_keep_exclusive_ones_out() {
    let path = lock_file();
    let open = || FileLock::open(path.get()).unwrap();
    let (mut a, mut b, mut c) = (open(), open(), open());
    let a_shared = a.try_lock_shared().unwrap().expect("a free file");
    let b_shared = b.try_lock_shared().unwrap().expect("readers coexist");
    assert!(c.try_lock().unwrap().is_none(), "readers keep a writer out");
    drop(a_shared);
    assert!(c.try_lock().unwrap().is_none(), "one reader is enough");
    drop(b_shared);
    let c_exclusive = c.try_lock().unwrap().expect("no reader left");
    assert!(
        a.try_lock_shared().unwrap().is_none(),
        "a writer keeps readers out"
    );
    assert!(a.try_lock().unwrap().is_none(), "and other writers");
    drop(c_exclusive);
    assert!(a.try_lock().unwrap().is_some());
}

#[test]
fn timed_locks_give_up_after_their_timeout_and_succeed_once_released_in_time() {
    let path = lock_file();
    let timeout = Duration::from_millis(150);
    let mut holder = FileLock::open(path.get()).unwrap();
    let mut waiter = FileLock::open(path.get()).unwrap();
    let guard = holder.lock().unwrap();

    let start = Instant::now();
    assert!(waiter.lock_timeout(timeout).unwrap().is_none());
    let waited = start.elapsed();
    assert!(
        waited >= timeout && waited < PROMPT,
        "lock_timeout waited {waited:?}"
    );

    let start = Instant::now();
    assert!(waiter.lock_shared_timeout(timeout).unwrap().is_none());
    let waited = start.elapsed();
    assert!(
        waited >= timeout && waited < PROMPT,
        "lock_shared_timeout waited {waited:?}"
    );

    let start = Instant::now();
    assert!(waiter.lock_timeout(Duration::ZERO).unwrap().is_none());
    assert!(waiter
        .lock_shared_timeout(Duration::ZERO)
        .unwrap()
        .is_none());
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "a zero timeout only tries"
    );
    drop(guard);

    // Held by another thread for 300 ms: both timed forms get the file once it lets go,
    // before their much longer timeouts.
    for kind in ["exclusive", "shared"] {
        let hold = Duration::from_millis(300);
        let (took, holder) = locker_thread(path.get(), hold, exclusive);
        took.recv_timeout(PROMPT).unwrap();
        let start = Instant::now();
        let got = match kind {
            "exclusive" => waiter
                .lock_timeout(Duration::from_secs(30))
                .unwrap()
                .is_some(),
            _ => waiter
                .lock_shared_timeout(Duration::from_secs(30))
                .unwrap()
                .is_some(),
        };
        let waited = start.elapsed();
        assert!(got, "{kind}: the timed lock did not get the released file");
        assert!(
            waited >= Duration::from_millis(200) && waited < PROMPT,
            "{kind}: waited {waited:?} for a lock held 300 ms"
        );
        holder.join().unwrap();
    }
    // Timeouts past the end of time wait as long as it takes.
    assert!(waiter.lock_timeout(Duration::MAX).unwrap().is_some());
}

#[test]
fn downgrade_lets_readers_in_and_never_a_waiting_writer() {
    let path = lock_file();
    let mut holder = FileLock::open(path.get()).unwrap();
    let mut reader = FileLock::open(path.get()).unwrap();
    for round in 0..5 {
        let guard = holder.lock().unwrap();
        let (took, writer) = locker_thread(path.get(), Duration::ZERO, exclusive);
        assert_blocked(&took, "the writer got in past an exclusive holder");
        let downgraded = guard.downgrade().unwrap();
        assert!(
            format!("{downgraded:?}").contains("Shared"),
            "{downgraded:?}"
        );
        let read = reader
            .try_lock_shared()
            .unwrap()
            .unwrap_or_else(|| panic!("round {round}: a reader was kept out after downgrade"));
        assert_blocked(&took, "the writer got in during the downgrade");
        drop(read);
        drop(downgraded);
        took.recv_timeout(PROMPT)
            .expect("the writer got the file once the downgraded lock was released");
        writer.join().unwrap();
    }
}

#[test]
fn debug_shows_the_path_and_what_the_lock_holds() {
    let path = lock_file();
    let mut lock = FileLock::open(path.get()).unwrap();
    let name = format!("{:?}", path.get());
    let idle = format!("{lock:?}");
    assert!(
        idle.contains(&name) && idle.contains("held: None"),
        "{idle}"
    );
    let guard = lock.lock().unwrap();
    let text = format!("{guard:?}");
    assert!(
        text.starts_with("FileLockGuard") && text.contains(&name) && text.contains("Exclusive"),
        "{text}"
    );
    drop(guard);
    let guard = lock.lock_shared().unwrap();
    let text = format!("{guard:?}");
    assert!(
        text.starts_with("FileLockSharedGuard") && text.contains("Shared"),
        "{text}"
    );
    drop(guard);
    assert!(format!("{lock:?}").contains("held: None"));
}

// ----- errors --------------------------------------------------------------------------------

#[test]
fn a_missing_file_is_not_found_naming_its_path() {
    let path = TempPath::new();
    for result in [
        FileLock::open(path.get()),
        FileLock::open_read_only(path.get()),
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        assert!(
            err.to_string().contains(&path.get().display().to_string()),
            "{err}"
        );
    }
    let err = FileLock::open("").unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }), "{err}");
}

#[test]
fn a_read_only_file_lock_takes_shared_locks_only() {
    let path = lock_file();
    let mut lock = FileLock::open_read_only(path.get()).unwrap();
    let denied = |r: Result<(), Error>| match r {
        Err(Error::PermissionDenied { what }) => what.contains("read-only"),
        _ => false,
    };
    assert!(denied(lock.lock().map(drop)));
    assert!(denied(lock.try_lock().map(drop)));
    assert!(denied(lock.lock_timeout(Duration::from_secs(1)).map(drop)));
    let read = lock.lock_shared().unwrap();
    let mut writer = FileLock::open(path.get()).unwrap();
    assert!(
        writer.try_lock().unwrap().is_none(),
        "the read-only lock holds"
    );
    drop(read);
    assert!(writer.try_lock().unwrap().is_some());
}

// ----- what releases a lock, and what does not -----------------------------------------------

#[test]
fn other_descriptors_of_the_file_closing_release_nothing() {
    let path = lock_file();
    let mut holder = FileLock::open(path.get()).unwrap();
    let _guard = holder.lock().unwrap();
    // Process-associated locks (Boost's on POSIX) would be gone after any of these.
    std::fs::OpenOptions::new()
        .append(true)
        .open(path.get())
        .unwrap()
        .write_all(b"data")
        .unwrap();
    assert_eq!(std::fs::read(path.get()).unwrap(), b"data");
    drop(FileLock::open(path.get()).unwrap());
    let mut other = FileLock::open(path.get()).unwrap();
    assert!(other.try_lock().unwrap().is_none());
    assert!(other.try_lock_shared().unwrap().is_none());
}

#[test]
fn whole_file_fcntl_locks_of_other_programs_conflict_with_it() {
    // Boost's file_lock, lockf and the like: process-associated fcntl locks on the whole
    // file. They and a FileLock keep each other out, in one process too.
    let path = lock_file();
    let theirs = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path.get())
        .unwrap();
    let mut ours = FileLock::open(path.get()).unwrap();
    let guard = ours.lock_shared().unwrap();
    assert!(fcntl_lock(&theirs, FlockOperation::NonBlockingLockExclusive).is_err());
    fcntl_lock(&theirs, FlockOperation::NonBlockingLockShared).unwrap();
    fcntl_lock(&theirs, FlockOperation::NonBlockingUnlock).unwrap();
    drop(guard);
    fcntl_lock(&theirs, FlockOperation::NonBlockingLockShared).unwrap();
    assert!(ours.try_lock().unwrap().is_none());
    assert!(ours.try_lock_shared().unwrap().is_some());
}

#[test]
fn a_file_lock_on_a_segments_file_leaves_the_segment_alone() {
    let path = TempPath::new();
    let seg = ManagedMappedFile::create(path.get(), 1 << 20).unwrap();
    let mut lock = FileLock::open(path.get()).unwrap();
    let guard = lock
        .try_lock()
        .unwrap()
        .expect("the segment's mapping does not hold the bytes a FileLock locks");
    let again = ManagedMappedFile::open(path.get()).expect("nor does a FileLock hold theirs");
    again.allocate(64).unwrap();
    drop((again, seg));
    ManagedMappedFile::options()
        .exclusive()
        .open(path.get())
        .expect("an exclusive open while the file is locked");
    drop(guard);
}

// ----- holders in other processes, SIGKILLed -------------------------------------------------

/// `ROUNDS` times: a child process locks the file as `kind` ("exclusive" or "shared") and
/// is SIGKILLed while it holds the lock; this process is kept out while the child lives
/// and gets the file at once after (with a timed lock on even rounds, a blocking one
/// started before the kill on odd rounds). Every wait has a time limit.
fn killed_holders_release_the_file(kind: &str) {
    let path = lock_file();
    let mut lock = FileLock::open(path.get()).unwrap();
    for round in 0..ROUNDS {
        let mut child = spawn_child(
            env!("CARGO_BIN_EXE_shmkit-test-child"),
            "file-lock-hold",
            &[
                ("SHMKIT_NAME", path.get().to_str().unwrap().to_owned()),
                ("SHMKIT_LOCK", kind.to_owned()),
            ],
        );
        assert_eq!(child.expect_message(PROMPT), "locked", "round {round}");
        assert!(
            lock.try_lock().unwrap().is_none(),
            "round {round}: the child's {kind} lock did not keep a writer out"
        );
        let reader_in = lock.try_lock_shared().unwrap().is_some();
        assert_eq!(
            reader_in,
            kind == "shared",
            "round {round}: a reader next to {kind}"
        );
        if round % 2 == 0 {
            child.kill();
            let start = Instant::now();
            let got = lock.lock_timeout(PROMPT).unwrap().is_some();
            assert!(
                got,
                "round {round}: the killed {kind} holder still held the file"
            );
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "round {round}: slow"
            );
        } else {
            let mut own = FileLock::open(path.get()).unwrap();
            let (tx, took) = mpsc::channel();
            let waiter = std::thread::spawn(move || {
                let _guard = own.lock().unwrap();
                tx.send(()).unwrap();
            });
            assert_eq!(
                took.recv_timeout(Duration::from_millis(20)),
                Err(RecvTimeoutError::Timeout),
                "round {round}: lock() got the file while the child held it {kind}"
            );
            child.kill();
            took.recv_timeout(PROMPT).unwrap_or_else(|_| {
                panic!("round {round}: lock() still waits after the {kind} holder was killed")
            });
            waiter.join().unwrap();
        }
    }
}

#[test]
fn a_killed_exclusive_holder_releases_the_file_every_round() {
    killed_holders_release_the_file("exclusive");
}

#[test]
fn a_killed_shared_holder_releases_the_file_every_round() {
    killed_holders_release_the_file("shared");
}

/// Found by the sync attack: opening a FIFO read-only blocks in `open(2)` until a writer
/// opens it, so `FileLock::open_read_only` on a FIFO's path never returns.
#[test]
fn opening_a_fifo_read_only_returns_instead_of_waiting_for_a_writer() {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    let dir = shmkit_test_support::guards::TempDir::new();
    let fifo = dir.join("fifo");
    let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (tx, rx) = std::sync::mpsc::channel();
    let opener = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let opened = FileLock::open_read_only(&fifo).map(drop);
            let _ = tx.send(());
            opened
        })
    };
    let returned = rx.recv_timeout(Duration::from_secs(2)).is_ok();
    if !returned {
        // Lets the blocked open return, so the thread (and the directory) can go.
        drop(std::fs::OpenOptions::new().write(true).open(&fifo));
    }
    let _ = opener.join();
    assert!(returned, "open_read_only on a FIFO waited for a writer");
}
