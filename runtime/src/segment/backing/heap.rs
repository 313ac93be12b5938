//! Managed heap memory: a segment in this process's heap. Useful to build a segment image
//! and send or store it, or to use the segment containers without sharing; `grow` moves
//! the bytes, which the offset-based format survives.

use std::alloc::{self, Layout};
use std::os::fd::AsFd;
use std::ptr::NonNull;

use crate::alloc::{MemoryAlgorithm, Tlsf};
use crate::error::{Error, Result};
use crate::manager::header::DEFAULT_INIT_TIMEOUT;
use crate::objects::{HashIndex, IndexKind};
use crate::segment::backing::buffer::{ImageBytes, SegmentImage};
use crate::segment::builder::SegmentBuilder;
use crate::segment::managed::{check_size, Backing, ManagedSegment};
use crate::segment::mode::Exclusive;

/// Alignment of the heap block: a page, like a real mapping, so that aligned allocations
/// behave the same as in shared memory.
const HEAP_ALIGN: usize = 4096;

/// A heap block owned by a heap segment.
pub struct HeapMemory {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the block is owned and only reached through the segment's synchronised API.
unsafe impl Send for HeapMemory {}
// SAFETY: as above.
unsafe impl Sync for HeapMemory {}

impl HeapMemory {
    fn layout(len: usize) -> Result<Layout> {
        Layout::from_size_align(len, HEAP_ALIGN).map_err(|_| Error::InvalidSize {
            size: len as u64,
            reason: "too large for the heap".into(),
        })
    }

    fn zeroed(len: usize) -> Result<Self> {
        let layout = Self::layout(len)?;
        // SAFETY: `len` is at least the minimum segment size, so the layout is not empty.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or_else(|| Error::InvalidSize {
            size: len as u64,
            reason: "the process heap cannot provide this much memory".into(),
        })?;
        Ok(HeapMemory { ptr, len })
    }
}

impl Drop for HeapMemory {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` (or `grow`) with exactly this layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.len).unwrap_unchecked()) }
    }
}

impl Backing for HeapMemory {
    type DefaultMode = Exclusive;
    fn describe(&self) -> String {
        format!("heap segment at {:p}", self.ptr)
    }
    /// An image in memory is final: nobody is still writing its header.
    fn creator_at_work(&self, _creator: u32, _owner: &crate::robust::Owner) -> Option<bool> {
        Some(false)
    }
    /// The block is this segment's own: no other mapping can hold its locks.
    fn private_copy(&self) -> bool {
        true
    }
}

/// A segment in the process heap; [`Exclusive`]: no other mapping can reach it, so it hands
/// out `&mut` (`find_mut`, `root_mut`). Another index is chosen on the builder:
/// `ManagedHeapMemory::options().index::<OrderedIndex>().create(size)`.
pub type ManagedHeapMemory<I = HashIndex, A = Tlsf> = ManagedSegment<HeapMemory, Exclusive, I, A>;

impl<I: IndexKind, A: MemoryAlgorithm> SegmentBuilder<HeapMemory, Exclusive, I, A> {
    /// A new, empty segment of `size` bytes on the heap: at least
    /// [`MIN_SEGMENT_SIZE`](crate::MIN_SEGMENT_SIZE) (768) bytes, else `InvalidSize`.
    pub fn create(self, size: usize) -> Result<ManagedHeapMemory<I, A>> {
        check_size(size as u64)?;
        let mem = HeapMemory::zeroed(size)?;
        let (base, len) = (mem.ptr, mem.len);
        // SAFETY: the block is fresh, writable, ours alone, and lives as long as `mem`.
        unsafe { ManagedSegment::attach(mem, base, len, true, DEFAULT_INIT_TIMEOUT) }
    }

    /// A heap segment holding a copy of `image`: the bytes of a segment taken from
    /// [`image`](ManagedSegment::image), a file or another process. The copy is validated.
    pub fn from_image(self, image: &(impl ImageBytes + ?Sized)) -> Result<ManagedHeapMemory<I, A>> {
        let image = image.image_bytes();
        let mem = HeapMemory::zeroed(image.len().max(1))?;
        // SAFETY: `mem` has room for `image.len()` bytes and does not overlap it; copying
        // bytes that may be uninitialised keeps them so, which the segment allows.
        unsafe {
            mem.ptr
                .as_ptr()
                .copy_from_nonoverlapping(image.as_ptr().cast(), image.len())
        };
        let (base, len) = (mem.ptr, image.len());
        // SAFETY: the block is ours alone and lives as long as `mem`.
        unsafe { ManagedSegment::attach(mem, base, len, false, DEFAULT_INIT_TIMEOUT) }
    }
}

/// The shorthands: the builder with its defaults.
impl ManagedHeapMemory {
    /// A new, empty segment of `size` bytes on the heap.
    pub fn new(size: usize) -> Result<Self> {
        Self::options().create(size)
    }

    /// A heap segment holding a validated copy of `image` (see
    /// [`image`](ManagedSegment::image)).
    pub fn from_image(image: &(impl ImageBytes + ?Sized)) -> Result<Self> {
        Self::options().from_image(image)
    }
}

impl<I: IndexKind, A: MemoryAlgorithm> ManagedSegment<HeapMemory, Exclusive, I, A> {
    /// The segment's bytes, e.g. to copy them into an [`AlignedBuffer`](crate::AlignedBuffer). They are
    /// `MaybeUninit`: padding of stored values was never initialised. Needs `&mut self` so
    /// that no allocation changes them while they are borrowed.
    pub fn image(&mut self) -> &SegmentImage {
        let mem = self.backing();
        // SAFETY: the block holds `size()` bytes, and `&mut self` keeps every writer away
        // while the slice lives; `MaybeUninit` claims nothing about their contents.
        let bytes = unsafe { std::slice::from_raw_parts(mem.ptr.as_ptr().cast(), self.size()) };
        // SAFETY: the block was zeroed when made (and its growth zeroed since), and only
        // this segment has written it.
        unsafe { SegmentImage::of_segment(bytes) }
    }

    /// Writes the segment's bytes to `fd` (a file, a socket, a pipe), straight from memory
    /// to the kernel, to be reopened with [`from_image`](SegmentBuilder::from_image) or
    /// [`AlignedBuffer::read_from`](crate::AlignedBuffer::read_from).
    pub fn write_image_to(&mut self, fd: impl AsFd) -> std::io::Result<()> {
        crate::os::write_all_uninit(fd.as_fd(), self.image())
    }

    /// Grows the segment by `extra` bytes. The block may move: every address obtained
    /// before is invalid afterwards (handles and offset pointers stay valid).
    pub fn grow(&mut self, extra: usize) -> Result<()> {
        let old_len = self.backing().len;
        let new_len = old_len
            .checked_add(extra)
            .ok_or_else(|| Error::InvalidSize {
                size: extra as u64,
                reason: "the grown size overflows".into(),
            })?;
        let new_layout = HeapMemory::layout(new_len)?;
        let mem = self.backing_mut();
        // SAFETY: `mem.ptr` was allocated with the layout of `old_len`; the new size is
        // non-zero and fits a layout with the same alignment (checked above).
        let ptr = unsafe {
            alloc::realloc(
                mem.ptr.as_ptr(),
                HeapMemory::layout(old_len)?,
                new_layout.size(),
            )
        };
        let ptr = NonNull::new(ptr).ok_or_else(|| Error::InvalidSize {
            size: new_len as u64,
            reason: "the process heap cannot provide this much memory".into(),
        })?;
        // SAFETY: realloc gave `new_len` bytes; the tail past `old_len` is uninitialised.
        unsafe { ptr.as_ptr().add(old_len).write_bytes(0, extra) };
        mem.ptr = ptr;
        mem.len = new_len;
        self.relocated(ptr, new_len)?;
        // SAFETY: the block now holds `new_len` bytes and `&mut self` excludes other users.
        unsafe { self.core().grow_to(new_len) }
    }

    /// Shrinks the segment to the smallest size that keeps every allocation (a free tail is
    /// cut off) and gives the rest back to the process heap; returns the new size (Boost's
    /// `managed_heap_memory` twin of [`grow`](Self::grow)). The block may move, as in
    /// `grow`.
    pub fn shrink_to_fit(&mut self) -> Result<usize> {
        let new_len = self.core().trim_to_fit()?;
        let old_len = self.backing().len;
        if new_len == old_len {
            return Ok(new_len);
        }
        let old_layout = HeapMemory::layout(old_len)?;
        let mem = self.backing_mut();
        // SAFETY: `mem.ptr` was allocated with the layout of `old_len`; `new_len` is at
        // least the minimum segment size, so non-zero, and below `old_len`.
        let ptr = unsafe { alloc::realloc(mem.ptr.as_ptr(), old_layout, new_len) };
        // On failure the old block stays, larger than the segment now needs.
        let ptr = NonNull::new(ptr).ok_or_else(|| Error::InvalidSize {
            size: new_len as u64,
            reason: "the process heap could not resize the segment's block".into(),
        })?;
        mem.ptr = ptr;
        mem.len = new_len;
        self.relocated(ptr, new_len)?;
        Ok(new_len)
    }
}
