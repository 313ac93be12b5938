//! [`Drain`]: the elements of a range of a [`Vec`] taken out by value ([`VecExt::drain`]).
//!
//! Crash order, as std's: the length goes down to the range's start first, so the removed
//! elements and the tail after them have no owner while the iterator lives (a crash, or
//! a `mem::forget` of the iterator, leaks them); when it is dropped, the elements not
//! taken are dropped in place, the tail moves down and the length counts it again.
//!
//! [`VecExt::drain`]: super::VecExt::drain

use core::fmt;
use core::iter::FusedIterator;
use core::ops::Range;

use shmkit_runtime::{relocate_values, PositionIndependent, ShmSafe};

use super::Vec;
use crate::crash::crashing;

/// The removed elements of a vector, by value, front to back ([`VecExt::drain`]).
///
/// [`VecExt::drain`]: super::VecExt::drain
pub struct Drain<'a, T: ShmSafe + PositionIndependent> {
    vec: &'a mut Vec<T>,
    data: *mut T,
    /// Where the range started (the length meanwhile).
    start: usize,
    /// The elements `front..back` are still to be taken.
    front: usize,
    back: usize,
    /// The elements `range_end..range_end + tail` come after the range.
    range_end: usize,
    tail: usize,
}

impl<'a, T: ShmSafe + PositionIndependent> Drain<'a, T> {
    /// Takes `range` (within the length) out of `vec`: nothing counts it or the tail
    /// from here on.
    pub(super) fn new(vec: &'a mut Vec<T>, range: Range<usize>) -> Self {
        let (len, data) = (vec.len(), vec.data());
        vec.disown_from(range.start);
        Drain {
            vec,
            data,
            start: range.start,
            front: range.start,
            back: range.end,
            range_end: range.end,
            tail: len - range.end,
        }
    }

    /// The elements not taken yet.
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: elements `front..back` are initialised, owned by this iterator, and
        // borrowed with it.
        unsafe { core::slice::from_raw_parts(self.data.add(self.front), self.back - self.front) }
    }
}

impl<T: ShmSafe + PositionIndependent> Iterator for Drain<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.front == self.back {
            return None;
        }
        self.front += 1;
        // SAFETY: an initialised element nobody else counts, taken once (the front moved
        // past it); plain data, so the copy is the value.
        Some(unsafe { self.data.add(self.front - 1).read() })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }
}

impl<T: ShmSafe + PositionIndependent> DoubleEndedIterator for Drain<'_, T> {
    fn next_back(&mut self) -> Option<T> {
        if self.front == self.back {
            return None;
        }
        self.back -= 1;
        // SAFETY: as in `next`, from the back.
        Some(unsafe { self.data.add(self.back).read() })
    }
}

impl<T: ShmSafe + PositionIndependent> ExactSizeIterator for Drain<'_, T> {}

impl<T: ShmSafe + PositionIndependent> FusedIterator for Drain<'_, T> {}

impl<T: ShmSafe + PositionIndependent + fmt::Debug> fmt::Debug for Drain<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Drain").field(&self.as_slice()).finish()
    }
}

impl<T: ShmSafe + PositionIndependent> Drop for Drain<'_, T> {
    fn drop(&mut self) {
        if crashing() {
            return; // A killed process moves nothing: the range and the tail leak.
        }
        /// Moves the tail down and counts it, also when dropping an element panics.
        struct CloseGap<'d, 'a, T: ShmSafe + PositionIndependent>(&'d mut Drain<'a, T>);
        impl<T: ShmSafe + PositionIndependent> Drop for CloseGap<'_, '_, T> {
            fn drop(&mut self) {
                let d = &mut *self.0;
                if d.tail > 0 && d.range_end != d.start {
                    // SAFETY: the tail is initialised and nobody counts it; the slots from
                    // `start` on hold nothing live (the range is taken or dropped).
                    unsafe {
                        relocate_values(d.data.add(d.start), d.data.add(d.range_end), d.tail)
                    };
                }
                d.vec.publish_len(d.start + d.tail);
            }
        }
        let gap = CloseGap(self);
        let d = &mut *gap.0;
        let rest =
            core::ptr::slice_from_raw_parts_mut(d.data.wrapping_add(d.front), d.back - d.front);
        d.front = d.back;
        // SAFETY: the elements not taken, which nobody counts, dropped once (counted as
        // taken first); a panicking drop still drops the others, as a slice's does.
        unsafe { rest.drop_in_place() };
    }
}
