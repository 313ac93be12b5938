//! [`Vec<T>`]: a growable array that lives in a segment, with std's names and semantics.
//!
//! # Layout
//!
//! `#[repr(C)]`, 24 bytes, aligned to 8: a self-relative [`OffsetPtr`] to the elements, then
//! the length and the capacity as `u64` (fixed width, so that the header means the same to
//! every reader of a segment; a `u32` would save 8 bytes per vector but cap a `Vec<u8>` at
//! 4 GiB). All-zero bytes, like [`Vec::new`], are an empty vector: a capacity of 0 means
//! "no buffer", whatever the pointer holds. Otherwise the pointer aims at a block of the
//! segment the header lives in, holding `capacity` elements of which the first `len` are
//! initialised (`len <= capacity`). Zero-sized elements never allocate.
//!
//! # Moves, and what is mutated how
//!
//! The header is position-dependent (its pointer is relative to itself) and the elements
//! do not move when it does: so a `Vec` is never [`PositionIndependent`], and it is
//! mutated in place only, through the extension trait [`VecExt`] on anything that gives
//! in-place access ([`ShmDerefMut`](shmkit_runtime::ShmDerefMut): a [`ShmMut`] of an
//! exclusive mapping, a lock guard of a shared one). Reading needs only `&Vec<T>`, which
//! derefs to `&[T]`.
//!
//! # Crash consistency
//!
//! A process killed at any instruction of a mutating operation leaves a vector that is
//! memory-safe to read and to drop, possibly leaking (std's leak amplification): the
//! length is lowered before elements are dropped or moved (they have no owner until the
//! operation ends), a new buffer is filled before one Release store publishes it (the old
//! one freed afterwards without dropping the elements moved out of it), and the capacity
//! is raised only after the room exists and lowered before it is given back.
//!
//! [`PositionIndependent`]: shmkit_runtime::PositionIndependent
//! [`ShmMut`]: shmkit_runtime::ShmMut

mod drain;
mod ext;
mod raw;

pub use drain::Drain;
pub use ext::{Byte, InsertError, IterMut, VecExt, VecWriter};

use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr::NonNull;

use shmkit_runtime::layout::{compound_fingerprint, container_schemas, ForwardsImmutable};
use shmkit_runtime::{FieldSchema, Invalid, OffsetPtr, Schema, ShmImmutable, ShmSafe};

/// A growable array in a segment: std's `Vec<T>`, with allocation failure as an error
/// and mutation in place (see the [module docs](self)).
///
/// By value a `Vec` is only ever empty ([`Vec::new`], [`Default`]): it gets elements once
/// it lives in a segment (constructed there, or as a field of a root), through
/// [`VecExt`] (`use shmkit::prelude::*`). It allocates from the segment it lives in, found
/// from its own address, so it holds no allocator and `Vec::new()` is `const`.
///
/// ```
/// use shmkit_containers::{Vec, VecExt};
/// use shmkit_runtime::ManagedHeapMemory;
///
/// let mut seg = ManagedHeapMemory::new(1 << 16)?;
/// seg.construct("log", Vec::<u64>::new())?;
/// let mut log = seg.find_mut::<Vec<u64>>("log")?.expect("constructed above");
/// log.push(1)?;
/// log.extend([2, 3])?;
/// assert_eq!(*log, [1, 2, 3]);
/// assert_eq!(log.iter().sum::<u64>(), 6);
/// # Ok::<(), shmkit_runtime::Error>(())
/// ```
#[repr(C, align(8))]
pub struct Vec<T> {
    ptr: OffsetPtr<T>,
    len: u64,
    cap: u64,
    /// The vector owns its elements (for drop check).
    _owns: PhantomData<T>,
}

// SAFETY: as std's `Vec`: the vector owns its elements, reached only through it.
unsafe impl<T: Send> Send for Vec<T> {}
// SAFETY: as above; `&Vec<T>` gives only `&T`.
unsafe impl<T: Sync> Sync for Vec<T> {}

impl<T> Vec<T> {
    /// An empty vector, allocating nothing (all-zero bytes are one too).
    pub const fn new() -> Self {
        Vec {
            ptr: OffsetPtr::null(),
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

    /// The elements.
    #[inline]
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: the first `len` elements at `data()` are initialised (the type's
        // invariant, checked by `validate` for bytes from elsewhere) and live as long as
        // the vector is borrowed; for zero-sized `T` a dangling pointer is valid.
        unsafe { core::slice::from_raw_parts(self.data(), self.len()) }
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

    /// Where the elements are: the buffer, or a dangling aligned pointer when there is none
    /// (then the length is 0, or the elements are zero-sized).
    #[inline]
    fn data(&self) -> *mut T {
        self.buffer().unwrap_or(NonNull::dangling()).as_ptr()
    }
}

impl<T> Default for Vec<T> {
    fn default() -> Self {
        Vec::new()
    }
}

impl<T> Deref for Vec<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T> AsRef<[T]> for Vec<T> {
    fn as_ref(&self) -> &[T] {
        self.as_slice()
    }
}

/// A vector's comparisons and hash are its slice's, so a `Map<Vec<T>, _>` is searched
/// with a `&[T]`.
impl<T> core::borrow::Borrow<[T]> for Vec<T> {
    fn borrow(&self) -> &[T] {
        self.as_slice()
    }
}

impl<'a, T> IntoIterator for &'a Vec<T> {
    type Item = &'a T;
    type IntoIter = core::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl<T: fmt::Debug> fmt::Debug for Vec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl<T: PartialEq<U>, U> PartialEq<Vec<U>> for Vec<T> {
    fn eq(&self, other: &Vec<U>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: PartialEq<U>, U> PartialEq<[U]> for Vec<T> {
    fn eq(&self, other: &[U]) -> bool {
        self.as_slice() == other
    }
}

impl<T: PartialEq<U>, U> PartialEq<&[U]> for Vec<T> {
    fn eq(&self, other: &&[U]) -> bool {
        self.as_slice() == *other
    }
}

impl<T: PartialEq<U>, U, const N: usize> PartialEq<[U; N]> for Vec<T> {
    fn eq(&self, other: &[U; N]) -> bool {
        self.as_slice() == other
    }
}

impl<T: PartialEq<U>, U> PartialEq<std::vec::Vec<U>> for Vec<T> {
    fn eq(&self, other: &std::vec::Vec<U>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Eq> Eq for Vec<T> {}

impl<T: PartialOrd> PartialOrd for Vec<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.as_slice().partial_cmp(other.as_slice())
    }
}

impl<T: Ord> Ord for Vec<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl<T: Hash> Hash for Vec<T> {
    /// As the slice (and so as std's `Vec`).
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

// SAFETY: the header holds an offset pointer and two integers; `relocate` re-aims the
// pointer after a move of the header (the elements stay where they are); `validate`
// accepts exactly the headers the vector's methods rely on, and the elements they count.
// The drop glue is the vector's own (a segment container).
unsafe impl<T: ShmSafe> ShmSafe for Vec<T> {
    /// Over the element's pointee fingerprint, as an `OffsetPtr<T>`'s: a type may hold a
    /// `Vec` of itself (a tree), and a fingerprint cannot contain itself. What the
    /// elements' bytes mean is checked by `validate` instead.
    const LAYOUT_FINGERPRINT: u64 = compound_fingerprint("Vec", &[T::POINTEE_FINGERPRINT]);

    /// A sequence: `len` elements where `ptr` aims (for the inspector's `dump`).
    const SCHEMA: Option<&'static Schema> = Some(&Schema::container(
        "Vec",
        "sequence",
        size_of::<Self>(),
        align_of::<Self>(),
        &[T::POINTEE_FINGERPRINT],
        &[
            FieldSchema::part(
                "ptr",
                core::mem::offset_of!(Self, ptr),
                size_of::<T>(),
                align_of::<T>(),
                T::LAYOUT_FINGERPRINT,
            ),
            FieldSchema::part(
                "len",
                core::mem::offset_of!(Self, len),
                8,
                8,
                u64::LAYOUT_FINGERPRINT,
            ),
        ],
    ));

    fn for_each_schema(f: &mut dyn FnMut(&'static Schema) -> bool) {
        container_schemas::<T>(Self::SCHEMA, f);
    }

    /// A length beyond the capacity, or a buffer outside the segment, must be refused.
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
            // SAFETY: the buffer is this vector's (the caller's contract: `self` holds the
            // bytes that were its header), in the writable mapping it was moved in.
            unsafe { crate::buffer::moved_to(buffer, self.owner()) };
        }
    }

    /// The layout fingerprint, the same in every program (`type_name` would name the
    /// element's module).
    fn type_fingerprint() -> u64 {
        Self::LAYOUT_FINGERPRINT
    }
}

// SAFETY: the header changes only through `&mut` (`VecExt`), and immutable elements make
// an immutable whole: a read-only mapping may lend a `Vec` of plain data.
unsafe impl<T: ShmImmutable> ShmImmutable for Vec<T> {}
// SAFETY: the impl above asks only `T: ShmImmutable`.
unsafe impl<T> ForwardsImmutable for Vec<T> {}

impl<T> Drop for Vec<T> {
    /// Drops the elements in place and gives the buffer back to the segment. A vector
    /// that is in no writable segment has no buffer (by value it is empty).
    fn drop(&mut self) {
        self.drop_in_place();
    }
}
