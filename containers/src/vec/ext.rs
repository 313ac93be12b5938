//! [`VecExt`], the mutating methods of [`Vec`] on whatever gives in-place access to one,
//! and what they return: [`InsertError`], [`IterMut`], [`VecWriter`] (and
//! [`VecCursor`](crate::VecCursor), with the crate's other I/O in [`io`](crate::io)).

use core::cmp::Ordering;
use core::fmt;
use core::ops::RangeBounds;
use std::io;

use shmkit_runtime::{AllocError, Error, PositionIndependent, ShmDerefMut, ShmMut, ShmSafe};

use super::drain::Drain;
use super::raw::InPlace;
use super::Vec;
use crate::emplace::Emplace;
use crate::io::{out_of_memory, VecCursor};

/// The mutating methods of the segment [`Vec`], with std's names and semantics, on
/// anything that gives in-place access to one: a [`ShmMut`] (from `root_mut`, `find_mut`
/// or a derived accessor such as `db.items_mut()`) and the guards of shmkit's locks
/// (`db.items.lock()?`). Brought in by `use shmkit::prelude::*`.
///
/// Where std panics, these return an error or `None`: allocation failure is an
/// [`AllocError`] that leaves the vector exactly as it was; an index out of bounds is
/// `None` or [`InsertError::OutOfBounds`]. A position-dependent element (one holding an
/// offset pointer, or a nested `Vec`) is never returned by value: it is handed to a
/// closure in place (`pop_with`, `remove_with`) and dropped there.
///
/// ```
/// use shmkit_containers::{Vec, VecExt};
/// use shmkit_runtime::ManagedHeapMemory;
///
/// let mut seg = ManagedHeapMemory::new(1 << 16)?;
/// seg.construct("rows", Vec::<Vec<u32>>::new())?;
/// let mut rows = seg.find_mut::<Vec<Vec<u32>>>("rows")?.expect("constructed above");
/// rows.push(Vec::new())?; // empty by value, filled in place:
/// rows.last_mut().expect("pushed").extend_from_slice(&[1, 2, 3])?;
/// assert_eq!(rows[0], [1, 2, 3]);
/// let sum = rows.pop_with(|row| row.iter().sum::<u32>()); // dropped in place afterwards
/// assert_eq!((sum, rows.len()), (Some(6), 0));
/// # Ok::<(), shmkit_runtime::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` gives no in-place access to a segment `Vec<{T}>`",
    label = "not a guard of a `Vec<{T}>` in place",
    note = "lock the vector's Mutex (`db.items.lock()?.push(x)?`), or reach it through `root_mut`/`find_mut` of an exclusive mapping and the accessors #[derive(ShmSafe)] generates (`db.items_mut().push(x)?`)"
)]
pub trait VecExt<T: ShmSafe>: ShmDerefMut<Target = Vec<T>> {
    /// Appends a value built from `src`: the value itself, or any source the element type
    /// is [`Emplace`]d from (`names.push("ada")` for a `Vec<String>`).
    fn push<S>(&mut self, src: S) -> Result<(), AllocError>
    where
        T: Emplace<S>;

    /// Removes and returns the last element; None when empty.
    fn pop(&mut self) -> Option<T>
    where
        T: PositionIndependent;

    /// Hands the last element to `f` in place, then drops it there; None (and `f` not
    /// called) when empty. What `pop` is for position-dependent elements.
    fn pop_with<R>(&mut self, f: impl FnOnce(ShmMut<'_, T>) -> R) -> Option<R>;

    /// Inserts a value built from `src` at `index`, shifting the elements after it up;
    /// [`InsertError::OutOfBounds`] when `index > len`.
    fn insert<S>(&mut self, index: usize, src: S) -> Result<(), InsertError>
    where
        T: Emplace<S>;

    /// Removes and returns element `index`, shifting the rest down; None when out of bounds.
    fn remove(&mut self, index: usize) -> Option<T>
    where
        T: PositionIndependent;

    /// Hands element `index` to `f` in place, then drops it and shifts the rest down; None
    /// (and `f` not called) when out of bounds.
    fn remove_with<R>(&mut self, index: usize, f: impl FnOnce(ShmMut<'_, T>) -> R) -> Option<R>;

    /// Removes and returns element `index`, moving the last element into its place (O(1));
    /// None when out of bounds.
    fn swap_remove(&mut self, index: usize) -> Option<T>
    where
        T: PositionIndependent;

    /// Removes the elements of `range` and returns them by value, front to back (plain
    /// data only); the elements after it move down when the iterator is dropped, which
    /// drops the removed ones not taken. None when the range reaches past the length or
    /// runs backwards (where std panics). Forgetting the iterator (`mem::forget`) leaks
    /// the range and what follows it: the vector then ends where the range started.
    fn drain<R: RangeBounds<usize>>(&mut self, range: R) -> Option<Drain<'_, T>>
    where
        T: PositionIndependent;

    /// Drops the elements from `len` on (nothing when there are not more).
    fn truncate(&mut self, len: usize);

    /// Drops every element; the capacity stays.
    fn clear(&mut self);

    /// Makes room for at least `additional` more elements (growing amortised, in place
    /// where the segment has room right after the buffer).
    fn reserve(&mut self, additional: usize) -> Result<(), AllocError>;

    /// Gives the capacity beyond the length back to the segment (in place).
    fn shrink_to_fit(&mut self) -> Result<(), AllocError>;

    /// Appends clones of `other`'s elements; on error none is appended.
    fn extend_from_slice(&mut self, other: &[T]) -> Result<(), AllocError>
    where
        T: PositionIndependent + Clone;

    /// Appends a value built from every item of `iter` (values, or sources the element
    /// type is [`Emplace`]d from); on error the items appended so far are dropped again.
    fn extend<I>(&mut self, iter: I) -> Result<(), AllocError>
    where
        I: IntoIterator,
        T: Emplace<I::Item>;

    /// Keeps only the elements `f` says yes to, in order, dropping the others in place.
    fn retain(&mut self, f: impl FnMut(&T) -> bool);

    /// Drops each element for which `same(element, previous_kept)` says it repeats the
    /// one kept before it.
    fn dedup_by(&mut self, same: impl FnMut(&T, &T) -> bool);

    /// Drops consecutive repeated elements.
    fn dedup(&mut self)
    where
        T: PartialEq;

    /// Sorts the elements (stable). Plain data only: a sort moves elements through
    /// temporaries, which position-dependent ones cannot survive.
    fn sort(&mut self)
    where
        T: PositionIndependent + Ord;

    /// Sorts the elements with `compare` (stable); plain data only, as [`sort`](Self::sort).
    fn sort_by(&mut self, compare: impl FnMut(&T, &T) -> Ordering)
    where
        T: PositionIndependent;

    /// The elements as a mutable slice: plain data may be swapped, sorted, filled freely.
    fn as_mut_slice(&mut self) -> &mut [T]
    where
        T: PositionIndependent;

    /// The guard of element `index`, None when out of bounds: std's `get_mut`, whose name
    /// is taken on a guard by [`ShmMut::get_mut`] (the `&mut` of plain data). Plain data
    /// derefs mutably: `*v.element_mut(0).unwrap() += 1`.
    fn element_mut(&mut self, index: usize) -> Option<ShmMut<'_, T>>;

    /// The guard of the first element, None when empty.
    fn first_mut(&mut self) -> Option<ShmMut<'_, T>>;

    /// The guard of the last element, None when empty.
    fn last_mut(&mut self) -> Option<ShmMut<'_, T>>;

    /// Guards of every element, in order.
    fn iter_mut(&mut self) -> IterMut<'_, T>;

    /// An [`io::Write`] that appends to a `Vec<u8>`.
    fn writer(&mut self) -> VecWriter<'_>
    where
        T: Byte;

    /// An [`io::Read`], [`io::Write`] and [`io::Seek`] over a `Vec<u8>`, starting at its
    /// first byte: std's `io::Cursor<&mut Vec<u8>>` in place ([`VecCursor`]).
    fn cursor(&mut self) -> VecCursor<'_>
    where
        T: Byte;
}

/// The vector behind a guard, for its in-place algorithms.
#[inline(always)]
fn in_place<T, P: ShmDerefMut<Target = Vec<T>> + ?Sized>(p: &mut P) -> InPlace<'_, T> {
    // SAFETY: only the vector's own algorithms (in `raw`) use the reference; they change
    // the vector in place and never move it.
    InPlace(unsafe { p.as_shm_mut().get_unchecked_mut() })
}

impl<T: ShmSafe, P: ShmDerefMut<Target = Vec<T>> + ?Sized> VecExt<T> for P {
    #[inline]
    fn push<S>(&mut self, src: S) -> Result<(), AllocError>
    where
        T: Emplace<S>,
    {
        in_place(self).push(src)
    }

    #[inline]
    fn pop(&mut self) -> Option<T>
    where
        T: PositionIndependent,
    {
        in_place(self).pop()
    }

    fn pop_with<R>(&mut self, f: impl FnOnce(ShmMut<'_, T>) -> R) -> Option<R> {
        in_place(self).pop_with(f)
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

    fn swap_remove(&mut self, index: usize) -> Option<T>
    where
        T: PositionIndependent,
    {
        in_place(self).swap_remove(index)
    }

    fn drain<R: RangeBounds<usize>>(&mut self, range: R) -> Option<Drain<'_, T>>
    where
        T: PositionIndependent,
    {
        // One `as_shm_mut` decides: the range is checked against the vector it drains.
        let vec = in_place(self).0;
        let range = crate::bounds::resolve(range, vec.len())?;
        Some(Drain::new(vec, range))
    }

    fn truncate(&mut self, len: usize) {
        in_place(self).truncate(len);
    }

    fn clear(&mut self) {
        in_place(self).truncate(0);
    }

    fn reserve(&mut self, additional: usize) -> Result<(), AllocError> {
        in_place(self).reserve(additional)
    }

    fn shrink_to_fit(&mut self) -> Result<(), AllocError> {
        in_place(self).shrink_to_fit()
    }

    fn extend_from_slice(&mut self, other: &[T]) -> Result<(), AllocError>
    where
        T: PositionIndependent + Clone,
    {
        in_place(self).extend_from_slice(other)
    }

    fn extend<I>(&mut self, iter: I) -> Result<(), AllocError>
    where
        I: IntoIterator,
        T: Emplace<I::Item>,
    {
        in_place(self).extend(iter)
    }

    fn retain(&mut self, mut f: impl FnMut(&T) -> bool) {
        in_place(self).compact(|_, x| f(x));
    }

    fn dedup_by(&mut self, mut same: impl FnMut(&T, &T) -> bool) {
        in_place(self).compact(|prev, x| prev.is_none_or(|p| !same(x, p)));
    }

    fn dedup(&mut self)
    where
        T: PartialEq,
    {
        self.dedup_by(|a, b| a == b);
    }

    fn sort(&mut self)
    where
        T: PositionIndependent + Ord,
    {
        in_place(self).elements_mut().sort();
    }

    fn sort_by(&mut self, compare: impl FnMut(&T, &T) -> Ordering)
    where
        T: PositionIndependent,
    {
        in_place(self).elements_mut().sort_by(compare);
    }

    fn as_mut_slice(&mut self) -> &mut [T]
    where
        T: PositionIndependent,
    {
        in_place(self).elements_mut()
    }

    fn element_mut(&mut self, index: usize) -> Option<ShmMut<'_, T>> {
        in_place(self).element_mut(index)
    }

    fn first_mut(&mut self) -> Option<ShmMut<'_, T>> {
        in_place(self).element_mut(0)
    }

    fn last_mut(&mut self) -> Option<ShmMut<'_, T>> {
        // The length of the vector behind the guard, not of what `Deref` shows.
        let v = in_place(self);
        let last = v.len().checked_sub(1)?;
        v.element_mut(last)
    }

    fn iter_mut(&mut self) -> IterMut<'_, T> {
        IterMut(in_place(self).elements_mut().iter_mut())
    }

    fn writer(&mut self) -> VecWriter<'_>
    where
        T: Byte,
    {
        VecWriter {
            vec: T::bytes(self.as_shm_mut()),
        }
    }

    fn cursor(&mut self) -> VecCursor<'_>
    where
        T: Byte,
    {
        VecCursor::new(T::bytes(self.as_shm_mut()))
    }
}

/// The guards of a vector's elements, in order ([`VecExt::iter_mut`]).
pub struct IterMut<'a, T>(core::slice::IterMut<'a, T>);

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

/// `u8`, the element type of the vectors [`VecExt::writer`] and [`VecExt::cursor`] write
/// to.
pub trait Byte: ShmSafe + 'static + sealed::Sealed {
    /// The vector as the `Vec<u8>` it is.
    fn bytes(vec: ShmMut<'_, Vec<Self>>) -> ShmMut<'_, Vec<u8>>;
}

impl Byte for u8 {
    fn bytes(vec: ShmMut<'_, Vec<u8>>) -> ShmMut<'_, Vec<u8>> {
        vec
    }
}

mod sealed {
    /// Only `u8` is a [`Byte`](super::Byte).
    pub trait Sealed {}
    impl Sealed for u8 {}
}

/// Appends what is written to a segment `Vec<u8>` ([`VecExt::writer`]); a full segment
/// is [`io::ErrorKind::OutOfMemory`] with the [`AllocError`] inside, and nothing of that
/// write is appended.
pub struct VecWriter<'a> {
    vec: ShmMut<'a, Vec<u8>>,
}

impl io::Write for VecWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.vec.extend_from_slice(buf).map_err(out_of_memory)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why [`VecExt::insert`] inserted nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertError {
    /// The index is past the end.
    OutOfBounds {
        /// The index asked for.
        index: usize,
        /// The vector's length.
        len: usize,
    },
    /// The segment has no room for a larger buffer.
    Alloc(AllocError),
}

impl From<AllocError> for InsertError {
    fn from(e: AllocError) -> Self {
        InsertError::Alloc(e)
    }
}

impl fmt::Display for InsertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InsertError::OutOfBounds { index, len } => {
                write!(
                    f,
                    "insertion index {index} is past the end of a Vec of {len} elements"
                )
            }
            InsertError::Alloc(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for InsertError {}

impl From<InsertError> for Error {
    fn from(e: InsertError) -> Error {
        match e {
            InsertError::OutOfBounds { index, len } => Error::IndexOutOfBounds { index, len },
            InsertError::Alloc(e) => e.into(),
        }
    }
}
