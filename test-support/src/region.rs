//! Bounds-checked access to the bytes of a mapped region.

use shmkit_runtime::os::{MapMode, MappedRegion, XsiRegion};

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
