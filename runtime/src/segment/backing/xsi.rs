//! Managed System V (XSI) shared memory: a segment named by a key made from a path and an
//! id, for systems and programs that speak `shmget`.

use std::ptr::NonNull;

use crate::error::{Error, Result};
use crate::objects::{HashIndex, IndexKind};
use crate::os::{XsiKey, XsiRegion, XsiSharedMemory};
use crate::segment::managed::{check_size, Backing, ManagedSegment, SegmentOptions};
use crate::segment::mode::{Mode, ReadOnly, ReadWrite};

/// An XSI shared memory segment and its attachment.
pub struct XsiBacking {
    // Declared first: detached before the handle goes.
    region: XsiRegion,
    shm: XsiSharedMemory,
}

impl XsiBacking {
    /// The XSI segment (its id and key).
    pub fn shm(&self) -> &XsiSharedMemory {
        &self.shm
    }
}

impl Backing for XsiBacking {
    fn describe(&self) -> String {
        format!(
            "XSI shared memory (key {:#x}, id {}) attached at {:p}",
            self.shm.key().raw(),
            self.shm.id(),
            self.region.as_ptr()
        )
    }
}

/// A segment in System V shared memory. XSI memory has no copy-on-write attachment, so
/// this kind opens read-write or read-only only.
pub type ManagedXsiSharedMemory<M = ReadWrite> = BasicManagedXsiSharedMemory<HashIndex, M>;
/// [`ManagedXsiSharedMemory`] with another name index.
pub type BasicManagedXsiSharedMemory<I, M = ReadWrite> = ManagedSegment<XsiBacking, M, I>;

fn attach<M: Mode, I: IndexKind>(
    shm: XsiSharedMemory,
    created: bool,
    opts: &SegmentOptions,
) -> Result<ManagedSegment<XsiBacking, M, I>> {
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
            XsiBacking { region, shm },
            base,
            len,
            created,
            opts.init_timeout,
        )
    }
}

fn create_attached<I: IndexKind>(
    shm: XsiSharedMemory,
    opts: &SegmentOptions,
) -> Result<ManagedSegment<XsiBacking, ReadWrite, I>> {
    let id = shm.id();
    attach(shm, true, opts).inspect_err(|_| {
        // Best effort: the create failed already, that error is the one to report.
        let _ = XsiSharedMemory::remove_id(id);
    })
}

impl<I: IndexKind> ManagedSegment<XsiBacking, ReadWrite, I> {
    /// Creates a new segment of `size` bytes under `key`; AlreadyExists if the key is taken.
    pub fn create(key: XsiKey, size: usize) -> Result<Self> {
        let opts = SegmentOptions::default();
        check_size(size as u64)?;
        create_attached(XsiSharedMemory::create(key, size, opts.permissions)?, &opts)
    }

    /// Opens the segment under `key` for reading and writing.
    pub fn open(key: XsiKey) -> Result<Self> {
        attach(
            XsiSharedMemory::open(key)?,
            false,
            &SegmentOptions::default(),
        )
    }

    /// Opens the segment under `key`, or creates it with `size` bytes; one creator wins.
    pub fn open_or_create(key: XsiKey, size: usize) -> Result<Self> {
        let opts = SegmentOptions::default();
        check_size(size as u64)?;
        match XsiSharedMemory::open_or_create(key, size, opts.permissions)? {
            (shm, true) => create_attached(shm, &opts),
            (shm, false) => attach(shm, false, &opts),
        }
    }

    /// Opens the segment under `key` read-only.
    pub fn open_read_only(key: XsiKey) -> Result<ManagedSegment<XsiBacking, ReadOnly, I>> {
        attach(
            XsiSharedMemory::open(key)?,
            false,
            &SegmentOptions::default(),
        )
    }

    /// Marks the segment under `key` for removal (it lives on until the last detach).
    /// Returns false if there is none.
    pub fn remove(key: XsiKey) -> Result<bool> {
        match XsiSharedMemory::open(key) {
            Ok(shm) => XsiSharedMemory::remove_id(shm.id()),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
