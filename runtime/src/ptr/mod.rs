//! Self-relative pointers, and moving values that hold them.
//!
//! [`OffsetPtr`] is the segment's pointer type (Boost's `offset_ptr`). A value holding one is
//! position-dependent: library code that must move such values (a `Vec` that reallocates, a
//! tree node that splits) moves them with [`relocate_value`] / [`relocate_values`], which copy
//! the bytes and then run the [`ShmSafe::relocate`] hook on the copy.

mod offset_ptr;

pub use offset_ptr::OffsetPtr;

use crate::layout::ShmSafe;

/// Moves one value from `src` to `dst`: a byte copy, then the relocation hook on the copy.
///
/// # Safety
///
/// `src` must be valid for reads and `dst` for writes of one `T`, both aligned, and the two must
/// not overlap. Afterwards the value lives at `dst`; the bytes at `src` are a moved-from husk
/// that must not be used or dropped.
#[inline]
pub unsafe fn relocate_value<T: ShmSafe>(dst: *mut T, src: *const T) {
    // SAFETY: the caller guarantees both pointers are valid, aligned and disjoint.
    unsafe { core::ptr::copy_nonoverlapping(src, dst, 1) };
    // SAFETY: `dst` now holds exactly the bytes that were at `src`, which is what `relocate`
    // requires; it is valid and aligned (caller) and nothing read its pointers in between.
    unsafe { (*dst).relocate(src.addr()) };
}

/// Moves `count` consecutive values from `src` to `dst`, which may overlap (as when a `Vec`
/// shifts elements to insert or remove): a `memmove`, then the relocation hook on each copy.
/// For plain data the loop is empty and compiles to the `memmove` alone.
///
/// # Safety
///
/// `src` must be valid for reads and `dst` for writes of `count` values of `T`, both aligned.
/// Afterwards the values live at `dst`; the bytes of `src` that `dst` does not cover are
/// moved-from husks that must not be used or dropped.
#[inline]
pub unsafe fn relocate_values<T: ShmSafe>(dst: *mut T, src: *const T, count: usize) {
    // SAFETY: the caller guarantees both ranges are valid and aligned; `copy` allows overlap.
    unsafe { core::ptr::copy(src, dst, count) };
    for i in 0..count {
        // SAFETY: `i < count`, so `dst.add(i)` is in the range the caller made valid; it holds
        // the bytes that were at `src + i` (the hook reads no old bytes, only the address), and
        // each element is relocated exactly once.
        unsafe { (*dst.add(i)).relocate(src.wrapping_add(i).addr()) };
    }
}
