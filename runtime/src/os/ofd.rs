//! Open-file-description locks (`F_OFD_SETLK`, Linux 3.15): byte-range locks owned by one
//! open file description, not by a process. Two descriptions conflict even in one process,
//! a description's own locks never conflict with each other (locking over them converts
//! them atomically), and the kernel drops them when the description's last descriptor is
//! closed, also when its process dies. They need not lie within the file.

use std::io;
use std::os::fd::AsRawFd;

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
    if kind == LockKind::Exclusive {
        device::writable(dev)?;
    }
    match fcntl(dev, libc::F_OFD_SETLK, byte, kind.raw()) {
        Ok(_) => Ok(true),
        Err(err) if matches!(err.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
        Err(err) => Err(Error::from_os("fcntl(F_OFD_SETLK)", dev.describe(), err)),
    }
}

/// Releases this description's lock on `byte`, if it holds one.
pub fn unlock(dev: &impl Mappable, byte: u64) -> Result<()> {
    let unlock = libc::F_UNLCK as libc::c_short;
    fcntl(dev, libc::F_OFD_SETLK, byte, unlock)
        .map(drop)
        .map_err(|e| Error::from_os("fcntl(F_OFD_SETLK)", dev.describe(), e))
}

/// A lock another description holds on `byte` that keeps this one from locking it as
/// `kind`; None when the lock could be taken now. (Locks are anonymous: the kernel names
/// no owner of an OFD lock.)
pub fn conflicting(dev: &impl Mappable, byte: u64, kind: LockKind) -> Result<Option<LockKind>> {
    let found = fcntl(dev, libc::F_OFD_GETLK, byte, kind.raw())
        .map_err(|e| Error::from_os("fcntl(F_OFD_GETLK)", dev.describe(), e))?;
    Ok(match i32::from(found) {
        libc::F_RDLCK => Some(LockKind::Shared),
        libc::F_WRLCK => Some(LockKind::Exclusive),
        _ => None,
    })
}

/// One OFD `fcntl` on the single byte `byte`; returns the `l_type` the kernel left.
fn fcntl(
    dev: &impl Mappable,
    cmd: libc::c_int,
    byte: u64,
    l_type: libc::c_short,
) -> io::Result<libc::c_short> {
    let start = libc::off_t::try_from(byte).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a lock offset must fit the OS's signed file offset",
        )
    })?;
    // SAFETY: all-zero is a valid `flock` (plain integers); `l_pid` must be 0 for OFD locks.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = l_type;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = start;
    lock.l_len = 1;
    // SAFETY: the descriptor is open (borrowed from `dev`) and `lock` is a valid `flock`
    // that the kernel reads, and for F_OFD_GETLK writes, during the call only.
    let rc = unsafe { libc::fcntl(dev.as_fd().as_raw_fd(), cmd, &mut lock) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(lock.l_type)
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
        unlock(&a, BYTE).unwrap();
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
