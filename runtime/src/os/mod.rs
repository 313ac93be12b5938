//! Thin safe wrappers over the OS: POSIX shared memory objects, files to map, mapped regions
//! (of a device or anonymous memory), System V shared memory, advisory file locks
//! ([`FileLock`]), and (crate-private, since a safe call could release a mapping's locks)
//! open-file-description locks.
//!
//! This layer knows nothing about segments: it opens, sizes, maps and removes. Every failure
//! is an [`Error`](crate::Error) naming the object it concerns; nothing here panics on bad
//! input. Linux is the target (`MAP_FIXED_NOREPLACE`, `fallocate`).

mod access;
mod device;
mod file;
mod file_lock;
pub(crate) mod fork;
pub(crate) mod ofd;
mod page;
mod region;
mod shm;
mod xsi;

pub use access::{Access, MapMode, Permissions};
pub use device::Mappable;
pub(crate) use device::{allocate_from as device_allocate_from, size as device_size};
pub use file::MappableFile;
pub use file_lock::{FileLock, FileLockGuard, FileLockSharedGuard};
pub use page::page_size;
pub use region::MappedRegion;
pub use shm::SharedMemoryObject;
pub use xsi::{XsiKey, XsiRegion, XsiSharedMemory, XsiStat};

/// Writes `bytes` to `fd`, all of them (retrying after partial writes and `EINTR`). The
/// bytes go to the kernel from their address, never through a `&[u8]`: a segment's bytes
/// may include padding that was never initialised, which only the kernel may read.
pub(crate) fn write_all_uninit(
    fd: std::os::fd::BorrowedFd<'_>,
    mut bytes: &[std::mem::MaybeUninit<u8>],
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    while !bytes.is_empty() {
        // SAFETY: `bytes` is readable for its length; write(2) only reads it.
        let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        match usize::try_from(n) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(_) => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}
