//! Helpers for the `os_*` tests: unique names, guards that remove what a test created even
//! when it fails, and bounds-checked access to the bytes of a region.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use shmkit_runtime::os::{
    MapMode, MappableFile, MappedRegion, SharedMemoryObject, XsiRegion, XsiSharedMemory,
};

/// A name no other test (in this or a concurrent run) uses.
pub fn unique_name() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "shmkit_test_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh shared memory object name, removed on drop.
pub struct ShmName(String);

impl ShmName {
    pub fn new() -> Self {
        ShmName(unique_name())
    }

    pub fn get(&self) -> &str {
        &self.0
    }
}

impl Drop for ShmName {
    fn drop(&mut self) {
        let _ = SharedMemoryObject::remove(&self.0);
    }
}

/// A fresh path in the temporary directory, removed on drop.
pub struct TempPath(PathBuf);

impl TempPath {
    pub fn new() -> Self {
        TempPath(std::env::temp_dir().join(unique_name()))
    }

    pub fn get(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = MappableFile::remove(&self.0);
    }
}

/// Removes an XSI segment on drop.
pub struct XsiGuard(pub i32);

impl Drop for XsiGuard {
    fn drop(&mut self) {
        let _ = XsiSharedMemory::remove_id(self.0);
    }
}

/// The permission bits of an open descriptor.
pub fn mode_of(fd: impl AsFd) -> u32 {
    rustix::fs::fstat(fd).expect("fstat").st_mode & 0o777
}

/// Something mapped: its first byte, length and mode.
pub trait Region {
    fn span(&self) -> (*mut u8, usize, MapMode);
}

impl Region for MappedRegion {
    fn span(&self) -> (*mut u8, usize, MapMode) {
        (self.as_ptr(), self.len(), self.mode())
    }
}

impl Region for XsiRegion {
    fn span(&self) -> (*mut u8, usize, MapMode) {
        (self.as_ptr(), self.len(), self.mode())
    }
}

/// Copies `len` bytes from `offset` of `region`.
pub fn read(region: &impl Region, offset: usize, len: usize) -> Vec<u8> {
    let (ptr, region_len, _) = region.span();
    assert!(offset + len <= region_len, "read outside the region");
    let mut out = vec![0; len];
    // SAFETY: the region is alive (borrowed) and `offset..offset + len` lies within it.
    unsafe { std::ptr::copy_nonoverlapping(ptr.add(offset), out.as_mut_ptr(), len) };
    out
}

/// Writes `bytes` at `offset` of `region`, which must be writable.
pub fn write(region: &impl Region, offset: usize, bytes: &[u8]) {
    let (ptr, region_len, mode) = region.span();
    assert!(
        offset + bytes.len() <= region_len,
        "write outside the region"
    );
    assert_ne!(mode, MapMode::ReadOnly, "write to a read-only region");
    // SAFETY: the region is alive (borrowed), writable (not `ReadOnly`), and
    // `offset..offset + bytes.len()` lies within it; `bytes` cannot overlap a mapping.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.add(offset), bytes.len()) };
}

/// `len` bytes of a recognisable pattern.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}
