//! Managed System V (XSI) shared memory: a segment named by a key made from a path and an
//! id, for systems and programs that speak `shmget`.
//!
//! XSI memory has no file description to hold attachment locks on, so each mapping holds
//! them on its own description of a companion lock file: the POSIX shared memory object
//! `shmkit-xsi-<shmid>` (empty; created by the first mapping, removed with the segment).

use std::os::fd::{AsFd, BorrowedFd};
use std::ptr::NonNull;

use super::attachment::Attachment;
use crate::error::{Error, Result};
use crate::objects::{HashIndex, IndexKind};
use crate::os::{Access, MapMode, SharedMemoryObject, XsiKey, XsiRegion, XsiSharedMemory};
use crate::segment::builder::{SegmentBuilder, Settings};
use crate::segment::managed::{check_size, Backing, ManagedSegment};
use crate::segment::mode::{Mode, ReadWrite};

/// An XSI shared memory segment, its attachment and the companion file that carries the
/// attachment's locks.
pub struct XsiBacking {
    // Declared first: detached before the handle goes.
    region: XsiRegion,
    // Before the companion: leaves the fork handler's list before the descriptor closes.
    attachment: Attachment,
    companion: SharedMemoryObject,
    shm: XsiSharedMemory,
}

/// The name of the companion lock file of the XSI segment `id`.
fn companion_name(id: libc::c_int) -> String {
    format!("shmkit-xsi-{id}")
}

impl XsiBacking {
    /// The XSI segment (its id and key).
    pub fn shm(&self) -> &XsiSharedMemory {
        &self.shm
    }
}

impl Backing for XsiBacking {
    type DefaultMode = ReadWrite;
    fn describe(&self) -> String {
        format!(
            "XSI shared memory (key {:#x}, id {}) attached at {:p}",
            self.shm.key().raw(),
            self.shm.id(),
            self.region.as_ptr()
        )
    }
    fn cold(&self) -> bool {
        self.attachment.cold()
    }
    fn lock_description(&self) -> Option<BorrowedFd<'_>> {
        Some(self.companion.as_fd())
    }
    fn alone<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        self.attachment.alone(&self.companion, f)
    }
}

/// A segment in System V shared memory. XSI memory has no copy-on-write attachment, so
/// this kind opens read-write or read-only only (`options().read_only().open(key)`).
pub type ManagedXsiSharedMemory<M = ReadWrite, I = HashIndex> = ManagedSegment<XsiBacking, M, I>;

fn attach<M: Mode, I: IndexKind>(
    shm: XsiSharedMemory,
    created: bool,
    opts: &Settings,
) -> Result<ManagedSegment<XsiBacking, M, I>> {
    let access = match M::MAP {
        MapMode::ReadWrite => Access::ReadWrite,
        MapMode::ReadOnly | MapMode::CopyOnWrite => Access::ReadOnly,
    };
    let (companion, _) =
        SharedMemoryObject::open_or_create(&companion_name(shm.id()), access, opts.permissions)?;
    // Before attaching: a creator holds its locks before anyone can see the header.
    let attachment = Attachment::take::<M>(&companion).map_err(|e| match e {
        Error::InUse { reason, .. } => Error::InUse {
            what: format!(
                "XSI shared memory (key {:#x}, id {})",
                shm.key().raw(),
                shm.id()
            ),
            reason,
        },
        other => other,
    })?;
    let region = shm.attach(M::MAP)?;
    let base = NonNull::new(region.as_ptr()).ok_or_else(|| Error::InvalidAddress {
        addr: 0,
        reason: "the OS attached the segment at address 0".into(),
    })?;
    let len = region.len();
    // SAFETY: the attachment covers `len` bytes with the mode's protection and lives as long
    // as the backing; when `created`, nobody else uses it before the header says READY.
    unsafe {
        ManagedSegment::attach(
            XsiBacking {
                region,
                attachment,
                companion,
                shm,
            },
            base,
            len,
            created,
            opts.init_timeout,
        )
    }
}

fn create_attached<I: IndexKind>(
    shm: XsiSharedMemory,
    opts: &Settings,
) -> Result<ManagedSegment<XsiBacking, ReadWrite, I>> {
    let id = shm.id();
    attach(shm, true, opts).inspect_err(|_| {
        // Best effort: the create failed already, that error is the one to report.
        let _ = XsiSharedMemory::remove_id(id);
        let _ = SharedMemoryObject::remove(&companion_name(id));
    })
}

impl<I: IndexKind> SegmentBuilder<XsiBacking, ReadWrite, I> {
    /// Creates a new segment of `size` bytes under `key`; AlreadyExists if the key is taken.
    pub fn create(self, key: XsiKey, size: usize) -> Result<ManagedXsiSharedMemory<ReadWrite, I>> {
        check_size(size as u64)?;
        let shm = XsiSharedMemory::create(key, size, self.settings.permissions)?;
        create_attached(shm, &self.settings)
    }

    /// Opens the segment under `key`, or creates it with `size` bytes; one creator wins.
    pub fn open_or_create(
        self,
        key: XsiKey,
        size: usize,
    ) -> Result<ManagedXsiSharedMemory<ReadWrite, I>> {
        check_size(size as u64)?;
        match XsiSharedMemory::open_or_create(key, size, self.settings.permissions)? {
            (shm, true) => create_attached(shm, &self.settings),
            (shm, false) => attach(shm, false, &self.settings),
        }
    }
}

impl<M: Mode, I: IndexKind> SegmentBuilder<XsiBacking, M, I> {
    /// Opens the segment under `key` in this builder's mode.
    pub fn open(self, key: XsiKey) -> Result<ManagedXsiSharedMemory<M, I>> {
        attach(XsiSharedMemory::open(key)?, false, &self.settings)
    }
}

/// The shorthands: the builder with its defaults.
impl ManagedXsiSharedMemory {
    /// Creates a new segment of `size` bytes under `key`; AlreadyExists if the key is taken.
    pub fn create(key: XsiKey, size: usize) -> Result<Self> {
        Self::options().create(key, size)
    }

    /// Opens the segment under `key` for reading and writing.
    pub fn open(key: XsiKey) -> Result<Self> {
        Self::options().open(key)
    }

    /// Opens the segment under `key`, or creates it with `size` bytes; one creator wins.
    pub fn open_or_create(key: XsiKey, size: usize) -> Result<Self> {
        Self::options().open_or_create(key, size)
    }

    /// Marks the segment under `key` for removal (it lives on until the last detach) and
    /// removes its companion lock file. Returns false if there is none.
    pub fn remove(key: XsiKey) -> Result<bool> {
        match XsiSharedMemory::open(key) {
            Ok(shm) => {
                let removed = XsiSharedMemory::remove_id(shm.id())?;
                SharedMemoryObject::remove(&companion_name(shm.id()))?;
                Ok(removed)
            }
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
