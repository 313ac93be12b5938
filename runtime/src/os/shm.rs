//! POSIX shared memory objects (`shm_open`): named, living until removed or reboot, created
//! empty and sized with `truncate`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::shm;

use super::device::{self, create_or_open, Mappable};
use super::{Access, Permissions};
use crate::error::{Error, Result};

/// The longest name Linux accepts: one file name in `/dev/shm`.
const NAME_MAX: usize = 255;

/// An open POSIX shared memory object: the descriptor, its name and how it was opened.
///
/// Dropping it closes the descriptor; the object itself lives on until [`remove`]d.
///
/// [`remove`]: SharedMemoryObject::remove
#[derive(Debug)]
pub struct SharedMemoryObject {
    fd: OwnedFd,
    name: String,
    access: Access,
}

impl SharedMemoryObject {
    /// Creates the object `name`, empty; fails with `AlreadyExists` if it is there.
    ///
    /// `perms` are applied with `fchmod` after creation so that the umask does not narrow
    /// them.
    pub fn create(name: &str, access: Access, perms: Permissions) -> Result<Self> {
        check_name(name)?;
        let flags = open_flags(access) | shm::OFlags::CREATE | shm::OFlags::EXCL;
        let mode = shm::Mode::from_raw_mode(perms.mode());
        let fd = shm::open(name, flags, mode)
            .map_err(|e| Error::from_os("shm_open", describe(name), e.into()))?;
        let object = SharedMemoryObject {
            fd,
            name: name.to_owned(),
            access,
        };
        if let Err(err) = device::set_permissions(&object, perms) {
            // Do not leave behind an object with the wrong permissions; the fchmod error is
            // the one worth reporting, so a failed unlink is not.
            drop(object);
            let _ = shm::unlink(name);
            return Err(err);
        }
        Ok(object)
    }

    /// Opens the existing object `name`; fails with `NotFound` if there is none.
    pub fn open(name: &str, access: Access) -> Result<Self> {
        check_name(name)?;
        let fd = shm::open(name, open_flags(access), shm::Mode::empty())
            .map_err(|e| Error::from_os("shm_open", describe(name), e.into()))?;
        Ok(SharedMemoryObject {
            fd,
            name: name.to_owned(),
            access,
        })
    }

    /// Opens `name`, creating it if it does not exist; the flag says whether this call
    /// created it.
    ///
    /// Race-free: when another process removes the object between our exclusive create and
    /// our open, we try again, so exactly one of many concurrent callers creates it.
    pub fn open_or_create(name: &str, access: Access, perms: Permissions) -> Result<(Self, bool)> {
        create_or_open(
            || Self::create(name, access, perms),
            || Self::open(name, access),
        )
    }

    /// The name, as given (without the leading `/`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How this handle was opened.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The current size in bytes (other processes may resize the object).
    pub fn size(&self) -> Result<u64> {
        device::size(self)
    }

    /// Sets the size to `len` bytes; new bytes read as zero. Needs `Access::ReadWrite`.
    ///
    /// # Safety
    /// Shrinking cuts off pages that mappings of the device, in any process, may still use:
    /// their next access there is `SIGBUS`. The caller makes sure no mapping uses bytes past
    /// `len` (a managed segment's offline `shrink_to_fit` holds the segment's exclusive
    /// attach lock for that), also against another process growing the device meanwhile.
    /// Growing alone cannot hurt a mapping; [`SharedMemoryObject::allocate`] only grows.
    pub unsafe fn truncate(&self, len: u64) -> Result<()> {
        device::truncate(self, len)
    }

    /// Makes the object at least `len` bytes and reserves their memory now, so that running
    /// out shows up here as an error and not later as `SIGBUS` on first touch. Never shrinks.
    /// Where the OS cannot reserve, it only grows the size. Needs `Access::ReadWrite`.
    /// No room is [`Error::OutOfSpace`].
    pub fn allocate(&self, len: u64) -> Result<()> {
        device::allocate(self, len)
    }

    /// Removes the name `name`; `Ok(false)` if there was no such object.
    ///
    /// Like `unlink`: open handles and mapped regions stay valid, the memory is freed when the
    /// last of them goes, and the name can be created anew at once.
    pub fn remove(name: &str) -> Result<bool> {
        check_name(name)?;
        match shm::unlink(name) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(Error::from_os("shm_unlink", describe(name), e.into())),
        }
    }
}

impl AsFd for SharedMemoryObject {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Mappable for SharedMemoryObject {
    fn access(&self) -> Access {
        self.access
    }

    fn size(&self) -> Result<u64> {
        device::size(self)
    }

    fn describe(&self) -> String {
        describe(&self.name)
    }
}

fn describe(name: &str) -> String {
    format!("shared memory object /{name}")
}

fn open_flags(access: Access) -> shm::OFlags {
    match access {
        Access::ReadOnly => shm::OFlags::RDONLY,
        Access::ReadWrite => shm::OFlags::RDWR,
    }
}

/// Accepts exactly the names that are one file name in the shared memory namespace.
///
/// The name goes to `shm_open` without the leading `/` POSIX recommends: Linux treats
/// `name` and `/name` alike, and rustix counts the `/` against the 255-byte limit, which
/// would refuse names of exactly 255 bytes that C programs can use.
fn check_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "the name is empty"
    } else if name.len() > NAME_MAX {
        "the name is longer than 255 bytes"
    } else if name.contains('/') {
        "the name contains '/' (give it without the leading '/')"
    } else if name.contains('\0') {
        "the name contains a NUL byte"
    } else if name == "." || name == ".." {
        "'.' and '..' are not names of objects"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: name.to_owned(),
        reason,
    })
}
