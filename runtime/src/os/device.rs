//! What a region can map, and the descriptor operations the devices share.

use std::os::fd::AsFd;

use rustix::io::Errno;

use super::{Access, Permissions};
use crate::error::{Error, Result};

/// A device whose bytes a [`MappedRegion`](super::MappedRegion) can map: an open descriptor
/// that knows how it was opened, how large it is and what to call itself in errors.
pub trait Mappable: AsFd {
    /// How the descriptor was opened; a read-only one cannot be mapped read-write.
    fn access(&self) -> Access;
    /// The current size in bytes.
    fn size(&self) -> Result<u64>;
    /// The device as an error message should name it, e.g. `shared memory object /name`.
    fn describe(&self) -> String;
}

/// The size of `dev` from `fstat`, so that it reflects resizes by other processes.
pub(crate) fn size(dev: &impl Mappable) -> Result<u64> {
    let stat =
        rustix::fs::fstat(dev).map_err(|e| Error::from_os("fstat", dev.describe(), e.into()))?;
    // A regular file or shared memory object never has a negative size.
    Ok(u64::try_from(stat.st_size).unwrap_or(0))
}

/// Sets the size of `dev`: growing fills with zeros, shrinking discards the tail.
pub(super) fn truncate(dev: &impl Mappable, len: u64) -> Result<()> {
    writable(dev)?;
    fits_off_t(dev, len)?;
    rustix::fs::ftruncate(dev, len)
        .map_err(|e| Error::from_os("ftruncate", dev.describe(), e.into()))
}

/// Makes `dev` at least `len` bytes with storage allocated for all of them (`fallocate`);
/// where the file system cannot allocate ahead, only grows the size. Never shrinks.
pub(crate) fn allocate(dev: &impl Mappable, len: u64) -> Result<()> {
    allocate_from(dev, 0, len)
}

/// [`allocate`] where the first `from` bytes are known to have their storage already (a
/// segment growing from `from` bytes): only the rest is asked for, so that growing does
/// not walk what is there again.
pub(crate) fn allocate_from(dev: &impl Mappable, from: u64, len: u64) -> Result<()> {
    writable(dev)?;
    fits_off_t(dev, len)?;
    let from = from.min(len);
    if len == from {
        return Ok(());
    }
    match rustix::fs::fallocate(dev, rustix::fs::FallocateFlags::empty(), from, len - from) {
        Ok(()) => Ok(()),
        Err(Errno::OPNOTSUPP | Errno::NOSYS) => {
            if dev.size()? < len {
                truncate(dev, len)
            } else {
                Ok(())
            }
        }
        // No room on the file system, the quota spent, or this process's file size limit
        // (`RLIMIT_FSIZE`, with `SIGXFSZ` ignored) reached.
        Err(Errno::NOSPC | Errno::DQUOT | Errno::FBIG) => Err(Error::OutOfSpace {
            what: dev.describe(),
            size: len,
        }),
        Err(e) => Err(Error::from_os("fallocate", dev.describe(), e.into())),
    }
}

/// Fails with `InvalidSize` if `len` does not fit the OS's signed file offset: the kernel
/// would read it as negative.
pub(super) fn fits_off_t(dev: &impl Mappable, len: u64) -> Result<()> {
    match i64::try_from(len) {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::InvalidSize {
            size: len,
            reason: format!(
                "{} cannot be larger than {} bytes",
                dev.describe(),
                i64::MAX
            ),
        }),
    }
}

/// Fails with `PermissionDenied` unless `dev` was opened for writing: the OS would answer
/// `EINVAL` or `EBADF`, which say less.
pub(super) fn writable(dev: &impl Mappable) -> Result<()> {
    match dev.access() {
        Access::ReadWrite => Ok(()),
        Access::ReadOnly => Err(Error::PermissionDenied {
            what: format!("{} (opened read-only)", dev.describe()),
        }),
    }
}

/// Sets the mode bits of a device we just created: the mode given to `open` is filtered by
/// the umask, `fchmod` is not.
pub(super) fn set_permissions(dev: &impl Mappable, perms: Permissions) -> Result<()> {
    rustix::fs::fchmod(dev, rustix::fs::Mode::from_raw_mode(perms.mode()))
        .map_err(|e| Error::from_os("fchmod", dev.describe(), e.into()))
}

/// The race-free open-or-create loop: try an exclusive create, else open; if the object
/// vanished in between (another process removed it), start again. The flag says whether
/// this call created it. Exactly one of many concurrent callers creates.
pub(super) fn create_or_open<T>(
    mut create: impl FnMut() -> Result<T>,
    mut open: impl FnMut() -> Result<T>,
) -> Result<(T, bool)> {
    loop {
        match create() {
            Ok(created) => return Ok((created, true)),
            Err(Error::AlreadyExists { .. }) => {}
            Err(err) => return Err(err),
        }
        match open() {
            Ok(opened) => return Ok((opened, false)),
            Err(Error::NotFound { .. }) => {}
            Err(err) => return Err(err),
        }
    }
}
