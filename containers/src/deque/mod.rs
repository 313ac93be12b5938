//! [`Deque<T>`]: a double-ended queue in a ring buffer that lives in a segment, std's
//! `VecDeque`.
//!
//! # Layout
//!
//! `#[repr(C)]`, 32 bytes, aligned to 8: a self-relative [`OffsetPtr`] to the buffer, then
//! the slot of the first element (`head`), the length and the capacity, as `u64`. All-zero
//! bytes, like [`Deque::new`], are an empty deque: a capacity of 0 means "no buffer",
//! whatever the pointer holds. Otherwise the pointer aims at the first of `capacity` slots
//! in a block of the segment the header lives in, whose first word names the deque's
//! pointer as its one owner (its [tag](shmkit_runtime::segment::owned), as a `Vec`'s
//! buffer does); element `i` is in slot `(head + i) % capacity` (`head < capacity`,
//! `len <= capacity`), so the elements are one run of slots or two (the ring wraps).
//! Zero-sized elements never allocate.
//!
//! # Moves
//!
//! As for [`Vec`](crate::Vec): the header is position-dependent, never
//! [`PositionIndependent`], mutated in place through [`DequeExt`]; elements that move
//! (growth, [`make_contiguous`](DequeExt::make_contiguous), `retain`) move with their
//! relocation hook, so position-dependent elements (a nested `Vec`) survive.
//!
//! # Crash consistency
//!
//! A process killed at any instruction of a mutating operation leaves a deque that is
//! memory-safe to read and to drop, possibly leaking. Every state in between counts only
//! initialised slots:
//! - `push_back` writes the slot after the last, then raises the length (one Release
//!   store); `pop_back` lowers the length before reading or dropping the element.
//! - `push_front` writes the slot before the first, then moves `head` onto it and raises
//!   the length; `pop_front` lowers the length, then moves `head` past the first, then
//!   reads or drops it. Between the two stores the last element is not counted: a crash
//!   there leaks it.
//! - Growth fills the new room first and publishes it by one Release store of the
//!   capacity. In place, the part of a wrapped ring at the start of the buffer is copied
//!   to right after the end, where the larger capacity looks for it. Into a new block,
//!   every element is copied to the slot it has under the new capacity, and the wrapped
//!   part also to the start, where the old capacity looks for it (the block names the
//!   deque as its owner before anything points at it): the pointer is published (Release),
//!   then the capacity, and exactly one copy of each element is counted at any instant.
//!   The old block is freed without dropping what moved out of it. The wrapped part is
//!   copied to the start first: the blocks its elements own name their copies under the
//!   new capacity (until that is published, a writable mapping refuses the deque: an
//!   error, no more).
//! - Operations that move elements within the buffer (`make_contiguous`, `retain`,
//!   `shrink_to_fit` of a ring that does not start at slot 0) lower the length to 0 first
//!   and raise it again when the elements are in place: a crash in between leaks them, as
//!   `Vec::insert`'s shift does. `insert` and `remove` lower it to the index only: the
//!   elements after it shift uncounted. Dropping lowers the length, then drops the elements, then
//!   frees the buffer.
//!
//! [`OffsetPtr`]: shmkit_runtime::OffsetPtr
//! [`PositionIndependent`]: shmkit_runtime::PositionIndependent

mod ext;
mod raw;

pub use ext::{DequeExt, IterMut};

use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::marker::PhantomData;
use core::ops::{Index, RangeBounds};
use core::ptr::NonNull;

use shmkit_runtime::layout::{compound_fingerprint, ForwardsImmutable};
use shmkit_runtime::{AllocError, Invalid, OffsetPtr, ShmImmutable, ShmSafe};

use crate::emplace::{Emplace, Filled, Slot};

/// A double-ended queue in a segment: std's `VecDeque<T>`, a growable ring buffer, with
/// allocation failure as an error and mutation in place (see the [module docs](self)).
///
/// By value a `Deque` is only ever empty ([`Deque::new`], [`Default`]): it gets elements
/// once it lives in a segment, through [`DequeExt`] (`use shmkit::prelude::*`). It
/// allocates from the segment it lives in, found from its own address.
///
/// ```
/// use shmkit_containers::{Deque, DequeExt};
/// use shmkit_runtime::ManagedHeapMemory;
///
/// let mut seg = ManagedHeapMemory::new(1 << 16)?;
/// seg.construct("jobs", Deque::<u64>::new())?;
/// let mut jobs = seg.find_mut::<Deque<u64>>("jobs")?.expect("constructed above");
/// jobs.push_back(2)?;
/// jobs.push_back(3)?;
/// jobs.push_front(1)?;
/// assert_eq!(*jobs, [1, 2, 3]);
/// assert_eq!((jobs.pop_front(), jobs[0], jobs.back()), (Some(1), 2, Some(&3)));
/// # Ok::<(), shmkit_runtime::Error>(())
/// ```
#[repr(C, align(8))]
pub struct Deque<T> {
    ptr: OffsetPtr<T>,
    head: u64,
    len: u64,
    cap: u64,
    /// The deque owns its elements (for drop check).
    _owns: PhantomData<T>,
}

// SAFETY: as std's `VecDeque`: the deque owns its elements, reached only through it.
unsafe impl<T: Send> Send for Deque<T> {}
// SAFETY: as above; `&Deque<T>` gives only `&T`.
unsafe impl<T: Sync> Sync for Deque<T> {}

/// A run of slots: the first slot and how many.
type Run = (usize, usize);

impl<T> Deque<T> {
    /// An empty deque, allocating nothing (all-zero bytes are one too).
    pub const fn new() -> Self {
        Deque {
            ptr: OffsetPtr::null(),
            head: 0,
            len: 0,
            cap: 0,
            _owns: PhantomData,
        }
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are no elements.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many elements fit without allocating (`usize::MAX` for zero-sized elements).
    #[inline]
    pub fn capacity(&self) -> usize {
        if size_of::<T>() == 0 {
            usize::MAX
        } else {
            self.cap as usize
        }
    }

    /// Element `index` (0 is the front), None when out of bounds.
    #[inline]
    pub fn get(&self, index: usize) -> Option<&T> {
        // SAFETY: an element the deque counts, borrowed with it.
        (index < self.len()).then(|| unsafe { &*self.element(index) })
    }

    /// The first element, None when empty.
    pub fn front(&self) -> Option<&T> {
        self.get(0)
    }

    /// The last element, None when empty.
    pub fn back(&self) -> Option<&T> {
        self.get(self.len().checked_sub(1)?)
    }

    /// The elements, front to back (and back to front: double-ended).
    pub fn iter(&self) -> Iter<'_, T> {
        let (a, b) = self.as_slices();
        Iter(Halves(a.iter(), b.iter()))
    }

    /// The elements in `range` (of indices), front to back; None when the range is out of
    /// bounds or decreasing (where std panics).
    pub fn range(&self, range: impl RangeBounds<usize>) -> Option<Iter<'_, T>> {
        let range = crate::bounds::resolve(range, self.len())?;
        let (a, b) = self.slices(range.start, range.end);
        Some(Iter(Halves(a.iter(), b.iter())))
    }

    /// The elements as two slices, front to back: the run up to the end of the buffer,
    /// then the run that wrapped to its start (empty unless the ring wraps).
    pub fn as_slices(&self) -> (&[T], &[T]) {
        self.slices(0, self.len())
    }

    /// Whether an element equals `x`.
    pub fn contains(&self, x: &T) -> bool
    where
        T: PartialEq,
    {
        let (a, b) = self.as_slices();
        a.contains(x) || b.contains(x)
    }

    /// The buffer, if there is one: never for zero-sized elements or a capacity of 0.
    #[inline]
    fn buffer(&self) -> Option<NonNull<T>> {
        if size_of::<T>() == 0 || self.cap == 0 {
            None
        } else {
            NonNull::new(self.ptr.get())
        }
    }

    /// Where the slots are: the buffer, or a dangling aligned pointer when there is none
    /// (then the length is 0, or the elements are zero-sized).
    #[inline]
    fn data(&self) -> *mut T {
        self.buffer().unwrap_or(NonNull::dangling()).as_ptr()
    }

    /// The slot of element `index < capacity`.
    #[inline(always)]
    fn slot(&self, index: usize) -> usize {
        let (slot, cap) = (self.head as usize + index, self.cap as usize);
        if slot >= cap && size_of::<T>() != 0 {
            slot - cap
        } else {
            slot
        }
    }

    /// Element `index < capacity`'s place (initialised when `index < len`).
    #[inline(always)]
    fn element(&self, index: usize) -> *mut T {
        self.data().wrapping_add(self.slot(index))
    }

    /// The slots of elements `start..end` (`start <= end <= len`): one run, or two when
    /// they wrap.
    fn runs(&self, start: usize, end: usize) -> [Run; 2] {
        let n = end - start;
        let to_end = (self.cap as usize).saturating_sub(self.slot(start));
        if n == 0 || size_of::<T>() == 0 || n <= to_end {
            [(self.slot(start), n), (0, 0)]
        } else {
            [(self.slot(start), to_end), (0, n - to_end)]
        }
    }

    /// Elements `start..end` (`start <= end <= len`) as two slices.
    fn slices(&self, start: usize, end: usize) -> (&[T], &[T]) {
        let [(a, a_len), (b, b_len)] = self.runs(start, end);
        let data = self.data();
        // SAFETY: both runs are initialised elements inside the buffer (a dangling
        // pointer for zero-sized ones, or when empty), borrowed with the deque.
        unsafe {
            (
                core::slice::from_raw_parts(data.wrapping_add(a), a_len),
                core::slice::from_raw_parts(data.wrapping_add(b), b_len),
            )
        }
    }
}

/// Two runs of elements, one after the other: what [`Iter`] and [`IterMut`] walk.
#[derive(Clone)]
struct Halves<I>(I, I);

impl<I: ExactSizeIterator + DoubleEndedIterator> Iterator for Halves<I> {
    type Item = I::Item;

    #[inline]
    fn next(&mut self) -> Option<I::Item> {
        self.0.next().or_else(|| self.1.next())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.0.len() + self.1.len();
        (n, Some(n))
    }
}

impl<I: ExactSizeIterator + DoubleEndedIterator> DoubleEndedIterator for Halves<I> {
    #[inline]
    fn next_back(&mut self) -> Option<I::Item> {
        self.1.next_back().or_else(|| self.0.next_back())
    }
}

/// The elements of a [`Deque`], front to back or back to front ([`Deque::iter`],
/// [`Deque::range`]).
pub struct Iter<'a, T>(Halves<core::slice::Iter<'a, T>>);

impl<T> Clone for Iter<'_, T> {
    fn clone(&self) -> Self {
        Iter(self.0.clone())
    }
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;

    #[inline]
    fn next(&mut self) -> Option<&'a T> {
        self.0.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<T> DoubleEndedIterator for Iter<'_, T> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back()
    }
}

impl<T> ExactSizeIterator for Iter<'_, T> {}

impl<T> core::iter::FusedIterator for Iter<'_, T> {}

impl<T> Default for Deque<T> {
    fn default() -> Self {
        Deque::new()
    }
}

impl<T> Index<usize> for Deque<T> {
    type Output = T;

    /// Element `index`.
    ///
    /// # Panics
    ///
    /// When `index` is out of bounds, as std's `VecDeque`; [`Deque::get`] returns None
    /// instead.
    fn index(&self, index: usize) -> &T {
        match self.get(index) {
            Some(x) => x,
            None => panic!(
                "index {index} is out of bounds for a Deque of {} elements",
                self.len()
            ),
        }
    }
}

impl<'a, T> IntoIterator for &'a Deque<T> {
    type Item = &'a T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T: fmt::Debug> fmt::Debug for Deque<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self).finish()
    }
}

impl<T: PartialEq<U>, U> PartialEq<Deque<U>> for Deque<T> {
    fn eq(&self, other: &Deque<U>) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<T: PartialEq<U>, U> PartialEq<[U]> for Deque<T> {
    fn eq(&self, other: &[U]) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<T: PartialEq<U>, U> PartialEq<&[U]> for Deque<T> {
    fn eq(&self, other: &&[U]) -> bool {
        *self == **other
    }
}

impl<T: PartialEq<U>, U, const N: usize> PartialEq<[U; N]> for Deque<T> {
    fn eq(&self, other: &[U; N]) -> bool {
        *self == other[..]
    }
}

impl<T: Eq> Eq for Deque<T> {}

impl<T: PartialOrd> PartialOrd for Deque<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.iter().partial_cmp(other.iter())
    }
}

impl<T: Ord> Ord for Deque<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.iter().cmp(other.iter())
    }
}

impl<T: Hash> Hash for Deque<T> {
    /// As std's `VecDeque`: the length, then each element (wherever the ring wraps).
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.len());
        self.iter().for_each(|e| e.hash(state));
    }
}

/// A deque built in place from any iterable of sources of its elements.
impl<T, I> Emplace<I> for Deque<T>
where
    I: IntoIterator,
    T: Emplace<I::Item>,
{
    fn emplace<'a>(slot: Slot<'a, Self>, items: I) -> Result<Filled<'a, Self>, AllocError> {
        let mut deque = slot.write(Deque::new());
        deque.as_mut().extend(items)?;
        Ok(deque)
    }
}

// SAFETY: the header holds an offset pointer and three integers; `relocate` re-aims the
// pointer after a move of the header (the elements stay where they are); `validate`
// accepts exactly the headers the deque's methods rely on, and the elements they count.
// The drop glue is the deque's own.
unsafe impl<T: ShmSafe> ShmSafe for Deque<T> {
    /// Over the element's pointee fingerprint, as an `OffsetPtr<T>`'s.
    const LAYOUT_FINGERPRINT: u64 = compound_fingerprint("Deque", &[T::POINTEE_FINGERPRINT]);

    /// A head or a length beyond the capacity, or a buffer outside the segment, must be
    /// refused.
    const ALL_BIT_PATTERNS_VALID: bool = false;

    unsafe fn validate(value: *const Self) -> Result<(), Invalid> {
        // SAFETY: forwarded contract.
        unsafe { raw::validate(value) }
    }

    #[inline]
    unsafe fn relocate(&mut self, moved_from: usize) {
        let at = core::mem::offset_of!(Self, ptr);
        // SAFETY: the pointer moved with the header, from its own old address.
        unsafe { self.ptr.relocate(moved_from.wrapping_add(at)) };
        if let Some(buffer) = self.buffer() {
            // SAFETY: the buffer is this deque's (the caller's contract: `self` holds the
            // bytes that were its header), in the writable mapping it was moved in.
            unsafe { crate::buffer::moved_to(buffer, self.owner()) };
        }
    }

    /// The layout fingerprint, the same in every program.
    fn type_fingerprint() -> u64 {
        Self::LAYOUT_FINGERPRINT
    }
}

// SAFETY: the header changes only through `&mut` (`DequeExt`), and immutable elements
// make an immutable whole.
unsafe impl<T: ShmImmutable> ShmImmutable for Deque<T> {}
// SAFETY: the impl above asks only `T: ShmImmutable`.
unsafe impl<T> ForwardsImmutable for Deque<T> {}

impl<T> Drop for Deque<T> {
    /// Drops the elements in place and gives the buffer back to the segment.
    fn drop(&mut self) {
        self.drop_in_place();
    }
}
