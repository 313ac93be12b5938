//! The in-place algorithms of [`Deque`] on `&mut Deque<T>`, which only this crate reaches
//! (through [`DequeExt`](super::DequeExt), from a guard that keeps the deque in place):
//! the publishing stores, growth, and every operation that moves or drops elements, each
//! in the order the module docs' crash consistency asks for.

use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};
use core::sync::atomic::{compiler_fence, AtomicU64, Ordering};

use shmkit_runtime::{
    relocate_value, relocate_values, AllocError, AllocErrorKind, Invalid, SegmentAllocator, ShmMut,
    ShmSafe,
};

use super::Deque;
use crate::boxed::block;
use crate::buffer;
use crate::crash::{crashing, point};
use crate::emplace::{emplace_at, Emplace};
use crate::vec::InsertError;

/// One Release store of a header word, kept before what follows by the fence: what was
/// written before (an element, a buffer's contents) is in memory before the word says so,
/// and what follows (moving or dropping elements no longer counted) comes after it.
#[inline(always)]
fn publish(word: &mut u64, value: usize) {
    point("deque: a header word about to be stored");
    // SAFETY: a live, aligned `u64` of the header (aligned to 8) that the caller's
    // `&mut` keeps everybody else from meanwhile.
    unsafe { AtomicU64::from_ptr(word) }.store(value as u64, Ordering::Release);
    compiler_fence(Ordering::SeqCst);
    point("deque: a header word stored");
}

impl<T> Deque<T> {
    /// Publishes the length: raised after the elements are written, lowered before the
    /// ones past it are dropped or moved (nothing owns them until the operation ends).
    #[inline(always)]
    fn publish_len(&mut self, len: usize) {
        publish(&mut self.len, len);
    }

    /// Publishes the slot of the first element.
    #[inline(always)]
    fn publish_head(&mut self, head: usize) {
        publish(&mut self.head, head);
    }

    /// Publishes the capacity: raised after the room exists, lowered before it is given
    /// back.
    #[inline(always)]
    fn publish_cap(&mut self, cap: usize) {
        publish(&mut self.cap, cap);
    }

    /// Where the tag of the buffer says its owner is: the pointer to it.
    #[inline(always)]
    pub(super) fn owner(&self) -> *const u8 {
        (&raw const self.ptr).cast()
    }

    /// The allocator of the mapping this deque lives in. The lifetime is the caller's
    /// choice: it must not outlive the caller's borrow of the deque, which keeps the
    /// mapping mapped; every caller uses it within the method that asked for it.
    fn allocator<'a>(&self) -> Result<SegmentAllocator<'a>, AllocError> {
        let field: *const u64 = &self.len;
        // SAFETY: see above: the reference (to a field of the header, which holds no `T`)
        // is used only to find the mapping while the deque is borrowed by the caller.
        SegmentAllocator::of(unsafe { &*field })
    }

    /// Drops the elements from `len` on, once nothing counts them.
    fn drop_from(&mut self, len: usize) {
        let old = self.len();
        if len >= old {
            return;
        }
        let (runs, data) = (self.runs(len, old), self.data());
        self.publish_len(len);
        for (slot, n) in runs {
            // SAFETY: initialised elements in the buffer that nothing counts any more.
            unsafe { ptr::slice_from_raw_parts_mut(data.wrapping_add(slot), n).drop_in_place() };
        }
    }

    /// Drops the elements and frees the buffer (the deque's `Drop`).
    pub(super) fn drop_in_place(&mut self) {
        self.drop_from(0);
        if let Some(buffer) = self.buffer() {
            let cap = self.capacity();
            self.publish_cap(0);
            self.publish_head(0);
            if let Ok(alloc) = SegmentAllocator::of(&*self) {
                point("deque: a disowned buffer about to be freed");
                // SAFETY: the buffer is this deque's, of capacity `cap`, in this mapping,
                // and nothing counts its elements any more.
                unsafe { buffer::free(&alloc, buffer, cap) };
            }
        }
    }
}

/// A deque in place, as the algorithms below see it. A type of its own rather than
/// inherent methods of `Deque`: those would shadow [`DequeExt`](super::DequeExt)'s
/// methods on a `&Deque`.
pub(super) struct InPlace<'a, T>(pub(super) &'a mut Deque<T>);

impl<T> core::ops::Deref for InPlace<'_, T> {
    type Target = Deque<T>;

    #[inline(always)]
    fn deref(&self) -> &Deque<T> {
        self.0
    }
}

impl<T> core::ops::DerefMut for InPlace<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut Deque<T> {
        self.0
    }
}

impl<'a, T: ShmSafe> InPlace<'a, T> {
    /// The slots when the capacity says there is a buffer: the pointer without `data()`'s
    /// checks (a capacity above 0 comes with a non-null pointer, which `validate` checks
    /// for bytes from elsewhere).
    #[inline(always)]
    fn room(&self) -> *mut T {
        if size_of::<T>() == 0 {
            NonNull::dangling().as_ptr()
        } else {
            self.ptr.get()
        }
    }

    /// Makes room for one more element.
    #[inline(always)]
    fn room_for_one(&mut self) -> Result<(), AllocError> {
        if self.len() == self.capacity() {
            // A reborrow by value: the wrapper stays in a register on the hot path.
            InPlace(&mut *self.0).grow_amortized(1)?;
        }
        Ok(())
    }

    /// Appends a value built from `src`.
    #[inline]
    pub(super) fn push_back<S>(&mut self, src: S) -> Result<(), AllocError>
    where
        T: Emplace<S>,
    {
        self.room_for_one()?;
        let len = self.len();
        // SAFETY: `len < capacity`: a slot of the buffer, in place, that holds no element.
        unsafe { emplace_at(NonNull::new_unchecked(self.room().add(self.slot(len))), src) }?;
        self.publish_len(len + 1);
        Ok(())
    }

    /// Prepends a value built from `src`.
    pub(super) fn push_front<S>(&mut self, src: S) -> Result<(), AllocError>
    where
        T: Emplace<S>,
    {
        self.room_for_one()?;
        let len = self.len();
        let slot = match self.head as usize {
            _ if size_of::<T>() == 0 => 0,
            0 => self.capacity() - 1,
            head => head - 1,
        };
        // SAFETY: `len < capacity`: the slot before the first holds no element.
        unsafe { emplace_at(NonNull::new_unchecked(self.room().add(slot)), src) }?;
        self.publish_head(slot);
        self.publish_len(len + 1);
        Ok(())
    }

    /// Removes the first element once nothing counts it (`take` reads or drops it).
    fn take_front<R>(&mut self, take: impl FnOnce(*mut T) -> R) -> Option<R> {
        let len = self.len().checked_sub(1)?;
        let first = self.element(0);
        let next = self.slot(1);
        self.publish_len(len);
        self.publish_head(if len == 0 || size_of::<T>() == 0 {
            0
        } else {
            next
        });
        Some(take(first))
    }

    /// Removes the last element once nothing counts it (`take` reads or drops it).
    fn take_back<R>(&mut self, take: impl FnOnce(*mut T) -> R) -> Option<R> {
        let last = self.len().checked_sub(1)?;
        self.publish_len(last);
        Some(take(self.element(last)))
    }

    /// Removes and returns the first element.
    pub(super) fn pop_front(&mut self) -> Option<T> {
        // SAFETY: `take_front` hands over an element nobody counts: read it out once.
        self.take_front(|p| unsafe { p.read() })
    }

    /// Removes and returns the last element.
    pub(super) fn pop_back(&mut self) -> Option<T> {
        // SAFETY: as in `pop_front`.
        self.take_back(|p| unsafe { p.read() })
    }

    /// Hands the first element to `f` in place, then drops it there.
    pub(super) fn pop_front_with<R>(&mut self, f: impl FnOnce(ShmMut<'_, T>) -> R) -> Option<R> {
        let r = f(InPlace(&mut *self.0).element_mut(0)?);
        // SAFETY: `take_front` hands over an element nobody counts: drop it once.
        self.take_front(|p| unsafe { p.drop_in_place() });
        Some(r)
    }

    /// Hands the last element to `f` in place, then drops it there.
    pub(super) fn pop_back_with<R>(&mut self, f: impl FnOnce(ShmMut<'_, T>) -> R) -> Option<R> {
        let last = self.len().checked_sub(1)?;
        let r = f(InPlace(&mut *self.0).element_mut(last)?);
        // SAFETY: as in `pop_front_with`.
        self.take_back(|p| unsafe { p.drop_in_place() });
        Some(r)
    }

    /// Inserts a value built from `src` at `index`, the elements from there on moving one
    /// place toward the back (and back again if building fails or panics). They are not counted
    /// meanwhile: a crash leaks them, as `Vec::insert`'s shift does.
    pub(super) fn insert<S>(&mut self, index: usize, src: S) -> Result<(), InsertError>
    where
        T: Emplace<S>,
    {
        let len = self.len();
        if index > len {
            return Err(InsertError::OutOfBounds { index, len });
        }
        self.room_for_one()?;
        self.publish_len(index);
        // SAFETY: `len < capacity`: elements `index..len` are initialised and nobody
        // counts them; each moves into the slot after it, the last first, so every
        // target holds nothing live.
        unsafe {
            for j in (index..len).rev() {
                relocate_value(self.element(j + 1), self.element(j));
            }
        }
        let slot = self.element(index);
        // If building fails or panics, they move back.
        let shifted = ShiftedBack {
            deque: &mut *self.0,
            index,
            len,
        };
        // SAFETY: slot `index` is in the buffer, in place, and holds nothing.
        let built = unsafe { emplace_at(NonNull::new_unchecked(slot), src) };
        match built {
            Ok(_) => {
                core::mem::forget(shifted);
                self.publish_len(len + 1);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes element `index` once nothing counts it (`take` reads or drops it), the
    /// elements after it moving one place toward the front; None when out of bounds.
    fn remove_by<R>(&mut self, index: usize, take: impl FnOnce(*mut T) -> R) -> Option<R> {
        let len = self.len();
        if index >= len {
            return None;
        }
        self.publish_len(index);
        let r = take(self.element(index));
        // SAFETY: elements `index + 1..len` are initialised and nobody counts them; each
        // moves into the slot before it, the first first, so every target holds nothing
        // live (the removed element was taken).
        unsafe {
            for j in index + 1..len {
                relocate_value(self.element(j - 1), self.element(j));
            }
        }
        self.publish_len(len - 1);
        Some(r)
    }

    /// Removes and returns element `index`.
    pub(super) fn remove(&mut self, index: usize) -> Option<T> {
        // SAFETY: `remove_by` hands over an element nobody counts: read it out once.
        self.remove_by(index, |p| unsafe { p.read() })
    }

    /// Hands element `index` to `f` in place, then drops it and closes the gap.
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

    /// Makes room for `additional` more elements (amortised growth).
    pub(super) fn reserve(&mut self, additional: usize) -> Result<(), AllocError> {
        if self.capacity() - self.len() >= additional {
            return Ok(());
        }
        InPlace(&mut *self.0).grow_amortized(additional)
    }

    /// Grows to hold `additional` more, at least doubling the capacity (as std's), which
    /// leaves room after the end of a wrapped ring for the part that wrapped.
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
        let doubled = cap
            .checked_mul(2)
            .ok_or_else(AllocError::capacity_overflow)?;
        self.grow_to(required.max(doubled).max(min))
    }

    /// Moves the elements into room for `new_cap >= 2 * capacity` of them, so that the
    /// ring no longer wraps under the new capacity (see the module docs for the order).
    /// On error nothing changed.
    fn grow_to(&mut self, new_cap: usize) -> Result<(), AllocError> {
        let alloc = self.allocator()?;
        let (old_cap, head, len) = (self.capacity(), self.head as usize, self.len());
        // Elements `0..a` are in slots `head..head + a`; the `b` after them wrapped to `0..b`.
        let b = (head + len).saturating_sub(old_cap);
        let a = len - b;
        let old = self.buffer();
        if let Some(old) = old {
            // SAFETY: the buffer is this deque's, of capacity `old_cap`, in this mapping.
            match unsafe { buffer::grow_in_place(&alloc, old, old_cap, new_cap) } {
                Ok(cap) => {
                    // SAFETY: the buffer now holds `cap >= new_cap >= old_cap + b` slots;
                    // the copies right after the old end are counted once the capacity
                    // is published, the originals until then.
                    unsafe { relocate_values(old.as_ptr().add(old_cap), old.as_ptr(), b) };
                    point("deque: grown in place, the wrapped part copied after the end");
                    self.publish_cap(cap);
                    return Ok(());
                }
                Err(e) if matches!(e.kind(), AllocErrorKind::NoRoomInPlace { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let (new, cap) = buffer::allocate::<T>(&alloc, new_cap, self.owner())?;
        let new = new.as_ptr();
        point("deque: a new buffer allocated, not yet filled");
        if let Some(old) = old {
            let old = old.as_ptr();
            // SAFETY: the new buffer is fresh, aligned, with `new_cap >= head + len` slots.
            // Each element is copied to its slot under the new capacity, and the wrapped
            // ones also to their slots under the old capacity, which counts them until the
            // new one is published. Copying reads the old block and leaves it as it was,
            // so the wrapped elements may be copied twice: two copies, of which the header
            // counts exactly one at any instant. The copies under the new capacity are
            // made last: an element's relocation re-tags the blocks it owns, which must
            // end up naming the copy that stays.
            unsafe {
                relocate_values(new.add(head), old.add(head), a);
                relocate_values(new, old, b);
                relocate_values(new.add(old_cap), old, b);
            }
        }
        point("deque: a new buffer filled, not yet published");
        // SAFETY: the block is in the mapping that holds the deque (its allocator was
        // found from the deque's address), and the header stays where it is.
        unsafe { self.ptr.set_release(new) };
        point("deque: a new buffer published, its capacity not yet");
        self.publish_cap(cap);
        if let Some(old) = old {
            // SAFETY: the old buffer was this deque's, of capacity `old_cap`, and its
            // elements moved out.
            unsafe { buffer::free(&alloc, old, old_cap) };
        }
        Ok(())
    }

    /// Gives the capacity beyond the length back to the segment, in place: the elements
    /// first move to the start of the buffer (uncounted meanwhile), so it needs no memory.
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
        if len == 0 {
            self.publish_cap(0);
            self.publish_head(0);
            // SAFETY: the buffer is this deque's, of capacity `cap`, and holds no element.
            unsafe { buffer::free(&alloc, buffer, cap) };
            return Ok(());
        }
        let head = self.contiguous_at();
        if head != 0 {
            self.publish_len(0);
            // SAFETY: elements `head..head + len` are live and nothing counts them; they
            // move down to the start of the buffer (the ranges may overlap).
            unsafe { relocate_values(buffer.as_ptr(), buffer.as_ptr().add(head), len) };
            self.publish_head(0);
            self.publish_len(len);
        }
        self.publish_cap(len);
        // SAFETY: as above; the capacity already says `len`, which the block keeps.
        let cap = unsafe { buffer::shrink_in_place(&alloc, buffer, cap, len)? };
        self.publish_cap(cap);
        Ok(())
    }

    /// Moves the elements, if the ring wraps, so that they are one run of slots (which
    /// ends at the end of the buffer); its first slot.
    fn contiguous_at(&mut self) -> usize {
        let (cap, head, len) = (self.cap as usize, self.head as usize, self.len());
        if size_of::<T>() == 0 || head + len <= cap {
            return head;
        }
        // Elements `0..a` are in slots `head..cap`, the `b` after them in `0..b`, and the
        // `free` slots in between.
        let b = head + len - cap;
        let free = cap - len;
        let data = self.room();
        self.publish_len(0);
        // SAFETY: the `len` elements are live, in the buffer, and nothing counts them.
        // The wrapped ones move up against the others (slots `free..head`, overlapping
        // their old ones maybe), then the run `free..cap` rotates so that they come last.
        unsafe {
            relocate_values(data.add(free), data, b);
            point("deque: the wrapped part moved up, not yet rotated");
            rotate_left(data.add(free), len, b);
        }
        self.publish_head(free);
        self.publish_len(len);
        free
    }

    /// The elements as one slice, in place.
    pub(super) fn make_contiguous(mut self) -> ShmMut<'a, [T]> {
        let head = self.contiguous_at();
        let len = self.len();
        // SAFETY: elements `0..len` are the initialised slots `head..head + len` (or
        // zero-sized), borrowed with the deque; the guard moves nothing.
        unsafe {
            ShmMut::new(core::slice::from_raw_parts_mut(
                self.0.data().wrapping_add(head),
                len,
            ))
        }
    }

    /// Drops the elements from `len` on.
    pub(super) fn truncate(&mut self, len: usize) {
        self.0.drop_from(len);
    }

    /// Drops every element; the capacity stays and the next element goes to slot 0.
    pub(super) fn clear(&mut self) {
        self.0.drop_from(0);
        self.publish_head(0);
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
            Ok(()) => iter.try_for_each(|x| self.push_back(x)),
            Err(e) => Err(e),
        };
        if appended.is_err() {
            self.0.drop_from(before);
        }
        appended
    }

    /// Keeps the elements `keep` says yes to, in order, dropping the others in place.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let len = self.len();
        self.publish_len(0);
        let mut pass = Compacting {
            deque: &mut *self.0,
            read: 0,
            kept: 0,
            len,
        };
        while pass.read < len {
            let candidate = pass.deque.element(pass.read);
            // SAFETY: elements `read..len` are live and nothing counts them; the
            // candidate is only read by `keep`.
            if keep(unsafe { &*candidate }) {
                if pass.read != pass.kept {
                    // SAFETY: element `kept < read`'s slot holds nothing live; the
                    // candidate moves there.
                    unsafe { relocate_value(pass.deque.element(pass.kept), candidate) };
                }
                pass.kept += 1;
                pass.read += 1;
            } else {
                pass.read += 1;
                // SAFETY: a live element that nothing counts; counted as gone first.
                unsafe { candidate.drop_in_place() };
            }
        }
    }

    /// The guard of element `index`, None when out of bounds.
    pub(super) fn element_mut(self, index: usize) -> Option<ShmMut<'a, T>> {
        if index >= self.len() {
            return None;
        }
        // SAFETY: a live element, in place, borrowed with the deque; the guard moves
        // nothing.
        Some(unsafe { ShmMut::new(&mut *self.element(index)) })
    }

    /// The elements as two mutable slices, in place, front to back.
    pub(super) fn slices_mut(self) -> (&'a mut [T], &'a mut [T]) {
        let [(a, a_len), (b, b_len)] = self.runs(0, self.len());
        let data = self.0.data();
        // SAFETY: two disjoint runs of initialised elements in the buffer (or dangling
        // for zero-sized ones), borrowed mutably with the deque.
        unsafe {
            (
                core::slice::from_raw_parts_mut(data.wrapping_add(a), a_len),
                core::slice::from_raw_parts_mut(data.wrapping_add(b), b_len),
            )
        }
    }
}

/// A pass of [`InPlace::retain`]: when it ends (or `keep` panics), the elements not read
/// yet move down after the kept ones and the length counts both.
struct Compacting<'d, T: ShmSafe> {
    deque: &'d mut Deque<T>,
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
            for i in 0..rest {
                // SAFETY: element `read + i` is live and nothing counts it; the slot of
                // `kept + i < read + i` holds nothing live (moved or dropped already).
                unsafe {
                    relocate_value(
                        self.deque.element(self.kept + i),
                        self.deque.element(self.read + i),
                    )
                };
            }
        }
        self.deque.publish_len(self.kept + rest);
    }
}

/// Elements `index..len` moved one slot toward the back for an insertion: moved back and
/// counted again when dropped, unless forgotten once the new element is built (also when
/// building panics, so that no element is lost).
struct ShiftedBack<'d, T: ShmSafe> {
    deque: &'d mut Deque<T>,
    index: usize,
    len: usize,
}

impl<T: ShmSafe> Drop for ShiftedBack<'_, T> {
    fn drop(&mut self) {
        if crashing() {
            return;
        }
        let d = &mut *self.deque;
        for j in self.index..self.len {
            // SAFETY: element `j + 1` is live and nothing counts it; slot `j` holds
            // nothing (the value was not built, or `j`'s element moved back first).
            unsafe { relocate_value(d.element(j), d.element(j + 1)) };
        }
        d.publish_len(self.len);
    }
}

/// Rotates the `n` values at `base` left by `k` (`0 < k < n`): the value at `i + k` moves
/// to `i`, each one once, along the cycles of the permutation, with its relocation hook.
///
/// # Safety
/// `base..base + n` are initialised values of `T` that nothing else uses meanwhile.
unsafe fn rotate_left<T: ShmSafe>(base: *mut T, n: usize, k: usize) {
    let cycles = gcd(n, k);
    for start in 0..cycles {
        let mut held = MaybeUninit::<T>::uninit();
        // SAFETY: the caller's values; the one at `start` waits in `held` (its bytes, not
        // used as a value there) while the others of its cycle move up one step each,
        // then goes to the last place freed, relocated from where it was.
        unsafe {
            ptr::copy_nonoverlapping(base.add(start), held.as_mut_ptr(), 1);
            let mut hole = start;
            loop {
                let from = (hole + k) % n;
                if from == start {
                    break;
                }
                relocate_value(base.add(hole), base.add(from));
                point("deque: rotating, one value held aside");
                hole = from;
            }
            ptr::copy_nonoverlapping(held.as_ptr(), base.add(hole), 1);
            (*base.add(hole)).relocate(base.add(start).addr());
        }
    }
}

/// The greatest common divisor (`gcd(n, 0) = n`).
fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// [`ShmSafe::validate`] for a deque: the header is one its methods can rely on (the head
/// and the length within the capacity, the buffer a block of its own), and the elements it
/// counts are valid.
///
/// # Safety
/// As for [`ShmSafe::validate`].
pub(super) unsafe fn validate<T: ShmSafe>(value: *const Deque<T>) -> Result<(), Invalid> {
    use core::mem::offset_of;
    // SAFETY: the caller's contract: aligned, readable, initialised, not written meanwhile.
    let d = unsafe { &*value };
    let refuse = |expected, field, at| Err(Invalid::new(expected).within(field, at));
    if d.len > isize::MAX as u64 {
        return refuse(
            "a Deque length of at most isize::MAX",
            "len",
            offset_of!(Deque<T>, len),
        );
    }
    if d.head >= d.cap.max(1) {
        return refuse(
            "a Deque head inside its capacity",
            "head",
            offset_of!(Deque<T>, head),
        );
    }
    if size_of::<T>() == 0 {
        // Every element has the one possible bit pattern: checking one checks all.
        return match d.len {
            0 => Ok(()),
            // SAFETY: a zero-sized value is read from any aligned non-null address.
            _ => unsafe { T::validate(d.data()) }.map_err(|e| e.within("[0]", 0)),
        };
    }
    if d.len > d.cap {
        return refuse(
            "a Deque length of at most its capacity",
            "len",
            offset_of!(Deque<T>, len),
        );
    }
    if d.cap == 0 {
        return Ok(());
    }
    buffer::check(&d.ptr, d.cap).map_err(|e| e.within("ptr", 0))?;
    if T::ALL_BIT_PATTERNS_VALID {
        return Ok(());
    }
    block::contents(d, || {
        for i in 0..d.len() {
            // SAFETY: element `i < len <= cap` lies, aligned, in the mapping (checked just
            // above) and is one of the initialised ones.
            unsafe { T::validate(d.element(i)) }.map_err(|e| e.within(&format!("[{i}]"), 0))?;
        }
        Ok(())
    })
}
