//! Open-file-description locks (`F_OFD_SETLK`, Linux 3.15): byte-range locks owned by one
//! open file description, not by a process. Two descriptions conflict even in one process,
//! a description's own locks never conflict with each other (locking over them converts
//! them atomically), and the kernel drops them when the description's last descriptor is
//! closed, also when its process dies. They need not lie within the file.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use super::device::{self, Mappable};
use crate::error::{Error, Result};

/// How a byte is locked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LockKind {
    /// Many descriptions may hold it at once (`F_RDLCK`); needs a readable descriptor.
    Shared,
    /// One description holds it alone (`F_WRLCK`); needs a writable descriptor.
    Exclusive,
}

impl LockKind {
    fn raw(self) -> libc::c_short {
        // The constants are 0 and 1; `l_type` is a short.
        (match self {
            LockKind::Shared => libc::F_RDLCK,
            LockKind::Exclusive => libc::F_WRLCK,
        }) as libc::c_short
    }
}

/// Locks `byte` of `dev`'s description as `kind`, without waiting; false when another
/// description holds a conflicting lock. Over a lock this description holds already the
/// lock converts atomically: exclusive to shared always succeeds, shared to exclusive when
/// no other description holds the byte.
pub fn try_lock(dev: &impl Mappable, byte: u64, kind: LockKind) -> Result<bool> {
    try_lock_bytes(dev, byte, 1, kind)
}

/// As [`try_lock`], for the `count` bytes from `first` at once (all or none).
pub fn try_lock_bytes(dev: &impl Mappable, first: u64, count: u64, kind: LockKind) -> Result<bool> {
    if kind == LockKind::Exclusive {
        device::writable(dev)?;
    }
    set_lock(dev.as_fd(), first, count, kind.raw())
        .map_err(|err| Error::from_os("fcntl(F_OFD_SETLK)", dev.describe(), err))
}

/// As [`try_lock_bytes`], waiting (`F_OFD_SETLKW`) while another description holds a
/// conflicting lock; an interrupting signal is retried. The kernel detects no deadlock
/// between OFD locks (no `EDEADLK`): a wait for a lock that is never released never ends.
pub fn lock_bytes(dev: &impl Mappable, first: u64, count: u64, kind: LockKind) -> Result<()> {
    if kind == LockKind::Exclusive {
        device::writable(dev)?;
    }
    let fd = dev.as_fd().as_raw_fd();
    loop {
        match fcntl_raw(fd, libc::F_OFD_SETLKW, first, count, kind.raw()) {
            Ok(_) => return Ok(()),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(Error::from_os("fcntl(F_OFD_SETLKW)", dev.describe(), err)),
        }
    }
}

/// `F_OFD_SETLK` of `l_type` on the `count` bytes from `first`: false when another
/// description holds a conflicting lock.
fn set_lock(fd: BorrowedFd<'_>, first: u64, count: u64, l_type: libc::c_short) -> io::Result<bool> {
    match fcntl_raw(fd.as_raw_fd(), libc::F_OFD_SETLK, first, count, l_type) {
        Ok(_) => Ok(true),
        Err(err) if matches!(err.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Releases this description's locks on the `count` bytes from `first`, where it holds any.
pub fn unlock(dev: &impl Mappable, first: u64, count: u64) -> Result<()> {
    let unlock = libc::F_UNLCK as libc::c_short;
    fcntl_raw(
        dev.as_fd().as_raw_fd(),
        libc::F_OFD_SETLK,
        first,
        count,
        unlock,
    )
    .map(drop)
    .map_err(|e| Error::from_os("fcntl(F_OFD_SETLK)", dev.describe(), e))
}

/// A lock another description holds on `byte` that keeps this one from locking it as
/// `kind`; None when the lock could be taken now. (Locks are anonymous: the kernel names
/// no owner of an OFD lock.)
pub fn conflicting(dev: &impl Mappable, byte: u64, kind: LockKind) -> Result<Option<LockKind>> {
    conflicting_fd(dev.as_fd(), byte, kind)
        .map_err(|e| Error::from_os("fcntl(F_OFD_GETLK)", dev.describe(), e))
}

/// As [`conflicting`], on descriptor `fd` (readable suffices: `F_OFD_GETLK` takes nothing).
pub(crate) fn conflicting_fd(
    fd: BorrowedFd<'_>,
    byte: u64,
    kind: LockKind,
) -> io::Result<Option<LockKind>> {
    let found = fcntl_raw(fd.as_raw_fd(), libc::F_OFD_GETLK, byte, 1, kind.raw())?;
    Ok(match i32::from(found) {
        libc::F_RDLCK => Some(LockKind::Shared),
        libc::F_WRLCK => Some(LockKind::Exclusive),
        _ => None,
    })
}

/// One OFD `fcntl` on `len` bytes from `start` of descriptor `fd`; returns the `l_type` the
/// kernel left. Async-signal-safe (no allocation), for the fork handler.
fn fcntl_raw(
    fd: RawFd,
    cmd: libc::c_int,
    start: u64,
    len: u64,
    l_type: libc::c_short,
) -> io::Result<libc::c_short> {
    fcntl_flock(fd, cmd, start, len, l_type).map(|lock| lock.l_type)
}

/// As [`fcntl_raw`], returning the whole `flock` the kernel left (for F_OFD_GETLK: the
/// conflicting lock's type and range).
fn fcntl_flock(
    fd: RawFd,
    cmd: libc::c_int,
    start: u64,
    len: u64,
    l_type: libc::c_short,
) -> io::Result<libc::flock> {
    let (Ok(start), Ok(len)) = (libc::off_t::try_from(start), libc::off_t::try_from(len)) else {
        return Err(io::ErrorKind::InvalidInput.into());
    };
    // SAFETY: all-zero is a valid `flock` (plain integers); `l_pid` must be 0 for OFD locks.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = l_type;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = start;
    lock.l_len = len;
    // SAFETY: `lock` is a valid `flock` that the kernel reads, and for F_OFD_GETLK writes,
    // during the call only; a descriptor that is not open is EBADF, not undefined behaviour.
    let rc = unsafe { libc::fcntl(fd, cmd, &mut lock) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(lock)
}

/// Locks `byte` of descriptor `fd` shared, without waiting; false on any failure.
/// Async-signal-safe, for the fork handler.
pub(crate) fn lock_shared_raw(fd: RawFd, byte: u64) -> bool {
    fcntl_raw(
        fd,
        libc::F_OFD_SETLK,
        byte,
        1,
        libc::F_RDLCK as libc::c_short,
    )
    .is_ok()
}

/// Locks the `count` bytes from `first` of the description `fd` refers to exclusively, all
/// or none, without waiting; false when another description holds one. `fd` must be open
/// for writing.
pub(crate) fn try_lock_exclusive_fd(
    fd: BorrowedFd<'_>,
    first: u64,
    count: u64,
) -> io::Result<bool> {
    set_lock(fd, first, count, LockKind::Exclusive.raw())
}

/// Releases the lock of the description `fd` refers to on `byte`, if it holds one; false on
/// failure (nothing is left half done: the byte stays locked).
pub(crate) fn unlock_byte_fd(fd: BorrowedFd<'_>, byte: u64) -> bool {
    set_lock(fd, byte, 1, libc::F_UNLCK as libc::c_short).unwrap_or(false)
}

/// Whether a description other than `fd`'s holds an exclusive lock on any byte of
/// `[start, start + len)`. Shared locks do not count: taking one needs only read access,
/// an exclusive one write access to the file.
pub(crate) fn exclusive_held_in(fd: BorrowedFd<'_>, start: u64, len: u64) -> io::Result<bool> {
    Ok(exclusive_lock_in(fd, start, len)?.is_some())
}

/// An exclusive lock another description holds on a byte of `[start, start + len)`: its
/// first byte and length (0: to the end of all offsets); None when there is none.
pub(crate) fn exclusive_lock_in(
    fd: BorrowedFd<'_>,
    start: u64,
    len: u64,
) -> io::Result<Option<(u64, u64)>> {
    let rdlck = libc::F_RDLCK as libc::c_short;
    let found = fcntl_flock(fd.as_raw_fd(), libc::F_OFD_GETLK, start, len, rdlck)?;
    Ok((i32::from(found.l_type) == libc::F_WRLCK).then(|| {
        (
            u64::try_from(found.l_start).unwrap_or(0),
            u64::try_from(found.l_len).unwrap_or(0),
        )
    }))
}

#[cfg(test)]
mod tests {
    //! Two descriptions conflict (in one process too), one description's locks convert
    //! atomically, closing releases, and the test names the holder.

    use super::*;
    use crate::os::{Access, Permissions, SharedMemoryObject};

    /// A unique shared memory name, removed on drop.
    struct Name(String);

    impl Name {
        fn new() -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            Name(format!("shmkit_ofd_{}_{n}", std::process::id()))
        }
        fn get(&self) -> &str {
            &self.0
        }
    }

    impl Drop for Name {
        fn drop(&mut self) {
            let _ = SharedMemoryObject::remove(&self.0);
        }
    }

    const BYTE: u64 = 1 << 62;

    fn two_descriptions(name: &Name) -> (SharedMemoryObject, SharedMemoryObject) {
        let a = SharedMemoryObject::create(name.get(), Access::ReadWrite, Permissions::default())
            .unwrap();
        let b = SharedMemoryObject::open(name.get(), Access::ReadWrite).unwrap();
        (a, b)
    }

    #[test]
    #[cfg_attr(miri, ignore = "real shared memory")]
    fn shared_locks_coexist_and_exclude_an_exclusive_one() {
        let name = Name::new();
        let (a, b) = two_descriptions(&name);
        assert!(try_lock(&a, BYTE, LockKind::Shared).unwrap());
        assert!(try_lock(&b, BYTE, LockKind::Shared).unwrap());
        assert!(!try_lock(&b, BYTE, LockKind::Exclusive).unwrap());
        assert_eq!(
            conflicting(&b, BYTE, LockKind::Exclusive).unwrap(),
            Some(LockKind::Shared)
        );
        assert_eq!(conflicting(&b, BYTE, LockKind::Shared).unwrap(), None);
        unlock(&a, BYTE, 1).unwrap();
        assert!(
            try_lock(&b, BYTE, LockKind::Exclusive).unwrap(),
            "b's own shared lock converts once a's is gone"
        );
        assert!(!try_lock(&a, BYTE, LockKind::Shared).unwrap());
        assert_eq!(
            conflicting(&a, BYTE, LockKind::Shared).unwrap(),
            Some(LockKind::Exclusive)
        );
    }

    #[test]
    #[cfg_attr(miri, ignore = "real shared memory")]
    fn an_exclusive_lock_converts_to_shared_atomically() {
        let name = Name::new();
        let (a, b) = two_descriptions(&name);
        assert!(try_lock(&a, BYTE, LockKind::Exclusive).unwrap());
        assert!(try_lock(&a, BYTE, LockKind::Shared).unwrap());
        assert!(try_lock(&b, BYTE, LockKind::Shared).unwrap());
        assert!(!try_lock(&a, BYTE, LockKind::Exclusive).unwrap());
    }

    #[test]
    #[cfg_attr(miri, ignore = "real shared memory")]
    fn closing_the_description_releases_its_locks_and_other_bytes_are_independent() {
        let name = Name::new();
        let (a, b) = two_descriptions(&name);
        assert!(try_lock(&a, BYTE, LockKind::Exclusive).unwrap());
        assert!(try_lock(&b, BYTE + 1, LockKind::Exclusive).unwrap());
        drop(a);
        assert!(try_lock(&b, BYTE, LockKind::Exclusive).unwrap());
    }

    #[test]
    #[cfg_attr(miri, ignore = "real shared memory")]
    fn an_exclusive_lock_needs_a_writable_descriptor() {
        let name = Name::new();
        let _a = SharedMemoryObject::create(name.get(), Access::ReadWrite, Permissions::default())
            .unwrap();
        let reader = SharedMemoryObject::open(name.get(), Access::ReadOnly).unwrap();
        let err = try_lock(&reader, BYTE, LockKind::Exclusive).unwrap_err();
        assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
        assert!(try_lock(&reader, BYTE, LockKind::Shared).unwrap());
    }
}
