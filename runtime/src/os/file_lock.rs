//! Advisory locks on a whole file, exclusive or shared: Boost.Interprocess's `file_lock`,
//! on open-file-description locks (the `ofd` module) instead of process-associated ones.

use std::fmt;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use super::fork::{self, Registered};
use super::ofd::{self, LockKind};
use super::{Access, MappableFile};
use crate::error::{Error, Result};

/// The bytes a [`FileLock`] locks: `0..2^62` (4 EiB, past the end of any real file). The
/// bytes from 2^62 on are where a segment's mappings keep their own locks (the byte map of
/// the lock owners), so a `FileLock` on a segment's file and the segment's mappings leave
/// each other alone.
const LOCKED: u64 = 1 << 62;
/// The first and the longest pause of a timed wait between two attempts.
const FIRST_PAUSE: Duration = Duration::from_micros(10);
const LONGEST_PAUSE: Duration = Duration::from_millis(1);

/// An advisory lock on a whole existing file, taken exclusive (one holder) or shared (many
/// holders), that the kernel releases when its holder's process ends, however it ends.
///
/// A `FileLock` is one would-be holder: it opens the file once, and each of its lock calls
/// borrows it mutably until the guard it returns is dropped, so one `FileLock` never holds
/// two guards. Give each thread or task that locks a `FileLock` of its own: they exclude
/// each other exactly as two processes' do.
///
/// ```
/// use shmkit_runtime::os::FileLock;
///
/// let path = std::env::temp_dir().join(format!("file_lock_doc_{}", std::process::id()));
/// std::fs::write(&path, b"")?;
/// let (mut mine, mut theirs) = (FileLock::open(&path)?, FileLock::open(&path)?);
/// let shared = mine.lock_shared()?;
/// assert!(theirs.try_lock()?.is_none(), "a shared holder keeps writers out");
/// assert!(theirs.try_lock_shared()?.is_some(), "but lets readers in");
/// drop(shared);
/// let exclusive = mine.lock()?;
/// assert!(theirs.try_lock_shared()?.is_none());
/// let _shared = exclusive.downgrade()?; // atomically: no writer gets in between
/// assert!(theirs.try_lock_shared()?.is_some());
/// # drop(_shared);
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # What it is, and how it differs from Boost's
///
/// - **Advisory.** The kernel keeps the lock but does not check reads and writes against
///   it: it orders only processes that take the lock before they touch the file. (Linux's
///   mandatory locking is gone since 5.15.)
/// - **Whole file.** Bytes `0..2^62` are locked, beyond any file's end. Whole-file locks of
///   other programs through `fcntl` (Boost's `file_lock`, `lockf`, Python's `fcntl.lockf`)
///   overlap them and conflict both ways; `flock(2)` locks are another kind and do not
///   (except on NFS, which turns them into `fcntl` locks). A `FileLock` on the file of a
///   managed segment does not touch the locks the segment's mappings hold.
/// - **Two `FileLock`s exclude each other, in one process too.** The lock belongs to the
///   `FileLock`'s own open file description, not to the process (Boost on POSIX uses
///   process-associated `fcntl` locks: there, two `file_lock`s or two threads of one
///   process do not exclude each other, and closing any descriptor of the file drops all of
///   the process's locks on it, so Boost asks for one `file_lock` per file and process).
///   Here, opening, reading, writing and closing the file through other descriptors never
///   releases a `FileLock`.
/// - **Process lifetime.** Dropping the guard releases the lock, dropping the `FileLock`
///   too; when the process ends, even by `SIGKILL`, the kernel closes the description and
///   releases it. Nothing stays locked after a crash, and nothing needs cleaning up.
/// - **`fork` and `exec`.** A forked child does not hold its parent's lock (as with
///   Boost's): the child's copy of the `FileLock` is cut off from the parent's description,
///   so dropping the child's copies of a guard releases nothing of the parent's, and the
///   parent's lock dies with the parent. Lock calls on the copy fail with
///   [`Error::Unsupported`]: the child opens the file again for a `FileLock` of its own.
///   The descriptor is close-on-exec, so programs started with `exec` get nothing.
/// - **Downgrade, no upgrade.** [`FileLockGuard::downgrade`] turns an exclusive lock into a
///   shared one atomically, which Boost's `file_lock` cannot. There is no upgrade from
///   shared to exclusive: two holders upgrading at once would wait for each other forever.
/// - **No deadlock detection.** The kernel reports `EDEADLK` for process-associated locks
///   but does not look for deadlocks between open-file-description locks: two `FileLock`s
///   that each wait for a file the other holds wait forever. Take files in one order, or
///   wait with a timeout.
/// - **Timeouts poll.** The kernel's blocking lock call has no timeout, so
///   [`lock_timeout`](Self::lock_timeout) and
///   [`lock_shared_timeout`](Self::lock_shared_timeout) try, sleep and try again, with
///   pauses from 10 µs doubling up to 1 ms: they notice a released lock within about a
///   millisecond and cost at most about a thousand system calls a second while they wait.
///   A polling waiter does not queue: the kernel hands a released lock to the blocked
///   [`lock`](Self::lock) and [`lock_shared`](Self::lock_shared) callers first, so while
///   blocked lockers keep the file busy a timed one may not get in before its timeout.
///   (Interrupting a blocked call with a timer signal would take a signal from the
///   program.)
/// - **Flush before unlocking.** Data written with `write(2)` (`std::fs::File`'s `write`)
///   is in the page cache, seen by every process, when the call returns; data held in a
///   buffer (`BufWriter`, a C `FILE*`, an iostream) is not. Flush the buffer before the
///   guard drops, or readers that lock after you may not see it. (`sync_data` is only for
///   surviving a machine crash, not for other processes to see the data.)
/// - **Network file systems.** On NFS the server keeps the locks (NLM or NFSv4), so they
///   work between machines, but a client cut off from the server for longer than its
///   lease loses its locks without the holder being told. Some file systems (some FUSE
///   ones) keep no locks at all: locking there is an [`Error::Os`].
pub struct FileLock {
    /// Forgets the descriptor for forked children; dropped before the descriptor closes.
    _fork: Registered,
    file: MappableFile,
    /// The fork generation that opened the file: a process of another one is a forked
    /// child, whose descriptor no longer refers to the locked description.
    forks: u32,
    /// What a guard of this `FileLock` holds.
    held: Option<LockKind>,
}

/// How long a lock call waits.
enum Wait {
    No,
    Until(Instant),
    Forever,
}

impl Wait {
    /// `timeout` from now; one that reaches past the end of time waits forever.
    fn at_most(timeout: Duration) -> Wait {
        Instant::now()
            .checked_add(timeout)
            .map_or(Wait::Forever, Wait::Until)
    }
}

impl FileLock {
    /// Opens the existing file `path` read-write, to lock it exclusive or shared (Boost's
    /// constructor). Fails with [`Error::NotFound`] naming the path when there is no file,
    /// [`Error::PermissionDenied`] when it cannot be opened for writing (then
    /// [`open_read_only`](Self::open_read_only) can still lock it shared).
    pub fn open(path: impl AsRef<Path>) -> Result<FileLock> {
        Self::open_as(path.as_ref(), Access::ReadWrite)
    }

    /// Opens the existing file `path` read-only: such a `FileLock` takes only shared locks
    /// (the kernel wants write access for an exclusive one); the exclusive calls fail with
    /// [`Error::PermissionDenied`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<FileLock> {
        Self::open_as(path.as_ref(), Access::ReadOnly)
    }

    fn open_as(path: &Path, access: Access) -> Result<FileLock> {
        let file = MappableFile::open(path, access)?;
        Ok(FileLock {
            _fork: Registered::uninherited(file.as_fd())?,
            file,
            forks: fork::generation(),
            held: None,
        })
    }

    /// The path the file was opened by.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Locks the file exclusively, waiting while anyone else holds it, exclusive or shared.
    pub fn lock(&mut self) -> Result<FileLockGuard<'_>> {
        self.acquire(LockKind::Exclusive, Wait::Forever)?;
        Ok(FileLockGuard::new(self))
    }

    /// Locks the file exclusively if nobody else holds it; None if somebody does.
    pub fn try_lock(&mut self) -> Result<Option<FileLockGuard<'_>>> {
        let got = self.acquire(LockKind::Exclusive, Wait::No)?;
        Ok(got.then(|| FileLockGuard::new(self)))
    }

    /// Locks the file exclusively, waiting at most `timeout` (see the type's doc for how
    /// finely); None if it is still held by then. A zero `timeout` is [`try_lock`](Self::try_lock).
    pub fn lock_timeout(&mut self, timeout: Duration) -> Result<Option<FileLockGuard<'_>>> {
        let got = self.acquire(LockKind::Exclusive, Wait::at_most(timeout))?;
        Ok(got.then(|| FileLockGuard::new(self)))
    }

    /// Locks the file shared, waiting while anyone else holds it exclusively.
    pub fn lock_shared(&mut self) -> Result<FileLockSharedGuard<'_>> {
        self.acquire(LockKind::Shared, Wait::Forever)?;
        Ok(FileLockSharedGuard::new(self))
    }

    /// Locks the file shared if nobody else holds it exclusively; None if somebody does.
    pub fn try_lock_shared(&mut self) -> Result<Option<FileLockSharedGuard<'_>>> {
        let got = self.acquire(LockKind::Shared, Wait::No)?;
        Ok(got.then(|| FileLockSharedGuard::new(self)))
    }

    /// Locks the file shared, waiting at most `timeout` while somebody holds it
    /// exclusively; None if they still do by then.
    pub fn lock_shared_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<FileLockSharedGuard<'_>>> {
        let got = self.acquire(LockKind::Shared, Wait::at_most(timeout))?;
        Ok(got.then(|| FileLockSharedGuard::new(self)))
    }

    /// Takes the lock as `kind`, waiting as `wait` says; false if it was not to be had.
    fn acquire(&mut self, kind: LockKind, wait: Wait) -> Result<bool> {
        self.check_not_forked()?;
        let got = match wait {
            Wait::No => ofd::try_lock_bytes(&self.file, 0, LOCKED, kind)?,
            Wait::Forever => ofd::lock_bytes(&self.file, 0, LOCKED, kind).map(|()| true)?,
            Wait::Until(deadline) => self.poll(kind, deadline)?,
        };
        if got {
            self.held = Some(kind);
        }
        Ok(got)
    }

    /// Tries to take the lock as `kind` until `deadline`, pausing ever longer in between.
    fn poll(&self, kind: LockKind, deadline: Instant) -> Result<bool> {
        let mut pause = FIRST_PAUSE;
        loop {
            if ofd::try_lock_bytes(&self.file, 0, LOCKED, kind)? {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }

    /// `Unsupported` in a forked child: its descriptor no longer refers to the file.
    fn check_not_forked(&self) -> Result<()> {
        if self.forks == fork::generation() {
            return Ok(());
        }
        Err(Error::Unsupported {
            what: "locking a FileLock that a parent process opened before it forked (the \
                   child does not inherit it: open the file again)",
        })
    }

    /// What a guard of this `FileLock` holds; nothing in a forked child.
    fn held(&self) -> Option<LockKind> {
        self.held.filter(|_| self.forks == fork::generation())
    }
}

impl fmt::Debug for FileLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileLock")
            .field("path", &self.path())
            .field("held", &self.held())
            .finish()
    }
}

/// A lock a guard holds: released when it drops.
struct Holding<'a>(&'a mut FileLock);

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        // A forked child's copy of a guard holds nothing to release.
        if self.0.held().is_some() {
            // Unlocking never waits, and fails only on a descriptor that is not open,
            // which ours is.
            let _ = ofd::unlock(&self.0.file, 0, LOCKED);
        }
        self.0.held = None;
    }
}

impl Holding<'_> {
    /// Shows the guard as `name { lock: FileLock { path, held } }`.
    fn debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name).field("lock", &*self.0).finish()
    }
}

/// An exclusive lock on a file, from [`FileLock::lock`] and its try and timed forms;
/// released when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct FileLockGuard<'a> {
    lock: Holding<'a>,
}

impl fmt::Debug for FileLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.lock.debug("FileLockGuard", f)
    }
}

impl<'a> FileLockGuard<'a> {
    fn new(lock: &'a mut FileLock) -> Self {
        FileLockGuard {
            lock: Holding(lock),
        }
    }

    /// Turns the exclusive lock into a shared one atomically: nobody waiting for the file
    /// gets it exclusively in between, and readers that wait get it at once. If the kernel
    /// refuses (out of lock memory), the lock is released and the error returned.
    pub fn downgrade(self) -> Result<FileLockSharedGuard<'a>> {
        let FileLockGuard { lock } = self;
        lock.0.check_not_forked()?;
        // Over our own exclusive lock this converts it, and never waits: nobody else can
        // hold the file while we hold it exclusively.
        ofd::lock_bytes(&lock.0.file, 0, LOCKED, LockKind::Shared)?;
        lock.0.held = Some(LockKind::Shared);
        Ok(FileLockSharedGuard { lock })
    }
}

/// A shared lock on a file, from [`FileLock::lock_shared`] and its try and timed forms, or
/// [`FileLockGuard::downgrade`]; released when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct FileLockSharedGuard<'a> {
    lock: Holding<'a>,
}

impl fmt::Debug for FileLockSharedGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.lock.debug("FileLockSharedGuard", f)
    }
}

impl<'a> FileLockSharedGuard<'a> {
    fn new(lock: &'a mut FileLock) -> Self {
        FileLockSharedGuard {
            lock: Holding(lock),
        }
    }
}
