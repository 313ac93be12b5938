//! The in-place algorithms of [`Vec`] on `&mut Vec<T>`, which only this crate reaches
//! (through [`VecExt`](super::VecExt), from a guard that keeps the vector in place): the
//! publishing stores, growth, and every operation that moves or drops elements, each in
//! the order the module docs' crash consistency asks for.

use core::ptr::{self, NonNull};
use core::sync::atomic::{compiler_fence, AtomicU64, Ordering};

use shmkit_runtime::{
    relocate_value, relocate_values, AllocError, AllocErrorKind, Invalid, SegmentAllocator, ShmMut,
    ShmSafe,
};

use super::Vec;
use crate::boxed::block;
use crate::buffer;
use crate::crash::{crashing, point};
use crate::emplace::{emplace_at, Emplace};

impl<T> Vec<T> {
    /// Publishes a larger length: one Release store, so the elements written before it
    /// are in memory before it counts them.
    #[inline(always)]
    pub(super) fn publish_len(&mut self, len: usize) {
        point("vec: a length about to be stored");
        // SAFETY: the field is a live, aligned `u64` (the header is aligned to 8) that
        // `&mut self` keeps everybody else from meanwhile.
        unsafe { AtomicU64::from_ptr(&raw mut self.len) }.store(len as u64, Ordering::Release);
        point("vec: a length stored");
    }

    /// Lowers the length to `len` before the elements past it are dropped or moved: they
    /// have no owner until the operation ends (a leak at worst). The fence keeps what
    /// follows after the store.
    #[inline(always)]
    pub(super) fn disown_from(&mut self, len: usize) {
        self.publish_len(len);
        compiler_fence(Ordering::SeqCst);
    }

    /// Publishes a capacity, ordered after what came before (a new buffer published, a
    /// block grown) and before what follows (a block shrunk or freed).
    #[inline]
    fn publish_cap(&mut self, cap: usize) {
        point("vec: a capacity about to be stored");
        // SAFETY: as in `publish_len`.
        unsafe { AtomicU64::from_ptr(&raw mut self.cap) }.store(cap as u64, Ordering::Release);
        compiler_fence(Ordering::SeqCst);
        point("vec: a capacity stored");
    }

    /// Where the tag of the buffer says its owner is: the pointer to it.
    #[inline(always)]
    pub(super) fn owner(&self) -> *const u8 {
        (&raw const self.ptr).cast()
    }

    /// The allocator of the mapping this vector lives in.
    ///
    /// The lifetime is the caller's choice: it must not outlive the caller's `&mut self`,
    /// which (through the guard it came from) keeps the mapping mapped. Every caller uses
    /// it within the method that asked for it.
    fn allocator<'a>(&self) -> Result<SegmentAllocator<'a>, AllocError> {
        let field: *const u64 = &self.len;
        // SAFETY: see above: the reference (to a field of the header, which holds no
        // `T`) is used only to find the mapping, while the vector is borrowed by the caller.
        SegmentAllocator::of(unsafe { &*field })
    }

    /// Drops the elements and frees the buffer (the vector's `Drop`).
    pub(super) fn drop_in_place(&mut self) {
        let len = self.len();
        let data = self.data();
        self.disown_from(0);
        // SAFETY: the first `len` elements were initialised and nothing counts them now.
        unsafe { ptr::slice_from_raw_parts_mut(data, len).drop_in_place() };
        if let Some(buffer) = self.buffer() {
            let cap = self.capacity();
            self.publish_cap(0);
            if let Ok(alloc) = SegmentAllocator::of(&*self) {
                point("vec: a disowned buffer about to be freed");
                // SAFETY: the buffer is this vector's, of capacity `cap`, in this mapping,
                // and nothing counts its elements any more.
                unsafe { buffer::free(&alloc, buffer, cap) };
            }
        }
    }
}

/// A vector in place, as the algorithms below see it. A type of its own rather than
/// inherent methods of `Vec`: those would shadow [`VecExt`](super::VecExt)'s methods on a
/// `&Vec` (a private `push` found before the trait's).
pub(super) struct InPlace<'a, T>(pub(super) &'a mut Vec<T>);

impl<T> core::ops::Deref for InPlace<'_, T> {
    type Target = Vec<T>;

    #[inline(always)]
    fn deref(&self) -> &Vec<T> {
        self.0
    }
}

impl<T> core::ops::DerefMut for InPlace<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut Vec<T> {
        self.0
    }
}

impl<'a, T: ShmSafe> InPlace<'a, T> {
    /// Appends a value built from `src`.
    #[inline]
    pub(super) fn push<S>(&mut self, src: S) -> Result<(), AllocError>
    where
        T: Emplace<S>,
    {
        let len = self.len();
        if len == self.capacity() {
            // A reborrow by value: the wrapper stays in a register on the hot path.
            InPlace(&mut *self.0).grow_amortized(1)?;
        }
        // SAFETY: `len < capacity`: a slot of the buffer, in place, that holds no element.
        unsafe { emplace_at(NonNull::new_unchecked(self.room().add(len)), src) }?;
        self.publish_len(len + 1);
        Ok(())
    }

    /// The buffer when `len < capacity` says there is one: the pointer without `data()`'s
    /// checks (a capacity above 0 comes with a non-null pointer, which `validate` checks
    /// for bytes from elsewhere).
    #[inline(always)]
    fn room(&self) -> *mut T {
        if size_of::<T>() == 0 {
            core::ptr::NonNull::dangling().as_ptr()
        } else {
            self.ptr.get()
        }
    }

    /// Makes room for `additional` more elements (amortised growth).
    pub(super) fn reserve(&mut self, additional: usize) -> Result<(), AllocError> {
        if self.capacity() - self.len() >= additional {
            return Ok(());
        }
        InPlace(&mut *self.0).grow_amortized(additional)
    }

    /// Grows to hold `additional` more: by half the capacity at least (Boost grows by 0.6,
    /// std doubles; growth is mostly in place, so the factor mostly decides the slack).
    #[cold]
    #[inline(never)]
    fn grow_amortized(mut self, additional: usize) -> Result<(), AllocError> {
        let required = self
            .len()
            .checked_add(additional)
            .ok_or_else(AllocError::capacity_overflow)?;
        let cap = self.capacity();
        let min = match size_of::<T>() {
            1 => 8,
            n if n <= 1024 => 4,
            _ => 1,
        };
        self.grow_to(required.max(cap + cap / 2).max(min))
    }

    /// Moves the elements into room for at least `new_cap` of them: the block grown in
    /// place when the block after it is free, else a new block, filled (each element
    /// relocated), published, and the old one freed without dropping what moved out.
    /// On error nothing changed.
    fn grow_to(&mut self, new_cap: usize) -> Result<(), AllocError> {
        let alloc = self.allocator()?;
        let (old, old_cap) = (self.buffer(), self.capacity());
        if let Some(old) = old {
            // SAFETY: the buffer is this vector's, of capacity `old_cap`, in this mapping.
            match unsafe { buffer::grow_in_place(&alloc, old, old_cap, new_cap) } {
                Ok(cap) => {
                    self.publish_cap(cap);
                    return Ok(());
                }
                Err(e) if matches!(e.kind(), AllocErrorKind::NoRoomInPlace { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let (new, cap) = buffer::allocate::<T>(&alloc, new_cap, self.owner())?;
        let new = new.as_ptr();
        point("vec: a new buffer allocated, not yet filled");
        if let Some(old) = old {
            // SAFETY: the first `len` elements are live at `old`; the new block is fresh,
            // aligned for `T` and holds at least `new_cap > len` of them.
            unsafe { relocate_values(new, old.as_ptr(), self.len()) };
        }
        point("vec: a new buffer filled, not yet published");
        // SAFETY: the block is in the mapping that holds the vector (its allocator was
        // found from the vector's address), and the header stays where it is.
        unsafe { self.ptr.set_release(new) };
        point("vec: a new buffer published, the old one not yet freed");
        self.publish_cap(cap);
        if let Some(old) = old {
            // SAFETY: the old buffer was this vector's, of capacity `old_cap`, and its
            // elements moved out.
            unsafe { buffer::free(&alloc, old, old_cap) };
        }
        Ok(())
    }

    /// Gives back the capacity beyond the length: the whole buffer when empty, else the
    /// block's tail, in place.
    pub(super) fn shrink_to_fit(&mut self) -> Result<(), AllocError> {
        let Some(buffer) = self.buffer() else {
            return Ok(());
        };
        let len = self.len();
        if len == self.capacity() {
            return Ok(());
        }
        let cap = self.capacity();
        let alloc = self.allocator()?;
        self.publish_cap(len);
        if len == 0 {
            // SAFETY: the buffer is this vector's, of capacity `cap`, and holds no element.
            unsafe { buffer::free(&alloc, buffer, cap) };
            return Ok(());
        }
        // SAFETY: as above; the capacity already says `len`, which the block keeps.
        let cap = unsafe { buffer::shrink_in_place(&alloc, buffer, cap, len)? };
        self.publish_cap(cap);
        Ok(())
    }

    /// Removes and returns the last element.
    pub(super) fn pop(&mut self) -> Option<T> {
        let last = self.len().checked_sub(1)?;
        self.disown_from(last);
        // SAFETY: element `last` is initialised and nothing counts it any more.
        Some(unsafe { self.data().add(last).read() })
    }

    /// Hands the last element to `f` in place, then drops it there.
    pub(super) fn pop_with<R>(&mut self, f: impl FnOnce(ShmMut<'_, T>) -> R) -> Option<R> {
        let last = self.len().checked_sub(1)?;
        let element = self.data().wrapping_add(last);
        // SAFETY: a live element in place; the guard moves nothing.
        let r = f(unsafe { ShmMut::new(&mut *element) });
        self.disown_from(last);
        // SAFETY: initialised, and nothing counts it any more.
        unsafe { element.drop_in_place() };
        Some(r)
    }

    /// Removes element `index` once nothing counts it (`take` reads or drops it) and
    /// closes the gap; None when out of bounds.
    fn remove_by<R>(&mut self, index: usize, take: impl FnOnce(*mut T) -> R) -> Option<R> {
        let len = self.len();
        if index >= len {
            return None;
        }
        let data = self.data();
        self.disown_from(index);
        // SAFETY: element `index` is initialised and nothing counts it or those after it.
        let r = take(unsafe { data.add(index) });
        // SAFETY: elements `index + 1..len` are live; they move down by one in the buffer.
        unsafe { relocate_values(data.add(index), data.add(index + 1), len - index - 1) };
        self.publish_len(len - 1);
        Some(r)
    }

    /// Removes and returns element `index`, shifting the rest down.
    pub(super) fn remove(&mut self, index: usize) -> Option<T> {
        // SAFETY: `remove_by` hands over an element nobody counts: read it out once.
        self.remove_by(index, |p| unsafe { p.read() })
    }

    /// Hands element `index` to `f` in place, then drops it and shifts the rest down.
    pub(super) fn remove_with<R>(
        &mut self,
        index: usize,
        f: impl FnOnce(ShmMut<'_, T>) -> R,
    ) -> Option<R> {
        let r = f(InPlace(&mut *self.0).element_mut(index)?);
        // SAFETY: `remove_by` hands over an element nobody counts: drop it once.
        self.remove_by(index, |p| unsafe { p.drop_in_place() });
        Some(r)
    }

    /// Removes and returns element `index`, moving the last one into its place.
    pub(super) fn swap_remove(&mut self, index: usize) -> Option<T> {
        let len = self.len();
        if index >= len {
            return None;
        }
        let data = self.data();
        self.disown_from(index);
        // SAFETY: element `index` is initialised and nothing counts it any more.
        let value = unsafe { data.add(index).read() };
        if index != len - 1 {
            // SAFETY: the last element is live and nothing counts it; its slot and
            // `index`'s are distinct.
            unsafe { relocate_value(data.add(index), data.add(len - 1)) };
        }
        self.publish_len(len - 1);
        Some(value)
    }

    /// Inserts a value built from `src` at `index`, shifting the rest up (and back down
    /// if building fails or panics).
    pub(super) fn insert<S>(&mut self, index: usize, src: S) -> Result<(), super::InsertError>
    where
        T: Emplace<S>,
    {
        let len = self.len();
        if index > len {
            return Err(super::InsertError::OutOfBounds { index, len });
        }
        if len == self.capacity() {
            InPlace(&mut *self.0).grow_amortized(1)?;
        }
        let data = self.data();
        self.disown_from(index);
        // SAFETY: `len < capacity`: elements `index..len` move up by one inside the
        // buffer, then the freed slot (in place, holding nothing) takes the value.
        unsafe { relocate_values(data.add(index + 1), data.add(index), len - index) };
        // If building fails or panics, they move back.
        let shifted = ShiftedUp {
            vec: &mut *self.0,
            data,
            index,
            len,
        };
        // SAFETY: slot `index` is in the buffer, in place, and holds nothing.
        let built = unsafe { emplace_at(NonNull::new_unchecked(data.add(index)), src) };
        match built {
            Ok(_) => {
                core::mem::forget(shifted);
                self.publish_len(len + 1);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Drops the elements from `len` on.
    pub(super) fn truncate(&mut self, len: usize) {
        let old = self.len();
        if len >= old {
            return;
        }
        let data = self.data();
        self.disown_from(len);
        // SAFETY: elements `len..old` are initialised and nothing counts them now.
        unsafe { ptr::slice_from_raw_parts_mut(data.add(len), old - len).drop_in_place() };
    }

    /// Appends clones of `other`'s elements (plain data: a clone is independent of where
    /// it is).
    pub(super) fn extend_from_slice(&mut self, other: &[T]) -> Result<(), AllocError>
    where
        T: Clone,
    {
        self.reserve(other.len())?;
        let data = self.data();
        let mut written = PublishOnDrop {
            len: self.len(),
            vec: &mut *self.0,
        };
        for x in other {
            // SAFETY: reserved: slot `written.len` is inside the buffer and empty.
            unsafe { data.add(written.len).write(x.clone()) };
            written.len += 1;
        }
        Ok(())
    }

    /// Appends every item of `iter`; on an allocation failure the items appended so far
    /// are dropped again, leaving the elements as they were.
    pub(super) fn extend<I>(&mut self, iter: I) -> Result<(), AllocError>
    where
        I: IntoIterator,
        T: Emplace<I::Item>,
    {
        let mut iter = iter.into_iter();
        let before = self.len();
        let appended = match self.reserve(iter.size_hint().0) {
            Ok(()) => iter.try_for_each(|x| self.push(x)),
            Err(e) => Err(e),
        };
        if appended.is_err() {
            self.truncate(before);
        }
        appended
    }

    /// Keeps the elements `keep` says yes to, in order, dropping the others in place.
    /// `keep` sees the last element kept so far (None at first) and the candidate.
    pub(super) fn compact(&mut self, mut keep: impl FnMut(Option<&T>, &T) -> bool) {
        let len = self.len();
        let data = self.data();
        self.disown_from(0);
        let mut pass = Compacting {
            vec: &mut *self.0,
            data,
            read: 0,
            kept: 0,
            len,
        };
        while pass.read < len {
            // SAFETY: elements `read..len` are live, and `kept - 1 < read` is the last one
            // kept; both are only read here.
            let (candidate, prev) = unsafe {
                let prev = pass.kept.checked_sub(1).map(|k| &*data.add(k));
                (&*data.add(pass.read), prev)
            };
            if keep(prev, candidate) {
                if pass.read != pass.kept {
                    // SAFETY: slot `kept < read` holds nothing live; the element moves there.
                    unsafe { relocate_value(data.add(pass.kept), data.add(pass.read)) };
                }
                pass.kept += 1;
                pass.read += 1;
            } else {
                pass.read += 1;
                // SAFETY: a live element that nothing counts; counted as gone first, so a
                // panicking drop does not drop it twice.
                unsafe { data.add(pass.read - 1).drop_in_place() };
            }
        }
    }

    /// The guard of element `index`, None when out of bounds.
    pub(super) fn element_mut(self, index: usize) -> Option<ShmMut<'a, T>> {
        if index >= self.len() {
            return None;
        }
        // SAFETY: a live element, in place, borrowed with the vector; the guard moves
        // nothing.
        Some(unsafe { ShmMut::new(&mut *self.data().add(index)) })
    }

    /// The elements as one mutable slice, in place (the guard of each element is what
    /// position-dependent elements allow; plain ones may use the slice itself).
    pub(super) fn elements_mut(self) -> &'a mut [T] {
        // SAFETY: the first `len` elements are initialised and borrowed with the vector.
        unsafe { core::slice::from_raw_parts_mut(self.data(), self.len()) }
    }
}

/// Publishes the length it counts up to when dropped, also when a clone panics.
struct PublishOnDrop<'v, T> {
    vec: &'v mut Vec<T>,
    len: usize,
}

impl<T> Drop for PublishOnDrop<'_, T> {
    fn drop(&mut self) {
        if crashing() {
            return;
        }
        self.vec.publish_len(self.len);
    }
}

/// Elements `index..len` moved up by one for an insertion: moved back and counted again
/// when dropped, unless forgotten once the new element is built (also when building
/// panics, so that no element is lost).
struct ShiftedUp<'v, T: ShmSafe> {
    vec: &'v mut Vec<T>,
    data: *mut T,
    index: usize,
    len: usize,
}

impl<T: ShmSafe> Drop for ShiftedUp<'_, T> {
    fn drop(&mut self) {
        if crashing() {
            return;
        }
        let (data, index) = (self.data, self.index);
        // SAFETY: elements `index + 1..=len` are live and nothing counts them; slot
        // `index` holds nothing (the value was not built): they move back down.
        unsafe { relocate_values(data.add(index), data.add(index + 1), self.len - index) };
        self.vec.publish_len(self.len);
    }
}

/// A pass of [`Vec::compact`]: when it ends (or `keep` panics), the elements not read yet
/// move down after the kept ones and the length counts both.
struct Compacting<'v, T: ShmSafe> {
    vec: &'v mut Vec<T>,
    data: *mut T,
    read: usize,
    kept: usize,
    len: usize,
}

impl<T: ShmSafe> Drop for Compacting<'_, T> {
    fn drop(&mut self) {
        if crashing() {
            return;
        }
        let rest = self.len - self.read;
        if self.read != self.kept {
            // SAFETY: elements `read..len` are live and nothing counts them; slots from
            // `kept` on hold nothing live (relocate_values allows the overlap).
            unsafe { relocate_values(self.data.add(self.kept), self.data.add(self.read), rest) };
        }
        self.vec.publish_len(self.kept + rest);
    }
}

/// [`ShmSafe::validate`] for a vector: the header is one its methods can rely on, and the
/// elements it counts are valid.
///
/// # Safety
/// As for [`ShmSafe::validate`].
pub(super) unsafe fn validate<T: ShmSafe>(value: *const Vec<T>) -> Result<(), Invalid> {
    // SAFETY: the caller's contract: aligned, readable, initialised, not written meanwhile.
    let v = unsafe { &*value };
    if v.len > isize::MAX as u64 {
        return Err(Invalid::new("a Vec length of at most isize::MAX")
            .within("len", core::mem::offset_of!(Vec<T>, len)));
    }
    if size_of::<T>() == 0 {
        // Every element has the one possible bit pattern: checking one checks all.
        return match v.len {
            0 => Ok(()),
            // SAFETY: a zero-sized value is read from any aligned non-null address.
            _ => unsafe { T::validate(v.data()) }.map_err(|e| e.within("[0]", 0)),
        };
    }
    if v.len > v.cap {
        return Err(Invalid::new("a Vec length of at most its capacity")
            .within("len", core::mem::offset_of!(Vec<T>, len)));
    }
    if v.cap == 0 {
        return Ok(());
    }
    buffer::check(&v.ptr, v.cap).map_err(|e| e.within("ptr", 0))?;
    if T::ALL_BIT_PATTERNS_VALID {
        return Ok(());
    }
    block::contents(v, || {
        for i in 0..v.len() {
            // SAFETY: element `i < len <= cap` lies, aligned, in the mapping (checked
            // just above) and is one of the initialised ones.
            unsafe { T::validate(v.data().add(i)) }.map_err(|e| e.within(&format!("[{i}]"), 0))?;
        }
        Ok(())
    })
}
