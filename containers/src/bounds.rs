//! Ranges of indices, as std's slicing methods take them, resolved against a length
//! without panicking.

use core::ops::{Bound, Range, RangeBounds};

/// `range` as indices of a sequence of `len` elements; None when it reaches past the end
/// or runs backwards (where std panics).
pub(crate) fn resolve(range: impl RangeBounds<usize>, len: usize) -> Option<Range<usize>> {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1)?,
        Bound::Excluded(&e) => e,
        Bound::Unbounded => len,
    };
    (start <= end && end <= len).then_some(start..end)
}
