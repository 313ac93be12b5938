//! The element buffers of [`Vec`](crate::Vec) and [`Deque`](crate::Deque): one block each,
//! whose first bytes name the container that owns it (its tag, see
//! [`shmkit_runtime::segment::owned`]), the elements after them. A validation accepts a
//! buffer only if its tag names the very container being validated, so no two containers
//! in a forged file share one buffer.
//!
//! Buffers are addressed by their first element (what the containers store, so that
//! reading an element costs no addition); the block starts [`prefix`] bytes before it.

use core::alloc::Layout;
use core::ptr::NonNull;

use shmkit_runtime::segment::owned::{check_owned, set_owner, OWNER_TAG_BYTES};
use shmkit_runtime::{AllocError, Invalid, OffsetPtr, SegmentAllocator};

/// Bytes of a buffer before its first element: the tag, padded to the elements' alignment.
#[inline(always)]
const fn prefix<T>() -> usize {
    if align_of::<T>() > OWNER_TAG_BYTES {
        align_of::<T>()
    } else {
        OWNER_TAG_BYTES
    }
}

/// The layout of a buffer for `cap` elements; None past `isize::MAX` bytes.
#[inline]
pub(crate) fn layout<T>(cap: usize) -> Option<Layout> {
    let bytes = cap
        .checked_mul(size_of::<T>())?
        .checked_add(prefix::<T>())?;
    Layout::from_size_align(bytes, prefix::<T>()).ok()
}

/// The elements a block of `usable` bytes holds.
#[inline]
fn capacity_in<T>(usable: usize) -> usize {
    (usable - prefix::<T>()) / size_of::<T>()
}

/// The block a buffer's first element lies in.
#[inline(always)]
fn block_of<T>(elements: NonNull<T>) -> NonNull<u8> {
    // SAFETY: the buffer's block starts `prefix` bytes before its first element (it was
    // allocated so), inside the same allocation.
    unsafe { elements.cast::<u8>().sub(prefix::<T>()) }
}

/// A new buffer for at least `cap` elements (of non-zero size) owned by the container
/// whose pointer is at `owner`: its first element and its real capacity.
#[inline]
pub(crate) fn allocate<T>(
    alloc: &SegmentAllocator<'_>,
    cap: usize,
    owner: *const u8,
) -> Result<(NonNull<T>, usize), AllocError> {
    let layout = layout::<T>(cap).ok_or_else(AllocError::capacity_overflow)?;
    let block = alloc.allocate(layout)?;
    let start = block.cast::<u8>();
    // SAFETY: a fresh block of a writable mapping, aligned to at least 8, ours, with room
    // for the tag (`prefix` bytes) before the elements.
    unsafe { set_owner(start, owner) };
    // SAFETY: `prefix < layout.size() <= block.len()`: inside the block.
    let elements = unsafe { start.add(prefix::<T>()) }.cast::<T>();
    Ok((elements, capacity_in::<T>(block.len())))
}

/// Grows the buffer at `elements` (capacity `cap`) in place to at least `new_cap`; its new
/// capacity, or `NoRoomInPlace` with the buffer unchanged.
///
/// # Safety
/// The buffer came from [`allocate`] in `alloc`'s mapping, with capacity `cap`, and its
/// container (the caller) owns it.
#[inline]
pub(crate) unsafe fn grow_in_place<T>(
    alloc: &SegmentAllocator<'_>,
    elements: NonNull<T>,
    cap: usize,
    new_cap: usize,
) -> Result<usize, AllocError> {
    let old = layout::<T>(cap).ok_or_else(AllocError::capacity_overflow)?;
    let new = layout::<T>(new_cap).ok_or_else(AllocError::capacity_overflow)?;
    // SAFETY: forwarded contract.
    let usable = unsafe { alloc.grow_in_place(block_of(elements), old, new.size()) }?;
    Ok(capacity_in::<T>(usable))
}

/// Gives back the room of the buffer at `elements` (capacity `cap`) beyond `new_cap`
/// elements, in place; its new capacity (at least `new_cap`).
///
/// # Safety
/// As for [`grow_in_place`], and nothing past `new_cap` is used any more.
#[inline]
pub(crate) unsafe fn shrink_in_place<T>(
    alloc: &SegmentAllocator<'_>,
    elements: NonNull<T>,
    cap: usize,
    new_cap: usize,
) -> Result<usize, AllocError> {
    let old = layout::<T>(cap).ok_or_else(AllocError::capacity_overflow)?;
    let new = layout::<T>(new_cap).ok_or_else(AllocError::capacity_overflow)?;
    // SAFETY: forwarded contract.
    let usable = unsafe { alloc.shrink_in_place(block_of(elements), old, new.size()) }?;
    Ok(capacity_in::<T>(usable))
}

/// Frees the buffer at `elements` (capacity `cap`). A failure means a corrupted segment,
/// which its next allocation reports; the block leaks.
///
/// # Safety
/// As for [`grow_in_place`]; no element in it is counted any more, and nothing uses it
/// afterwards.
#[inline]
pub(crate) unsafe fn free<T>(alloc: &SegmentAllocator<'_>, elements: NonNull<T>, cap: usize) {
    let layout = layout::<T>(cap).unwrap_or(Layout::new::<u64>());
    // SAFETY: forwarded contract.
    let _ = unsafe { alloc.deallocate(block_of(elements), layout) };
}

/// Records that the container whose pointer is now at `owner` owns the buffer at
/// `elements` (after the container moved).
///
/// # Safety
/// As for [`grow_in_place`], in a writable mapping.
#[inline]
pub(crate) unsafe fn moved_to<T>(elements: NonNull<T>, owner: *const u8) {
    // SAFETY: the buffer's block, reserved for the tag at its start (`allocate`).
    unsafe { set_owner(block_of(elements), owner) };
}

/// Checks a buffer pointer of a container from elsewhere, for `cap > 0` elements of
/// non-zero size: a buffer of its own (see the module docs), or in a read-only mapping
/// one that lies inside the mapping, aligned.
pub(crate) fn check<T>(ptr: &OffsetPtr<T>, cap: u64) -> Result<(), Invalid> {
    let layout = usize::try_from(cap)
        .ok()
        .and_then(layout::<T>)
        .ok_or_else(|| Invalid::new("a capacity whose buffer fits in memory"))?;
    let elements = ptr.get();
    let block = elements.cast::<u8>().wrapping_sub(prefix::<T>());
    check_owned(block, (ptr as *const OffsetPtr<T>).cast(), layout.size())?;
    match elements.addr() % align_of::<T>() {
        0 => Ok(()),
        _ => Err(Invalid::new("a buffer aligned for its elements")),
    }
}
