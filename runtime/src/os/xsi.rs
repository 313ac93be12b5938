//! System V (XSI) shared memory: segments named by a numeric key instead of a name, sized
//! once at creation, living until removed (or reboot), attached whole.

use std::ffi::{c_int, c_void, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;

use super::device::create_or_open;
use super::{MapMode, Permissions};
use crate::error::{Error, Result};

/// The key that names an XSI segment system-wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct XsiKey(libc::key_t);

impl XsiKey {
    /// The key `ftok` derives from an existing file and a non-zero `id`, so that unrelated
    /// processes agree on it by agreeing on a path.
    pub fn from_path(path: &Path, id: u8) -> Result<Self> {
        if id == 0 {
            return Err(Error::InvalidKey {
                reason: "an XSI key id must not be 0 (ftok leaves the result unspecified)",
            });
        }
        let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::InvalidName {
            name: path.display().to_string(),
            reason: "the path contains a NUL byte",
        })?;
        // SAFETY: `c_path` is a NUL-terminated string that outlives the call; `ftok` only
        // reads it.
        let key = unsafe { libc::ftok(c_path.as_ptr(), c_int::from(id)) };
        if key == -1 {
            // -1 is also a genuine key (every inode, device and id bit set); only a path
            // that cannot be stat'ed makes it an error.
            if let Err(e) = rustix::fs::stat(path) {
                return Err(Error::from_os(
                    "ftok",
                    format!("file {}", path.display()),
                    e.into(),
                ));
            }
        }
        Ok(XsiKey(key))
    }

    /// `IPC_PRIVATE`: every create makes a new segment no other process can look up; share
    /// it by `fork` or by passing its id.
    pub fn private() -> Self {
        XsiKey(libc::IPC_PRIVATE)
    }

    /// A key as the OS sees it (as `ipcs` shows it): for tools that list segments.
    pub fn from_raw(key: libc::key_t) -> Self {
        XsiKey(key)
    }

    /// The key as the OS sees it.
    pub fn raw(&self) -> libc::key_t {
        self.0
    }
}

/// A System V shared memory segment, by id.
///
/// A plain handle: dropping it changes nothing. The segment lives until
/// [`remove_id`](Self::remove_id) and its last detach.
#[derive(Debug)]
pub struct XsiSharedMemory {
    id: c_int,
    key: XsiKey,
}

impl XsiSharedMemory {
    /// Creates a segment of `size` zero bytes under `key`; `AlreadyExists` if `key` has one.
    /// A size outside the system's limits (`SHMMIN`..`SHMMAX`) is `InvalidSize`.
    pub fn create(key: XsiKey, size: usize, perms: Permissions) -> Result<Self> {
        if size == 0 {
            return Err(Error::InvalidSize {
                size: 0,
                reason: "an XSI shared memory segment cannot be empty".to_owned(),
            });
        }
        // The permission bits are at most 0o777, so they fit and cannot set IPC_* flags.
        let flags = libc::IPC_CREAT | libc::IPC_EXCL | perms.mode() as c_int;
        // SAFETY: `shmget` takes integers only and touches no memory of ours.
        let id = unsafe { libc::shmget(key.0, size, flags) };
        if id == -1 {
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::EINVAL) => Error::InvalidSize {
                    size: size as u64,
                    reason: "outside the system's limits for an XSI segment".to_owned(),
                },
                _ => Error::from_os("shmget", describe_key(key), err),
            });
        }
        Ok(XsiSharedMemory { id, key })
    }

    /// Opens the segment under `key`; `NotFound` if there is none. A private key names no
    /// segment to open (`InvalidKey`).
    pub fn open(key: XsiKey) -> Result<Self> {
        if key == XsiKey::private() {
            return Err(Error::InvalidKey {
                reason: "a segment under the private key cannot be opened, only created",
            });
        }
        // SAFETY: `shmget` takes integers only and touches no memory of ours.
        let id = unsafe { libc::shmget(key.0, 0, 0) };
        if id == -1 {
            let err = io::Error::last_os_error();
            return Err(Error::from_os("shmget", describe_key(key), err));
        }
        Ok(XsiSharedMemory { id, key })
    }

    /// Opens the segment under `key`, creating it with `size` bytes if there is none; the
    /// flag says whether this call created it. An existing segment keeps its size.
    ///
    /// Race-free: when another process removes the segment between our exclusive create and
    /// our open, we try again, so exactly one of many concurrent callers creates it.
    pub fn open_or_create(key: XsiKey, size: usize, perms: Permissions) -> Result<(Self, bool)> {
        create_or_open(|| Self::create(key, size, perms), || Self::open(key))
    }

    /// The handle of segment `id`, listed under `key`, for tools that found it in the
    /// kernel's list: a wrong pair only makes later calls fail (or describe it wrongly).
    pub(crate) fn with_id(id: c_int, key: XsiKey) -> Self {
        XsiSharedMemory { id, key }
    }

    /// The segment's id, which other processes can use too (see [`remove_id`](Self::remove_id)).
    pub fn id(&self) -> c_int {
        self.id
    }

    /// The key the segment was created or opened under.
    pub fn key(&self) -> XsiKey {
        self.key
    }

    /// The size in bytes, fixed at creation.
    pub fn size(&self) -> Result<usize> {
        ipc_stat(self.id)
            .map(|ds| ds.shm_segsz)
            .map_err(|e| Error::from_os("shmctl(IPC_STAT)", self.describe(), e))
    }

    /// What the OS says about segment `id` now; `Ok(None)` if there is no such segment (it
    /// was removed and its last attachment is gone).
    pub fn stat_id(id: c_int) -> Result<Option<XsiStat>> {
        match ipc_stat(id) {
            Ok(ds) => Ok(Some(XsiStat {
                uid: ds.shm_perm.uid,
                cuid: ds.shm_perm.cuid,
                gid: ds.shm_perm.gid,
                cgid: ds.shm_perm.cgid,
                mode: u32::from(ds.shm_perm.mode) & 0o777,
                attachments: ds.shm_nattch,
                attached_before: ds.shm_atime != 0,
                removed: c_int::from(ds.shm_perm.mode) & SHM_DEST != 0,
            })),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIDRM)) => Ok(None),
            Err(e) => Err(Error::from_os(
                "shmctl(IPC_STAT)",
                format!("XSI shared memory id {id}"),
                e,
            )),
        }
    }

    /// Marks segment `id` for removal; `Ok(false)` if there is no such segment. Its key is
    /// free at once, but attached regions stay valid: the memory goes with the last detach.
    pub fn remove_id(id: c_int) -> Result<bool> {
        // SAFETY: `IPC_RMID` does not use the buffer argument, so null is fine.
        if unsafe { libc::shmctl(id, libc::IPC_RMID, ptr::null_mut()) } == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINVAL | libc::EIDRM) => Ok(false),
            _ => Err(Error::from_os(
                "shmctl(IPC_RMID)",
                format!("XSI shared memory id {id}"),
                err,
            )),
        }
    }

    /// Attaches the whole segment (`shmat`) read-only or read-write. XSI memory has no
    /// copy-on-write mapping (`Unsupported`).
    pub fn attach(&self, mode: MapMode) -> Result<XsiRegion> {
        let flags = match mode {
            MapMode::ReadOnly => libc::SHM_RDONLY,
            MapMode::ReadWrite => 0,
            MapMode::CopyOnWrite => {
                return Err(Error::Unsupported {
                    what: "XSI shared memory cannot be mapped copy-on-write",
                })
            }
        };
        // The size cannot change after creation, so reading it first is not racy.
        let len = self.size()?;
        // SAFETY: with a null address the kernel picks a range that overlaps no existing
        // mapping, so no memory anything refers to changes.
        let ptr = unsafe { libc::shmat(self.id, ptr::null(), flags) };
        // `shmat` reports failure as the address `(void *)-1`.
        if ptr.addr() == usize::MAX {
            return Err(Error::from_os(
                "shmat",
                self.describe(),
                io::Error::last_os_error(),
            ));
        }
        Ok(XsiRegion { ptr, len, mode })
    }

    fn describe(&self) -> String {
        format!("{} (id {})", describe_key(self.key), self.id)
    }
}

/// Linux's mode bit of a segment marked for removal (`<linux/shm.h>`; not in `libc`).
const SHM_DEST: c_int = 0o1000;

/// `IPC_STAT` of segment `id`.
fn ipc_stat(id: c_int) -> io::Result<libc::shmid_ds> {
    // SAFETY: `shmid_ds` is a C struct of integers, for which all-zero bytes are valid.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a valid, writable `shmid_ds` for `IPC_STAT` to fill in.
    if unsafe { libc::shmctl(id, libc::IPC_STAT, &raw mut ds) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(ds)
}

/// A segment's owners, permissions and attachments, as `IPC_STAT` reports them
/// ([`XsiSharedMemory::stat_id`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XsiStat {
    /// The owner's user id (`IPC_SET` can change it).
    pub uid: u32,
    /// The creator's user id (fixed).
    pub cuid: u32,
    /// The owner's group id.
    pub gid: u32,
    /// The creator's group id.
    pub cgid: u32,
    /// The permission bits (`0o777` at most).
    pub mode: u32,
    /// Attachments in all processes (`shm_nattch`).
    pub attachments: libc::shmatt_t,
    /// Whether anyone ever attached it (`shm_atime` is set).
    pub attached_before: bool,
    /// Whether it is marked for removal and lives on only until its last detach.
    pub removed: bool,
}

fn describe_key(key: XsiKey) -> String {
    format!("XSI shared memory key {:#x}", key.0)
}

/// An attached XSI segment, detached (`shmdt`) when dropped.
#[derive(Debug)]
pub struct XsiRegion {
    ptr: *mut c_void,
    len: usize,
    mode: MapMode,
}

// SAFETY: the region owns its attachment and holds only its address. An attachment is not
// tied to the thread that made it (`shmdt` works from any thread), and the region gives no
// access to the bytes itself, only a raw pointer whose use the caller synchronises.
unsafe impl Send for XsiRegion {}
// SAFETY: as for `Send`; the `&self` methods only read the fields.
unsafe impl Sync for XsiRegion {}

impl XsiRegion {
    /// The first byte, valid for [`len`](Self::len) bytes while the region lives (and
    /// writable if attached `ReadWrite`).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.cast()
    }

    /// The segment's size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty; never, as empty segments cannot be created.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How the segment is attached: `ReadOnly` or `ReadWrite`.
    pub fn mode(&self) -> MapMode {
        self.mode
    }
}

impl Drop for XsiRegion {
    fn drop(&mut self) {
        // SAFETY: `ptr` is the address `shmat` returned for an attachment we alone own and
        // nothing else detaches; the region never made references into it, and `as_ptr` is
        // documented valid only while the region lives. `shmdt` of our own attachment cannot
        // fail, and a drop could not report it anyway.
        unsafe { libc::shmdt(self.ptr) };
    }
}
