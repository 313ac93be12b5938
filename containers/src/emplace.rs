//! [`Emplace`]: building a value at its final place in a segment from a source that is not
//! the value itself (a `&str` for a [`String`](crate::String), an iterator for a
//! [`Vec`]), which is how position-dependent elements get contents: by value they are
//! only ever empty.
//!
//! Every container's inserting methods take sources (`names.push("ada")?`,
//! `map.insert("key", 5)?`): a value is a source of itself, so plain data reads as in std.

use core::marker::PhantomData;
use core::ptr::NonNull;

use shmkit_runtime::{AllocError, ShmMut, ShmSafe};

use crate::vec::{Vec, VecExt};

/// A type that can be built in place from a `Src`.
///
/// Implemented for every `T` from a `T` (a value by value is empty if position-dependent,
/// so it may be written anywhere), for [`Vec<T>`] from any iterable of sources of `T`
/// (`&[T]`, `[&str; 3]`, a std `Vec`, a `Range`, another segment `&Vec<T>`), for
/// `T: Clone` from `&T`, and by each container for its natural sources. A derived struct
/// can implement it for its own source type: write an empty value to the slot, then fill
/// it through the returned guard.
///
/// ```
/// use shmkit_containers::{Vec, VecExt};
/// use shmkit_runtime::ManagedHeapMemory;
///
/// let mut seg = ManagedHeapMemory::new(1 << 16)?;
/// seg.construct("rows", Vec::<Vec<u32>>::new())?;
/// let mut rows = seg.find_mut::<Vec<Vec<u32>>>("rows")?.expect("constructed above");
/// rows.push(1..4)?; // a `Vec<u32>` built in place from a range
/// rows.push(&[7, 8][..])?; // and from a slice
/// rows.push(Vec::new())?; // an empty one by value
/// assert_eq!(rows[..], [&[1, 2, 3][..], &[7, 8], &[]]);
/// # Ok::<(), shmkit_runtime::Error>(())
/// ```
///
/// A derived type implements it by writing an empty value and filling it in place (the
/// whole program is the facade's `tests/derive.rs`, type `Row`):
///
/// ```text
/// impl<'s> Emplace<&'s [u32]> for Row {
///     fn emplace<'a>(slot: Slot<'a, Self>, cells: &'s [u32]) -> Result<Filled<'a, Self>, AllocError> {
///         let sum = cells.iter().map(|&c| u64::from(c)).sum();
///         let mut row = slot.write(Row { sum, cells: Vec::new() });
///         row.as_mut().cells_mut().extend(cells)?; // on error the row is dropped again
///         Ok(row)
///     }
/// }
/// ```
pub trait Emplace<Src>: ShmSafe + Sized {
    /// Writes a value built from `src` to `slot` and returns it as [`Filled`]. On error
    /// the slot is left empty and nothing leaks (a `Filled` dropped on the way drops its
    /// value in place).
    fn emplace<'a>(slot: Slot<'a, Self>, src: Src) -> Result<Filled<'a, Self>, AllocError>;
}

/// An uninitialised place in a writable segment where a value of `T` is about to live, at
/// its final address: a position-dependent value built there needs no move. Only the
/// containers make slots; [`Emplace`] implementations fill them.
///
/// The lifetime is invariant, so the [`Filled`] an implementation returns can only come
/// from the slot it was given.
pub struct Slot<'a, T> {
    place: NonNull<T>,
    _brand: PhantomData<fn(&'a ()) -> &'a ()>,
    _fills: PhantomData<&'a mut T>,
}

impl<'a, T: ShmSafe> Slot<'a, T> {
    /// The slot at `place`.
    ///
    /// # Safety
    ///
    /// `place` must be valid for writes of a `T`, aligned, inside the writable mapping the
    /// value will live in (so that the value finds its allocator from its address), and
    /// untouched by anyone else for `'a`. The caller owns the value once it gets the
    /// [`Filled`] back ([`Filled::keep`]).
    #[inline(always)]
    pub(crate) unsafe fn new(place: NonNull<T>) -> Self {
        Slot {
            place,
            _brand: PhantomData,
            _fills: PhantomData,
        }
    }

    /// Writes `value` (empty, if position-dependent) to the slot.
    #[inline(always)]
    pub fn write(self, value: T) -> Filled<'a, T> {
        // SAFETY: the slot is valid for writes and ours alone (`new`'s contract). A value
        // held by value is empty if position-dependent, so it needs no relocation.
        unsafe { self.place.as_ptr().write(value) };
        Filled {
            place: self.place,
            _brand: PhantomData,
            _owns: PhantomData,
        }
    }
}

/// A value written to its [`Slot`], not yet owned by the container that made the slot:
/// dropping it drops the value in place (the error path of an [`Emplace`]).
#[must_use = "a value built in place is dropped again unless it is returned"]
pub struct Filled<'a, T: ShmSafe> {
    place: NonNull<T>,
    _brand: PhantomData<fn(&'a ()) -> &'a ()>,
    _owns: PhantomData<&'a mut T>,
}

impl<'a, T: ShmSafe> Filled<'a, T> {
    /// The value in place, to fill it further.
    #[inline(always)]
    pub fn as_mut(&mut self) -> ShmMut<'_, T> {
        // SAFETY: the value is initialised at its final place, and ours until `keep`.
        unsafe { ShmMut::new(&mut *self.place.as_ptr()) }
    }

    /// Hands the value over to the container that made the slot.
    #[inline(always)]
    pub(crate) fn keep(self) {
        core::mem::forget(self);
    }
}

impl<T: ShmSafe> core::ops::Deref for Filled<'_, T> {
    type Target = T;

    #[inline(always)]
    fn deref(&self) -> &T {
        // SAFETY: initialised and ours (see `as_mut`).
        unsafe { self.place.as_ref() }
    }
}

impl<T: ShmSafe> Drop for Filled<'_, T> {
    fn drop(&mut self) {
        if crate::crash::crashing() {
            return;
        }
        // SAFETY: the value is initialised and nobody else owns it yet.
        unsafe { self.place.as_ptr().drop_in_place() };
    }
}

/// Builds a value of `T` from `src` at `place`; what the containers call.
///
/// # Safety
///
/// As [`Slot::new`]. On `Ok` the value at `place` is initialised and the caller owns it;
/// on `Err` the place holds nothing.
#[inline(always)]
pub(crate) unsafe fn emplace_at<T: Emplace<S>, S>(
    place: NonNull<T>,
    src: S,
) -> Result<(), AllocError> {
    // SAFETY: forwarded contract.
    T::emplace(unsafe { Slot::new(place) }, src)?.keep();
    Ok(())
}

impl<T: ShmSafe> Emplace<T> for T {
    #[inline(always)]
    fn emplace<'a>(slot: Slot<'a, T>, src: T) -> Result<Filled<'a, T>, AllocError> {
        Ok(slot.write(src))
    }
}

/// A deep copy for clonable plain data (the `&T` items of iterating a slice).
impl<'s, T: ShmSafe + shmkit_runtime::PositionIndependent + Clone> Emplace<&'s T> for T {
    #[inline(always)]
    fn emplace<'a>(slot: Slot<'a, T>, src: &'s T) -> Result<Filled<'a, T>, AllocError> {
        Ok(slot.write(src.clone()))
    }
}

impl<T, I> Emplace<I> for Vec<T>
where
    I: IntoIterator,
    T: Emplace<I::Item>,
{
    fn emplace<'a>(slot: Slot<'a, Self>, items: I) -> Result<Filled<'a, Self>, AllocError> {
        let mut vec = slot.write(Vec::new());
        vec.as_mut().extend(items)?;
        Ok(vec)
    }
}
