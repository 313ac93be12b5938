//! Files to map: a memory-mapped file is shared memory that persists in the filesystem.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::device::{self, create_or_open, Mappable};
use super::{Access, Permissions};
use crate::error::{Error, Result};

/// An open file to map: the file, its path and how it was opened.
///
/// Dropping it closes the file; regions mapped from it stay valid.
#[derive(Debug)]
pub struct MappableFile {
    file: File,
    path: PathBuf,
    access: Access,
}

/// Refuses paths the OS cannot take, with a clearer error than its EINVAL.
fn check_path(path: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let reason = if bytes.is_empty() {
        "a file path must not be empty"
    } else if bytes.contains(&0) {
        "a file path must not contain a NUL byte"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: path.display().to_string(),
        reason,
    })
}

impl MappableFile {
    /// Creates the file `path` with `size` zero bytes, opened read-write; fails with
    /// `AlreadyExists` if it is there.
    ///
    /// `perms` are applied with `fchmod` after creation so that the umask does not narrow
    /// them. If sizing fails the new file is removed again.
    pub fn create(path: &Path, size: u64, perms: Permissions) -> Result<Self> {
        check_path(path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(perms.mode())
            .open(path)
            .map_err(|e| Error::from_os("open", describe(path), e))?;
        let created = MappableFile {
            file,
            path: path.to_owned(),
            access: Access::ReadWrite,
        };
        let setup = device::set_permissions(&created, perms).and_then(|()| {
            // SAFETY: the file was empty a moment ago (created here), so this only grows it.
            unsafe { created.truncate(size) }
        });
        if let Err(err) = setup {
            // The setup error is the one worth reporting; a failed cleanup is not.
            drop(created);
            let _ = std::fs::remove_file(path);
            return Err(err);
        }
        Ok(created)
    }

    /// Opens the existing file `path`; fails with `NotFound` if there is none.
    pub fn open(path: &Path, access: Access) -> Result<Self> {
        check_path(path)?;
        // Non-blocking, so that a FIFO's open does not wait for its other end; a regular
        // file ignores the flag.
        let file = OpenOptions::new()
            .read(true)
            .write(access == Access::ReadWrite)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| Error::from_os("open", describe(path), e))?;
        let kind = file
            .metadata()
            .map_err(|e| Error::from_os("fstat", describe(path), e))?
            .file_type();
        if !kind.is_file() {
            return Err(Error::InvalidName {
                name: path.display().to_string(),
                reason: "not a regular file (a FIFO, socket, device or directory cannot be \
                         mapped or locked as a file)",
            });
        }
        Ok(MappableFile {
            file,
            path: path.to_owned(),
            access,
        })
    }

    /// Opens `path` read-write, creating it with `size` bytes if it does not exist; the flag
    /// says whether this call created it. An existing file keeps its size.
    ///
    /// Race-free: exactly one of many concurrent callers creates the file. An opener can still
    /// see the file before its creator has sized it; telling that apart is the caller's job.
    pub fn open_or_create(path: &Path, size: u64, perms: Permissions) -> Result<(Self, bool)> {
        create_or_open(
            || Self::create(path, size, perms),
            || Self::open(path, Access::ReadWrite),
        )
    }

    /// The path the file was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the file was opened.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The current size in bytes (other processes may resize the file).
    pub fn size(&self) -> Result<u64> {
        device::size(self)
    }

    /// Sets the size to `len` bytes; new bytes read as zero. Needs `Access::ReadWrite`.
    /// Growing this way makes a sparse file: its new pages get storage on first write, and
    /// a full file system then is `SIGBUS` in whoever writes through a mapping.
    ///
    /// # Safety
    /// Shrinking cuts off pages that mappings of the device, in any process, may still use:
    /// their next access there is `SIGBUS`. The caller makes sure no mapping uses bytes past
    /// `len` (a managed segment's offline `shrink_to_fit` holds the segment's exclusive
    /// attach lock for that), also against another process growing the device meanwhile.
    /// Growing alone cannot hurt a mapping; sizing at [`create`](Self::create) only grows.
    pub unsafe fn truncate(&self, len: u64) -> Result<()> {
        device::truncate(self, len)
    }

    /// Makes the file at least `len` bytes and allocates storage for all of them now
    /// (`fallocate`), so that a full file system is [`Error::OutOfSpace`] here rather than a
    /// `SIGBUS` later. Never shrinks. On file systems that cannot allocate ahead
    /// (`EOPNOTSUPP`) it only grows the size. Needs `Access::ReadWrite`.
    pub fn allocate(&self, len: u64) -> Result<()> {
        device::allocate(self, len)
    }

    /// Removes the file `path`; `Ok(false)` if there was none. Regions mapped from it stay
    /// valid.
    pub fn remove(path: &Path) -> Result<bool> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::from_os("unlink", describe(path), e)),
        }
    }
}

impl AsFd for MappableFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl Mappable for MappableFile {
    fn access(&self) -> Access {
        self.access
    }

    fn size(&self) -> Result<u64> {
        device::size(self)
    }

    fn describe(&self) -> String {
        describe(&self.path)
    }
}

fn describe(path: &Path) -> String {
    format!("file {}", path.display())
}
