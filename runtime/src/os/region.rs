//! Mapped regions: (part of) a device, or anonymous memory, in this process's address space.

use std::ffi::c_void;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::io::Errno;
use rustix::mm::{self, MapFlags, MsyncFlags, ProtFlags};

use super::device::{self, Mappable};
use super::{fork, page_size, MapMode};
use crate::error::{Error, Result};

/// A mapping owned by this value and unmapped when it is dropped.
///
/// The region hands out a raw pointer only: what the bytes mean, and who may write them
/// when, is for the layers above to decide.
#[derive(Debug)]
pub struct MappedRegion {
    /// Where the kernel put the mapping: page aligned.
    base: *mut c_void,
    /// The mapping's length from `base`: `page_offset + len`.
    map_len: usize,
    /// From `base` to the first byte asked for, which need not start a page.
    page_offset: usize,
    len: usize,
    mode: MapMode,
    /// The fork generation ([`fork::generation`]) in which forked children stopped
    /// inheriting the mapping, or [`INHERITED`]: in a later generation (a forked child made
    /// since) the range is not this region's.
    not_inherited_since: AtomicU32,
}

/// [`MappedRegion::not_inherited_since`] of a region that forked children inherit.
const INHERITED: u32 = u32::MAX;

// SAFETY: the region owns its mapping and holds only its address. A mapping is not tied to
// the thread that made it (`msync` and `munmap` work from any thread), and the region gives
// no access to the bytes itself, only a raw pointer whose use the caller synchronises.
unsafe impl Send for MappedRegion {}
// SAFETY: as for `Send`; the `&self` methods only read the fields and call `msync`.
unsafe impl Sync for MappedRegion {}

impl MappedRegion {
    /// Maps `len` bytes of `dev` from `offset`; `None` maps up to the end of the device.
    ///
    /// `offset` need not be page aligned: the mapping starts at the page holding it and
    /// [`as_ptr`](Self::as_ptr) points at `offset` itself. The range must be non-empty
    /// (`InvalidSize`) and lie within the device (`InvalidSize`: pages past the end fault
    /// with `SIGBUS` when touched). A device opened read-only cannot be mapped
    /// `ReadWrite` (`PermissionDenied`).
    pub fn map(
        dev: &impl Mappable,
        mode: MapMode,
        offset: u64,
        len: Option<usize>,
    ) -> Result<Self> {
        Self::map_device(dev, mode, dev.size()?, offset, len, 0, None)
    }

    /// Like [`map`](Self::map), but so that [`as_ptr`](Self::as_ptr) is `addr`, e.g. to map a
    /// segment at the address another process uses.
    ///
    /// Never replaces an existing mapping: if any page of the range is in use the result is
    /// `AlreadyExists` naming the address. `addr` must lie as far past a page boundary as
    /// `offset` does (`InvalidAddress`).
    pub fn map_at(
        dev: &impl Mappable,
        mode: MapMode,
        offset: u64,
        len: Option<usize>,
        addr: NonNull<u8>,
    ) -> Result<Self> {
        Self::map_device(dev, mode, dev.size()?, offset, len, 0, Some(addr))
    }

    /// Maps all `size` bytes of `dev` (at `addr` if given, as [`map_at`](Self::map_at)),
    /// where `size` is the device's size as the caller just read it at a point from which
    /// nobody can shrink it (a segment's device under its attachment locks): the open path
    /// saves asking the kernel again. The mapping reaches `reserved` bytes when that is
    /// more, so that the device can grow into it: the region's [`len`](Self::len) stays
    /// `size`, and the caller touches no byte past what the device has grown to (a page
    /// past the device's end faults with `SIGBUS`).
    pub(crate) fn map_whole(
        dev: &impl Mappable,
        mode: MapMode,
        size: u64,
        reserved: u64,
        addr: Option<NonNull<u8>>,
    ) -> Result<Self> {
        let reserved = usize::try_from(reserved).map_err(|_| Error::InvalidSize {
            size: reserved,
            reason: "a reservation larger than the address space".to_owned(),
        })?;
        Self::map_device(dev, mode, size, 0, None, reserved, addr)
    }

    /// `len` zeroed bytes of shared anonymous memory: a child created by `fork` after this
    /// call shares them with its parent, the simplest memory to share between relatives.
    pub fn anonymous_shared(len: usize) -> Result<Self> {
        if len == 0 {
            return Err(Error::InvalidSize {
                size: 0,
                reason: "anonymous shared memory cannot be empty".to_owned(),
            });
        }
        // SAFETY: with a null address the kernel picks a range that overlaps no existing
        // mapping, so no memory that anything refers to changes.
        let base = unsafe {
            mm::mmap_anonymous(
                ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
            )
        }
        .map_err(|e| Error::from_os("mmap", "anonymous shared memory", e.into()))?;
        Ok(MappedRegion {
            base,
            map_len: len,
            page_offset: 0,
            len,
            mode: MapMode::ReadWrite,
            not_inherited_since: AtomicU32::new(INHERITED),
        })
    }

    /// The first byte of the region, valid for [`len`](Self::len) bytes while the region
    /// lives (and writable unless mapped `ReadOnly`).
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.cast::<u8>().wrapping_add(self.page_offset)
    }

    /// The length in bytes, as asked for (not rounded to pages).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty; never, as empty regions are refused.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How the region is mapped (anonymous memory is `ReadWrite`).
    pub fn mode(&self) -> MapMode {
        self.mode
    }

    /// Writes the region's changes back to the device and waits until that is done
    /// (`msync(MS_SYNC)`). No order among pages is promised, here or in the kernel's own
    /// writeback, which may write any dirty page earlier: after a machine crash each page
    /// changed since the last completed flush is old or new.
    pub fn flush(&self) -> Result<()> {
        self.sync(0, self.len, MsyncFlags::SYNC)
    }

    /// Like [`flush`](Self::flush), for `len` bytes from `offset` in the region (not in the
    /// device). A range outside the region is `RangeOutOfBounds`.
    pub fn flush_range(&self, offset: usize, len: usize) -> Result<()> {
        self.sync(offset, len, MsyncFlags::SYNC)
    }

    /// Starts writing the region's changes back to the device without waiting.
    pub fn flush_async(&self) -> Result<()> {
        self.sync(0, self.len, MsyncFlags::ASYNC)
    }

    /// Whether a child created by `fork` gets this region (`MADV_DOFORK`, the default) or
    /// not (`MADV_DONTFORK`: the range is unmapped in the child, where the region's
    /// [`as_ptr`](Self::as_ptr) then points at nothing of it and dropping it unmaps nothing).
    pub fn set_inherited_by_fork(&self, inherited: bool) -> Result<()> {
        let advice = if inherited {
            mm::Advice::LinuxDoFork
        } else {
            mm::Advice::LinuxDontFork
        };
        // A fork in between leaves the child a mapping it does not unmap, never the
        // reverse: the generation is recorded before the child stops inheriting the range,
        // and forgotten once it inherits it (again).
        if !inherited {
            // Generations are counted by the fork handler.
            fork::install()?;
            self.not_inherited_since
                .store(fork::generation(), Ordering::Relaxed);
        }
        // SAFETY: `base..base+map_len` is exactly our live mapping; fork inheritance changes
        // nothing in this process's memory.
        let advised = unsafe { mm::madvise(self.base, self.map_len, advice) };
        if advised.is_ok() == inherited {
            self.not_inherited_since.store(INHERITED, Ordering::Relaxed);
        }
        advised.map_err(|e| {
            Error::from_os(
                "madvise",
                format!("mapped region at {:p}", self.as_ptr()),
                e.into(),
            )
        })
    }

    /// Whether the region is mapped in this process: false in a child forked after
    /// [`set_inherited_by_fork(false)`](Self::set_inherited_by_fork), which did not get it.
    pub fn mapped_here(&self) -> bool {
        self.not_inherited_since()
            .is_none_or(|since| since == fork::generation())
    }

    /// The fork generation in which forked children stopped inheriting the region; None
    /// while they inherit it.
    pub(crate) fn not_inherited_since(&self) -> Option<u32> {
        Some(self.not_inherited_since.load(Ordering::Relaxed)).filter(|&g| g != INHERITED)
    }

    /// The whole mapping, page aligned: its first byte and length.
    pub(crate) fn pages(&self) -> (*mut c_void, usize) {
        (self.base, self.map_len)
    }

    /// Maps `len` bytes (`None`: the rest) from `offset` of `dev`, whose size is `size`,
    /// reaching `reserved` bytes from `offset` if that is more.
    fn map_device(
        dev: &impl Mappable,
        mode: MapMode,
        size: u64,
        offset: u64,
        len: Option<usize>,
        reserved: usize,
        addr: Option<NonNull<u8>>,
    ) -> Result<Self> {
        if mode == MapMode::ReadWrite {
            device::writable(dev)?;
        }
        let len = checked_len(dev, size, offset, len)?;
        let page = page_size();
        // Less than a page, so it fits a usize.
        let page_offset = (offset % page as u64) as usize;
        let map_len =
            page_offset
                .checked_add(len.max(reserved))
                .ok_or_else(|| Error::InvalidSize {
                    size: len as u64,
                    reason: "larger than the address space".to_owned(),
                })?;
        let (hint, placement) = match addr {
            None => (ptr::null_mut(), MapFlags::empty()),
            Some(addr) => (
                base_for(addr, page_offset, offset)?,
                MapFlags::FIXED_NOREPLACE,
            ),
        };
        let sharing = match mode {
            MapMode::ReadOnly | MapMode::ReadWrite => MapFlags::SHARED,
            MapMode::CopyOnWrite => MapFlags::PRIVATE,
        };
        let prot = match mode {
            MapMode::ReadOnly => ProtFlags::READ,
            MapMode::ReadWrite | MapMode::CopyOnWrite => ProtFlags::READ | ProtFlags::WRITE,
        };
        // SAFETY: this call only ever creates a new mapping. Without an address the kernel
        // picks a free range. With one, `MAP_FIXED_NOREPLACE` makes the kernel map exactly
        // there or fail with `EEXIST`, leaving what is mapped untouched; a kernel older than
        // 4.17 ignores the flag and, `MAP_FIXED` being absent, takes the address as a mere
        // hint, which never replaces a mapping either. So no memory anything refers to
        // changes (rustix asks more of a non-null address because it must allow `MAP_FIXED`,
        // which we never pass). The hint is page aligned (`base_for` checks), and the file
        // offset is `offset` rounded down to a page, as `mmap` requires.
        let base = unsafe {
            mm::mmap(
                hint,
                map_len,
                prot,
                sharing | placement,
                dev,
                offset - page_offset as u64,
            )
        }
        .map_err(|e| match (e, addr) {
            (Errno::EXIST, Some(addr)) => occupied(addr),
            _ => Error::from_os("mmap", dev.describe(), e.into()),
        })?;
        let region = MappedRegion {
            base,
            map_len,
            page_offset,
            len,
            mode,
            not_inherited_since: AtomicU32::new(INHERITED),
        };
        match addr {
            // An old kernel put it elsewhere because the range was taken; unmap (by drop).
            Some(addr) if region.as_ptr() != addr.as_ptr() => Err(occupied(addr)),
            _ => Ok(region),
        }
    }

    /// `msync` of `len` bytes from `offset` in the region, widened down to a page boundary.
    fn sync(&self, offset: usize, len: usize, flags: MsyncFlags) -> Result<()> {
        let end = offset
            .checked_add(len)
            .filter(|&end| end <= self.len)
            .ok_or(Error::RangeOutOfBounds {
                offset,
                len,
                size: self.len,
            })?;
        let start = self.page_offset + offset;
        let start = start - start % page_size();
        let end = self.page_offset + end;
        // SAFETY: `start..end` lies within `0..map_len` of our live mapping (checked above:
        // `end <= page_offset + len <= map_len`), and `base + start` is page aligned because
        // `base` is and `start` is a multiple of the page size. `msync` changes no bytes.
        unsafe {
            mm::msync(
                self.base.cast::<u8>().wrapping_add(start).cast(),
                end - start,
                flags,
            )
        }
        .map_err(|e| {
            Error::from_os(
                "msync",
                format!("mapped region at {:p}", self.as_ptr()),
                e.into(),
            )
        })
    }
}

impl Drop for MappedRegion {
    fn drop(&mut self) {
        // A forked child that did not inherit the range must not unmap it: it may be
        // another mapping's by now.
        if !self.mapped_here() {
            return;
        }
        // SAFETY: `base` and `map_len` describe exactly the mapping `mmap` gave us, which we
        // alone own and nothing else unmaps; the region never made references into it, and
        // `as_ptr` is documented valid only while the region lives. `munmap` of a mapping we
        // own cannot fail, and a drop could not report it anyway.
        let _ = unsafe { mm::munmap(self.base, self.map_len) };
    }
}

/// The length to map: `len`, or the rest of the device (of `size` bytes); non-zero and
/// within the device.
fn checked_len(dev: &impl Mappable, size: u64, offset: u64, len: Option<usize>) -> Result<usize> {
    let rest = size.saturating_sub(offset);
    let len = match len {
        Some(len) => len,
        None => usize::try_from(rest).map_err(|_| Error::InvalidSize {
            size: rest,
            reason: format!(
                "too large to map whole from {}; give a length",
                dev.describe()
            ),
        })?,
    };
    if len == 0 {
        return Err(Error::InvalidSize {
            size: 0,
            reason: format!(
                "nothing to map from offset {offset} of {} ({size} bytes)",
                dev.describe()
            ),
        });
    }
    if len as u64 > rest {
        return Err(Error::InvalidSize {
            size: len as u64,
            reason: format!(
                "a region from offset {offset} would end past the end of {} ({size} bytes)",
                dev.describe()
            ),
        });
    }
    Ok(len)
}

/// The page-aligned address to map at so that the byte at `page_offset` lands on `addr`.
fn base_for(addr: NonNull<u8>, page_offset: usize, offset: u64) -> Result<*mut c_void> {
    match addr.as_ptr().addr().checked_sub(page_offset) {
        Some(base) if base % page_size() == 0 => Ok(ptr::without_provenance_mut(base)),
        _ => Err(Error::InvalidAddress {
            addr: addr.as_ptr().addr(),
            reason: format!(
                "to map offset {offset} there, the address must lie {page_offset} bytes past a \
                 page boundary"
            ),
        }),
    }
}

fn occupied(addr: NonNull<u8>) -> Error {
    Error::AlreadyExists {
        what: format!("address {addr:p}"),
    }
}
