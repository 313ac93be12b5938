//! [`DequeExt`], the mutating methods of [`Deque`] on whatever gives in-place access to
//! one, and [`IterMut`].

use shmkit_runtime::{AllocError, PositionIndependent, ShmDerefMut, ShmMut, ShmSafe};

use super::raw::InPlace;
use super::{Deque, Halves};
use crate::emplace::Emplace;
use crate::vec::InsertError;

/// The mutating methods of the segment [`Deque`], with std's names and semantics, on
/// anything that gives in-place access to one: a [`ShmMut`] (from `root_mut`, `find_mut`
/// or a derived accessor) and the guards of shmkit's locks. Brought in by
/// `use shmkit::prelude::*`.
///
/// Where std panics, these return an error or `None`: allocation failure is an
/// [`AllocError`] that leaves the deque exactly as it was. A position-dependent element
/// is never returned by value: `pop_front_with`/`pop_back_with` hand it to a closure in
/// place and drop it there.
///
/// ```
/// use shmkit_containers::{Deque, DequeExt, Vec, VecExt};
/// use shmkit_runtime::ManagedHeapMemory;
///
/// let mut seg = ManagedHeapMemory::new(1 << 16)?;
/// seg.construct("rows", Deque::<Vec<u32>>::new())?;
/// let mut rows = seg.find_mut::<Deque<Vec<u32>>>("rows")?.expect("constructed above");
/// rows.push_back(1..4)?; // a `Vec<u32>` built in its slot
/// rows.push_front([7, 8])?;
/// rows.back_mut().expect("pushed").push(4)?;
/// assert_eq!(rows.pop_front_with(|row| row.len()), Some(2));
/// assert_eq!(rows[0], [1, 2, 3, 4]);
/// # Ok::<(), shmkit_runtime::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` gives no in-place access to a segment `Deque<{T}>`",
    label = "not a guard of a `Deque<{T}>` in place",
    note = "lock the deque's Mutex (`db.jobs.lock()?.push_back(x)?`), or reach it through `root_mut`/`find_mut` of an exclusive mapping and the accessors #[derive(ShmSafe)] generates"
)]
pub trait DequeExt<T: ShmSafe>: ShmDerefMut<Target = Deque<T>> {
    /// Appends a value built from `src`: the value itself, or any source the element type
    /// is [`Emplace`]d from.
    fn push_back<S>(&mut self, src: S) -> Result<(), AllocError>
    where
        T: Emplace<S>;

    /// Prepends a value built from `src`.
    fn push_front<S>(&mut self, src: S) -> Result<(), AllocError>
    where
        T: Emplace<S>;

    /// Removes and returns the first element; None when empty.
    fn pop_front(&mut self) -> Option<T>
    where
        T: PositionIndependent;

    /// Removes and returns the last element; None when empty.
    fn pop_back(&mut self) -> Option<T>
    where
        T: PositionIndependent;

    /// Hands the first element to `f` in place, then drops it there; None (and `f` not
    /// called) when empty. What `pop_front` is for position-dependent elements.
    fn pop_front_with<R>(&mut self, f: impl FnOnce(ShmMut<'_, T>) -> R) -> Option<R>;

    /// Hands the last element to `f` in place, then drops it there.
    fn pop_back_with<R>(&mut self, f: impl FnOnce(ShmMut<'_, T>) -> R) -> Option<R>;

    /// Inserts a value built from `src` at `index`, the elements from there on moving one
    /// place toward the back; [`InsertError::OutOfBounds`] when `index > len` (where std
    /// panics). On error the deque is as it was.
    fn insert<S>(&mut self, index: usize, src: S) -> Result<(), InsertError>
    where
        T: Emplace<S>;

    /// Removes and returns element `index`, the elements after it moving one place toward
    /// the front; None when out of bounds. Plain elements only: for others,
    /// [`remove_with`](Self::remove_with).
    fn remove(&mut self, index: usize) -> Option<T>
    where
        T: PositionIndependent;

    /// Hands element `index` to `f` in place, then drops it there and closes the gap;
    /// None (and `f` not called) when out of bounds.
    fn remove_with<R>(&mut self, index: usize, f: impl FnOnce(ShmMut<'_, T>) -> R) -> Option<R>;

    /// The guard of element `index`, None when out of bounds: std's `get_mut`, whose name
    /// is taken on a guard by [`ShmMut::get_mut`]. Plain data derefs mutably.
    fn element_mut(&mut self, index: usize) -> Option<ShmMut<'_, T>>;

    /// The guard of the first element, None when empty.
    fn front_mut(&mut self) -> Option<ShmMut<'_, T>>;

    /// The guard of the last element, None when empty.
    fn back_mut(&mut self) -> Option<ShmMut<'_, T>>;

    /// Guards of every element, front to back (double-ended).
    fn iter_mut(&mut self) -> IterMut<'_, T>;

    /// The elements as two mutable slices of plain data, front to back (see
    /// [`Deque::as_slices`]).
    fn as_mut_slices(&mut self) -> (&mut [T], &mut [T])
    where
        T: PositionIndependent;

    /// Moves the elements so that they are one run of the buffer (relocating each moved
    /// one), and returns them: a slice guard, `&mut [T]` for plain data
    /// (`get_mut_slice()`). Allocates nothing.
    fn make_contiguous(&mut self) -> ShmMut<'_, [T]>;

    /// Drops the elements from `len` on (nothing when there are not more).
    fn truncate(&mut self, len: usize);

    /// Drops every element; the capacity stays.
    fn clear(&mut self);

    /// Makes room for at least `additional` more elements (at least doubling, in place
    /// where the segment has room right after the buffer).
    fn reserve(&mut self, additional: usize) -> Result<(), AllocError>;

    /// Gives the capacity beyond the length back to the segment, in place (the elements
    /// move to the start of the buffer first).
    fn shrink_to_fit(&mut self) -> Result<(), AllocError>;

    /// Keeps only the elements `f` says yes to, in order, dropping the others in place.
    fn retain(&mut self, f: impl FnMut(&T) -> bool);

    /// Appends a value built from every item of `iter`; on error the items appended so far
    /// are dropped again.
    fn extend<I>(&mut self, iter: I) -> Result<(), AllocError>
    where
        I: IntoIterator,
        T: Emplace<I::Item>;
}

/// The deque behind a guard, for its in-place algorithms.
#[inline(always)]
fn in_place<T, P: ShmDerefMut<Target = Deque<T>> + ?Sized>(p: &mut P) -> InPlace<'_, T> {
    // SAFETY: only the deque's own algorithms (in `raw`) use the reference; they change
    // the deque in place and never move it.
    InPlace(unsafe { p.as_shm_mut().get_unchecked_mut() })
}

impl<T: ShmSafe, P: ShmDerefMut<Target = Deque<T>> + ?Sized> DequeExt<T> for P {
    #[inline]
    fn push_back<S>(&mut self, src: S) -> Result<(), AllocError>
    where
        T: Emplace<S>,
    {
        in_place(self).push_back(src)
    }

    fn push_front<S>(&mut self, src: S) -> Result<(), AllocError>
    where
        T: Emplace<S>,
    {
        in_place(self).push_front(src)
    }

    fn pop_front(&mut self) -> Option<T>
    where
        T: PositionIndependent,
    {
        in_place(self).pop_front()
    }

    fn pop_back(&mut self) -> Option<T>
    where
        T: PositionIndependent,
    {
        in_place(self).pop_back()
    }

    fn pop_front_with<R>(&mut self, f: impl FnOnce(ShmMut<'_, T>) -> R) -> Option<R> {
        in_place(self).pop_front_with(f)
    }

    fn pop_back_with<R>(&mut self, f: impl FnOnce(ShmMut<'_, T>) -> R) -> Option<R> {
        in_place(self).pop_back_with(f)
    }

    fn insert<S>(&mut self, index: usize, src: S) -> Result<(), InsertError>
    where
        T: Emplace<S>,
    {
        in_place(self).insert(index, src)
    }

    fn remove(&mut self, index: usize) -> Option<T>
    where
        T: PositionIndependent,
    {
        in_place(self).remove(index)
    }

    fn remove_with<R>(&mut self, index: usize, f: impl FnOnce(ShmMut<'_, T>) -> R) -> Option<R> {
        in_place(self).remove_with(index, f)
    }

    fn element_mut(&mut self, index: usize) -> Option<ShmMut<'_, T>> {
        in_place(self).element_mut(index)
    }

    fn front_mut(&mut self) -> Option<ShmMut<'_, T>> {
        in_place(self).element_mut(0)
    }

    fn back_mut(&mut self) -> Option<ShmMut<'_, T>> {
        // The length of the deque behind the guard, not of what `Deref` shows.
        let d = in_place(self);
        let last = d.len().checked_sub(1)?;
        d.element_mut(last)
    }

    fn iter_mut(&mut self) -> IterMut<'_, T> {
        let (a, b) = in_place(self).slices_mut();
        IterMut(Halves(a.iter_mut(), b.iter_mut()))
    }

    fn as_mut_slices(&mut self) -> (&mut [T], &mut [T])
    where
        T: PositionIndependent,
    {
        in_place(self).slices_mut()
    }

    fn make_contiguous(&mut self) -> ShmMut<'_, [T]> {
        in_place(self).make_contiguous()
    }

    fn truncate(&mut self, len: usize) {
        in_place(self).truncate(len);
    }

    fn clear(&mut self) {
        in_place(self).clear();
    }

    fn reserve(&mut self, additional: usize) -> Result<(), AllocError> {
        in_place(self).reserve(additional)
    }

    fn shrink_to_fit(&mut self) -> Result<(), AllocError> {
        in_place(self).shrink_to_fit()
    }

    fn retain(&mut self, f: impl FnMut(&T) -> bool) {
        in_place(self).retain(f);
    }

    fn extend<I>(&mut self, iter: I) -> Result<(), AllocError>
    where
        I: IntoIterator,
        T: Emplace<I::Item>,
    {
        in_place(self).extend(iter)
    }
}

/// The guards of a deque's elements, front to back or back to front
/// ([`DequeExt::iter_mut`]).
pub struct IterMut<'a, T>(Halves<core::slice::IterMut<'a, T>>);

impl<'a, T> Iterator for IterMut<'a, T> {
    type Item = ShmMut<'a, T>;

    #[inline]
    fn next(&mut self) -> Option<ShmMut<'a, T>> {
        // SAFETY: an element in place, handed out once; the guard moves nothing.
        self.0.next().map(|e| unsafe { ShmMut::new(e) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<T> DoubleEndedIterator for IterMut<'_, T> {
    fn next_back(&mut self) -> Option<Self::Item> {
        // SAFETY: as in `next`.
        self.0.next_back().map(|e| unsafe { ShmMut::new(e) })
    }
}

impl<T> ExactSizeIterator for IterMut<'_, T> {}

impl<T> core::iter::FusedIterator for IterMut<'_, T> {}
