//! [`OffsetPtr<T>`]: a pointer stored as `target − address of the pointer itself`, so that a
//! whole segment stays valid wherever it is mapped and however its bytes are copied.
//!
//! # Provenance
//!
//! An offset is an integer: the target's provenance cannot be recovered from it. A segment is
//! therefore an *exposed* allocation: [`OffsetPtr::set`] exposes the target's provenance and
//! [`OffsetPtr::get`] builds its pointer with [`core::ptr::with_exposed_provenance_mut`];
//! registering a mapping ([`crate::registry::register`]) exposes the whole mapping, which covers
//! pointers that were set in another process or in the bytes a mapping was copied from.

use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::marker::PhantomData;
use core::ops::{AddAssign, SubAssign};
use core::ptr;

use crate::error::{Error, Result};
use crate::layout::{ShmMut, ShmSafe};

/// A self-relative pointer to a `T` in the same segment (Boost's `offset_ptr`).
///
/// It stores `target − self` as an `isize`; null is the offset 1, as in Boost (so a pointer
/// to the byte right after its own first byte, i.e. inside itself, cannot be represented).
/// Because it is self-relative it only means something in place: by value there is only the
/// null pointer ([`null`](Self::null), [`Default`]); it is neither `Clone` nor `Copy`, and in a
/// segment it is reached mutably through [`ShmMut`] only, which never moves it.
///
/// It can carry [`TAG_BITS`](Self::TAG_BITS) bits of tag in the low bits of the offset that the
/// target's alignment leaves free (like Boost's `pointer_plus_bits`): [`tag`](Self::tag),
/// [`set_tag`](Self::set_tag). Comparison, ordering and hashing are by target address only.
#[repr(transparent)]
pub struct OffsetPtr<T> {
    off: isize,
    /// Invariant in `T`, like `*mut T`; `Send`/`Sync` are implemented below.
    _target: PhantomData<*mut T>,
}

// SAFETY: safe code can only read and change the address an `OffsetPtr` holds; reaching the
// target takes `unsafe` (`get` + deref, `as_ref`), whose caller must synchronise as with any
// raw pointer. Like `&T`, it may then be sent or shared across threads when `T: Sync`: data in
// a segment is by nature reachable from other threads and processes.
unsafe impl<T: Sync> Send for OffsetPtr<T> {}
// SAFETY: as for `Send`; `&OffsetPtr` gives only the address.
unsafe impl<T: Sync> Sync for OffsetPtr<T> {}

impl<T> OffsetPtr<T> {
    /// The encoding of null, as in Boost.
    const NULL: isize = 1;

    /// How many tag bits fit: the target's alignment (capped at the pointer's own, since both
    /// addresses share those low zero bits) minus bit 0, which marks null as in Boost. On a
    /// 64-bit target: 0 for `u8`/`u16`, 1 for `u32`, 2 for `u64` and anything aligned to 8+.
    pub const TAG_BITS: u32 = {
        let align = if align_of::<T>() < align_of::<isize>() {
            align_of::<T>()
        } else {
            align_of::<isize>()
        };
        align.trailing_zeros().saturating_sub(1)
    };

    /// Where the tag lives in the offset: bits `1..=TAG_BITS`.
    const TAG_MASK: isize = ((1isize << Self::TAG_BITS) - 1) << 1;

    /// The bits an aligned target's offset has clear; `set` clears them for a misaligned one.
    const LOW_MASK: isize = if Self::TAG_BITS == 0 {
        0
    } else {
        Self::TAG_MASK | 1
    };

    /// The null pointer, the only one that can be made by value.
    #[inline(always)]
    pub const fn null() -> Self {
        OffsetPtr {
            off: Self::NULL,
            _target: PhantomData,
        }
    }

    /// The address of this pointer itself, which the offset is relative to.
    #[inline(always)]
    fn self_addr(&self) -> usize {
        (self as *const Self).addr()
    }

    /// The offset with the tag masked out (`NULL` for null).
    #[inline(always)]
    fn untagged(&self) -> isize {
        self.off & !Self::TAG_MASK
    }

    /// The target's address, 0 for null.
    #[inline(always)]
    fn target_addr(&self) -> usize {
        let off = self.untagged();
        if off == Self::NULL {
            0
        } else {
            self.self_addr().wrapping_add_signed(off)
        }
    }

    /// Stores a target address (0 for null) with the given tag bits, in place.
    #[inline(always)]
    fn store(&mut self, target_addr: usize, tag_bits: isize) {
        let off = if target_addr == 0 {
            Self::NULL
        } else {
            (target_addr.wrapping_sub(self.self_addr()) as isize) & !Self::LOW_MASK
        };
        self.off = off | tag_bits;
    }

    /// Whether this is the null pointer (whatever its tag).
    #[inline(always)]
    pub fn is_null(&self) -> bool {
        self.untagged() == Self::NULL
    }

    /// The target (without the tag), null for null: one addition to the own address.
    #[inline]
    pub fn get(&self) -> *mut T {
        let off = self.untagged();
        if off == Self::NULL {
            ptr::null_mut()
        } else {
            ptr::with_exposed_provenance_mut(self.self_addr().wrapping_add_signed(off))
        }
    }

    /// The target cast to another type, e.g. to read a header of another type at that address.
    #[inline]
    pub fn as_ptr_of<U>(&self) -> *mut U {
        self.get().cast()
    }

    /// Aims the pointer at `target` (null allowed), in place; the tag is kept.
    ///
    /// `target` should be aligned for `T` as any pointer to a `T` must be: when `T` has tag
    /// bits, the low bits of a misaligned target are dropped (it is rounded down).
    #[inline]
    pub fn set(&mut self, target: *const T) {
        let tag_bits = self.off & Self::TAG_MASK;
        // Exposed so that `get` (here or at another mapping of these bytes) may use it.
        self.store(target.expose_provenance(), tag_bits);
    }

    /// Makes this pointer aim where `other` aims, with `other`'s tag: assignment in place.
    #[inline]
    pub fn set_from(&mut self, other: &OffsetPtr<T>) {
        self.store(other.target_addr(), other.off & Self::TAG_MASK);
    }

    /// Swaps the targets (and tags) of two pointers, each recomputing its offset in place:
    /// the analog of Boost's `swap` (a byte swap would aim both at the wrong place).
    #[inline]
    pub fn swap_targets(&mut self, other: &mut Self) {
        let (mine, my_tag) = (self.target_addr(), self.off & Self::TAG_MASK);
        self.store(other.target_addr(), other.off & Self::TAG_MASK);
        other.store(mine, my_tag);
    }

    /// A shared reference to the target, `None` for null.
    ///
    /// # Safety
    ///
    /// As for `<*const T>::as_ref`: a non-null target must be a live,
    /// initialised `T`, not mutated for `'a` except through `UnsafeCell`, whose memory stays
    /// mapped for `'a`.
    #[inline]
    pub unsafe fn as_ref<'a>(&self) -> Option<&'a T> {
        // SAFETY: forwarded to the caller, who vouches for the target and the lifetime.
        unsafe { self.get().as_ref() }
    }

    /// The raw stored offset (tag bits and null encoding included), for validating bytes read
    /// from an untrusted segment against its mapping.
    #[inline(always)]
    pub fn offset(&self) -> isize {
        self.off
    }

    /// The tag, in `0..1 << TAG_BITS`.
    #[inline(always)]
    pub fn tag(&self) -> usize {
        ((self.off & Self::TAG_MASK) >> 1) as usize
    }

    /// Sets the tag, keeping the target; an error if `tag` needs more than
    /// [`TAG_BITS`](Self::TAG_BITS) bits.
    pub fn set_tag(&mut self, tag: usize) -> Result<()> {
        if tag >> Self::TAG_BITS != 0 {
            return Err(Error::TagTooLarge {
                tag,
                bits: Self::TAG_BITS,
                ty: core::any::type_name::<T>(),
            });
        }
        self.off = self.untagged() | ((tag as isize) << 1);
        Ok(())
    }

    /// Moves the target by `count` elements of `T` (wrapping, like `<*const T>::wrapping_offset`),
    /// in place. Null stays null: an `OffsetPtr` cannot hold an absolute address.
    #[inline]
    pub fn wrapping_offset(&mut self, count: isize) {
        if !self.is_null() {
            self.off = self
                .off
                .wrapping_add(count.wrapping_mul(size_of::<T>() as isize));
        }
    }

    /// The distance from `origin`'s target to this one's, in elements of `T` (rounded toward
    /// zero; null counts as address 0; 0 for zero-sized `T`).
    #[inline]
    pub fn offset_from(&self, origin: &Self) -> isize {
        let bytes = (self.target_addr() as isize).wrapping_sub(origin.target_addr() as isize);
        match size_of::<T>() {
            0 => 0,
            size => bytes / size as isize,
        }
    }
}

impl<T> AddAssign<usize> for OffsetPtr<T> {
    /// Moves the target `count` elements forward, in place (see
    /// [`wrapping_offset`](OffsetPtr::wrapping_offset)).
    #[inline]
    fn add_assign(&mut self, count: usize) {
        self.wrapping_offset(count as isize);
    }
}

impl<T> SubAssign<usize> for OffsetPtr<T> {
    /// Moves the target `count` elements backward, in place.
    #[inline]
    fn sub_assign(&mut self, count: usize) {
        self.wrapping_offset((count as isize).wrapping_neg());
    }
}

impl<T> Default for OffsetPtr<T> {
    /// The null pointer.
    #[inline(always)]
    fn default() -> Self {
        Self::null()
    }
}

impl<T> PartialEq for OffsetPtr<T> {
    /// Equal when they aim at the same address, wherever the two pointers are.
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.target_addr() == other.target_addr()
    }
}

impl<T> Eq for OffsetPtr<T> {}

impl<T> PartialOrd for OffsetPtr<T> {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for OffsetPtr<T> {
    /// By target address; null first.
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        self.target_addr().cmp(&other.target_addr())
    }
}

impl<T> Hash for OffsetPtr<T> {
    /// The target address, consistent with `Eq`.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.target_addr().hash(state);
    }
}

impl<T> fmt::Debug for OffsetPtr<T> {
    /// The target address (what the pointer means), and the tag when there is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut tuple = f.debug_tuple("OffsetPtr");
        tuple.field(&ptr::without_provenance::<T>(self.target_addr()));
        if self.tag() != 0 {
            tuple.field(&format_args!("tag = {}", self.tag()));
        }
        tuple.finish()
    }
}

// SAFETY: an offset is position-dependent but process-independent: it points into the same
// segment, and `relocate` re-aims it after a move. It is not `PositionIndependent`.
unsafe impl<T: ShmSafe> ShmSafe for OffsetPtr<T> {
    /// The target's pointee fingerprint: its type, cut at a derived type's name (a node may
    /// point at its own type, and a fingerprint cannot contain itself).
    const LAYOUT_FINGERPRINT: u64 =
        crate::layout::compound_fingerprint("OffsetPtr", &[T::POINTEE_FINGERPRINT]);
    /// Any offset is a value; where it leads is checked where it is followed.
    const ALL_BIT_PATTERNS_VALID: bool = true;
    /// Re-aims a moved pointer at its old absolute target (null stays null; the tag is kept).
    #[inline]
    unsafe fn relocate(&mut self, moved_from: usize) {
        let off = self.untagged();
        if off != Self::NULL {
            self.store(
                moved_from.wrapping_add_signed(off),
                self.off & Self::TAG_MASK,
            );
        }
    }
}

/// In-place operations on a pointer that lives in a segment: all of them recompute the offset
/// for where the pointer is, so none moves it.
impl<T> ShmMut<'_, OffsetPtr<T>> {
    /// The `&mut` for the in-place methods of [`OffsetPtr`].
    #[inline(always)]
    fn in_place(&mut self) -> &mut OffsetPtr<T> {
        // SAFETY: only `OffsetPtr`'s own `&mut self` methods are called on it, and they all
        // store an offset computed for the pointer's current address: none moves it.
        unsafe { self.as_mut().get_unchecked_mut() }
    }

    /// [`OffsetPtr::set`] in place.
    #[inline]
    pub fn set_target(&mut self, target: *const T) {
        self.in_place().set(target);
    }

    /// [`OffsetPtr::set_from`] in place.
    #[inline]
    pub fn set_from(&mut self, other: &OffsetPtr<T>) {
        self.in_place().set_from(other);
    }

    /// [`OffsetPtr::swap_targets`] in place.
    #[inline]
    pub fn swap_targets(&mut self, other: &mut ShmMut<'_, OffsetPtr<T>>) {
        self.in_place().swap_targets(other.in_place());
    }

    /// [`OffsetPtr::set_tag`] in place.
    #[inline]
    pub fn set_tag(&mut self, tag: usize) -> Result<()> {
        self.in_place().set_tag(tag)
    }

    /// [`OffsetPtr::wrapping_offset`] in place.
    #[inline]
    pub fn wrapping_offset(&mut self, count: isize) {
        self.in_place().wrapping_offset(count);
    }
}

impl<T> AddAssign<usize> for ShmMut<'_, OffsetPtr<T>> {
    #[inline]
    fn add_assign(&mut self, count: usize) {
        *self.in_place() += count;
    }
}

impl<T> SubAssign<usize> for ShmMut<'_, OffsetPtr<T>> {
    #[inline]
    fn sub_assign(&mut self, count: usize) {
        *self.in_place() -= count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ptr::{relocate_value, relocate_values};
    use core::mem::MaybeUninit;
    use std::collections::HashSet;

    fn addr_of<T>(r: &T) -> *mut T {
        r as *const T as *mut T
    }

    #[test]
    fn null_by_default_and_by_value() {
        let p = OffsetPtr::<u64>::null();
        assert!(p.is_null());
        assert!(p.get().is_null());
        assert_eq!(p.offset(), 1);
        assert!(OffsetPtr::<u8>::default().is_null());
        // SAFETY: null gives `None` without dereferencing.
        assert!(unsafe { p.as_ref() }.is_none());
        const CONST_NULL: OffsetPtr<u32> = OffsetPtr::null();
        assert!(CONST_NULL.is_null());
    }

    #[test]
    fn set_get_and_back_to_null() {
        let target = 42u64;
        let mut p = OffsetPtr::<u64>::null();
        p.set(&target);
        assert!(!p.is_null());
        assert_eq!(p.get(), addr_of(&target));
        assert_eq!(
            p.offset(),
            (addr_of(&target) as isize) - (&p as *const _ as isize)
        );
        // SAFETY: `target` is live and not mutated.
        assert_eq!(unsafe { p.as_ref() }, Some(&42));
        // SAFETY: as above.
        assert_eq!(unsafe { *p.get() }, 42);
        p.set(ptr::null());
        assert!(p.is_null());
        assert_eq!(p.offset(), 1);
    }

    #[test]
    fn points_at_itself_with_offset_zero() {
        let mut p = OffsetPtr::<u64>::null();
        let me = addr_of(&p).cast::<u64>();
        p.set(me);
        assert_eq!(p.offset(), 0);
        assert_eq!(p.get(), me);
    }

    #[test]
    fn writes_through_the_target() {
        let mut target = 1u32;
        let t = ptr::addr_of_mut!(target);
        let mut p = OffsetPtr::<u32>::null();
        p.set(t);
        // SAFETY: `target` is live and only reached through this pointer meanwhile.
        unsafe { *p.get() = 5 };
        assert_eq!(target, 5);
    }

    #[test]
    fn equality_and_hash_by_target_wherever_the_pointers_are() {
        let targets = [1u64, 2];
        let mut a = OffsetPtr::<u64>::null();
        let mut b = OffsetPtr::<u64>::null();
        a.set(&targets[0]);
        b.set(&targets[0]);
        assert_ne!(
            a.offset(),
            b.offset(),
            "different places, different offsets"
        );
        assert_eq!(a, b);
        let mut seen = HashSet::new();
        seen.insert(&a);
        assert!(seen.contains(&b));
        b.set(&targets[1]);
        assert_ne!(a, b);
        assert!(!seen.contains(&b));
        assert_eq!(OffsetPtr::<u64>::null(), OffsetPtr::<u64>::null());
    }

    #[test]
    fn ordering_by_target_address_null_first() {
        let targets = [0u32; 3];
        let mut ptrs = [
            OffsetPtr::<u32>::null(),
            OffsetPtr::null(),
            OffsetPtr::null(),
            OffsetPtr::null(),
        ];
        // Aim earlier pointers at later targets, so that offsets and targets disagree.
        ptrs[0].set(&targets[2]);
        ptrs[1].set(&targets[0]);
        ptrs[2].set(&targets[1]);
        assert!(ptrs[1] < ptrs[2] && ptrs[2] < ptrs[0]);
        assert!(ptrs[3] < ptrs[1]);
        assert_eq!(ptrs[0].cmp(&ptrs[0]), Ordering::Equal);
        assert_eq!(ptrs[1].partial_cmp(&ptrs[0]), Some(Ordering::Less));
    }

    #[test]
    fn arithmetic_in_elements() {
        let values = [10u64, 11, 12, 13, 14];
        let mut p = OffsetPtr::<u64>::null();
        let mut origin = OffsetPtr::<u64>::null();
        // The whole array's provenance: element 0's reference would cover element 0 only.
        p.set(values.as_ptr());
        origin.set(values.as_ptr());
        p += 3;
        assert_eq!(p.get(), addr_of(&values[3]));
        // SAFETY: in bounds of `values`.
        assert_eq!(unsafe { *p.get() }, 13);
        assert_eq!(p.offset_from(&origin), 3);
        assert_eq!(origin.offset_from(&p), -3);
        p -= 2;
        assert_eq!(p.get(), addr_of(&values[1]));
        p.wrapping_offset(3);
        assert_eq!(p.get(), addr_of(&values[4]));
        p.wrapping_offset(-4);
        assert_eq!(p, origin);

        let mut null = OffsetPtr::<u64>::null();
        null += 5;
        assert!(null.is_null(), "null stays null");
    }

    #[test]
    fn offset_from_zero_sized_is_zero() {
        let units = [(), ()];
        let mut a = OffsetPtr::<()>::null();
        let mut b = OffsetPtr::<()>::null();
        a.set(&units[0]);
        b.set(&units[1]);
        a += 7;
        assert_eq!(a.offset_from(&b), 0);
    }

    #[test]
    fn tag_bits_follow_alignment() {
        assert_eq!(OffsetPtr::<u8>::TAG_BITS, 0);
        assert_eq!(OffsetPtr::<u16>::TAG_BITS, 0);
        assert_eq!(OffsetPtr::<u32>::TAG_BITS, 1);
        #[cfg(target_pointer_width = "64")]
        {
            assert_eq!(OffsetPtr::<u64>::TAG_BITS, 2);
            assert_eq!(
                OffsetPtr::<u128>::TAG_BITS,
                2,
                "capped by the pointer's alignment"
            );
        }
    }

    #[test]
    fn tags_are_kept_apart_from_the_target() {
        let values = [1u64, 2, 3];
        let mut p = OffsetPtr::<u64>::null();
        p.set(&values[1]);
        let max = (1usize << OffsetPtr::<u64>::TAG_BITS) - 1;
        p.set_tag(max).unwrap();
        assert_eq!(p.tag(), max);
        assert_eq!(p.get(), addr_of(&values[1]), "get masks the tag");
        p.set(&values[2]);
        assert_eq!(p.tag(), max, "set keeps the tag");
        p -= 2;
        assert_eq!((p.get(), p.tag()), (addr_of(&values[0]), max));
        p.set_tag(0).unwrap();
        assert_eq!((p.get(), p.tag()), (addr_of(&values[0]), 0));

        let err = p.set_tag(max + 1).unwrap_err();
        assert!(
            matches!(err, Error::TagTooLarge { tag, .. } if tag == max + 1),
            "{err}"
        );
        assert_eq!(p.tag(), 0, "a rejected tag changes nothing");
        assert!(OffsetPtr::<u8>::null().set_tag(1).is_err());
    }

    #[test]
    fn null_with_a_tag_is_still_null() {
        let mut p = OffsetPtr::<u64>::null();
        p.set_tag(1).unwrap();
        assert!(p.is_null());
        assert!(p.get().is_null());
        assert_eq!(p.tag(), 1);
        assert_eq!(p, OffsetPtr::null(), "equality ignores the tag");
        // Relocating null with a tag keeps both.
        let mut moved = MaybeUninit::<OffsetPtr<u64>>::uninit();
        // SAFETY: `p` is valid and aligned, `moved` is valid for writes and disjoint.
        let moved = unsafe {
            relocate_value(moved.as_mut_ptr(), &p);
            moved.assume_init()
        };
        assert!(moved.is_null());
        assert_eq!(moved.tag(), 1);
    }

    #[test]
    fn misaligned_target_is_rounded_down_when_t_has_tag_bits() {
        let values = [0u64; 2];
        let misaligned = addr_of(&values[1]).wrapping_byte_add(3);
        let mut p = OffsetPtr::<u64>::null();
        p.set(misaligned);
        assert!(!p.is_null());
        assert_eq!(p.get(), addr_of(&values[1]));
        assert_eq!(p.tag(), 0);
        // Without tag bits the exact address is kept.
        let bytes = [0u8; 4];
        let mut b = OffsetPtr::<u8>::null();
        b.set(&bytes[3]);
        assert_eq!(b.get(), addr_of(&bytes[3]));
    }

    #[test]
    fn set_from_and_swap_targets_recompute_offsets() {
        let targets = [1u64, 2];
        let mut a = OffsetPtr::<u64>::null();
        let mut b = OffsetPtr::<u64>::null();
        a.set(&targets[0]);
        a.set_tag(1).unwrap();
        b.set_from(&a);
        assert_eq!((b.get(), b.tag()), (addr_of(&targets[0]), 1));
        b.set(&targets[1]);
        b.set_tag(2).unwrap();
        a.swap_targets(&mut b);
        assert_eq!((a.get(), a.tag()), (addr_of(&targets[1]), 2));
        assert_eq!((b.get(), b.tag()), (addr_of(&targets[0]), 1));
        let mut null = OffsetPtr::<u64>::null();
        a.swap_targets(&mut null);
        assert!(a.is_null());
        assert_eq!(null.get(), addr_of(&targets[1]));
    }

    #[test]
    fn debug_prints_the_target() {
        let target = 3u64;
        let mut p = OffsetPtr::<u64>::null();
        p.set(&target);
        assert_eq!(
            format!("{p:?}"),
            format!("OffsetPtr({:?})", addr_of(&target))
        );
        p.set_tag(1).unwrap();
        assert_eq!(
            format!("{p:?}"),
            format!("OffsetPtr({:?}, tag = 1)", addr_of(&target))
        );
        assert_eq!(
            format!("{:?}", OffsetPtr::<u8>::null()),
            format!("OffsetPtr({:?})", ptr::null::<u8>())
        );
    }

    /// A node as the derive will implement it: a value and a pointer.
    #[repr(C)]
    struct Node {
        value: u64,
        next: OffsetPtr<u64>,
    }
    // SAFETY: plain data plus an `OffsetPtr`, relocated from its own old address.
    unsafe impl ShmSafe for Node {
        unsafe fn relocate(&mut self, moved_from: usize) {
            let field = moved_from + core::mem::offset_of!(Node, next);
            // SAFETY: the field moved with the node; the caller's contract carries over.
            unsafe { self.next.relocate(field) }
        }
    }

    #[test]
    fn relocation_after_a_byte_copy_keeps_the_target() {
        let third = 99u64;
        let mut old = MaybeUninit::<Node>::uninit();
        let mut new = MaybeUninit::<Node>::uninit();
        let old_ptr = old.as_mut_ptr();
        // SAFETY: `old` is valid for writes; the pointer is set in place after the write.
        unsafe {
            old_ptr.write(Node {
                value: 1,
                next: OffsetPtr::null(),
            });
            (*old_ptr).next.set(&third);
            ptr::copy_nonoverlapping(old_ptr, new.as_mut_ptr(), 1);
        }
        // SAFETY: `new` was fully written by the copy.
        let new = unsafe { new.assume_init_mut() };
        assert_ne!(
            new.next.get(),
            addr_of(&third),
            "a plain copy aims elsewhere"
        );
        // SAFETY: `new` holds exactly the bytes that were at `old_ptr`.
        unsafe { new.relocate(old_ptr.addr()) };
        assert_eq!(new.next.get(), addr_of(&third));
        // SAFETY: `third` is live.
        assert_eq!(unsafe { *new.next.get() }, 99);
    }

    #[test]
    fn relocate_values_handles_overlap_like_a_vec_insert() {
        let targets = [10u64, 20, 30];
        let mut slots: [MaybeUninit<OffsetPtr<u64>>; 4] = [const { MaybeUninit::uninit() }; 4];
        for (slot, target) in slots.iter_mut().zip(&targets) {
            slot.write(OffsetPtr::null()).set(target);
        }
        let base = slots.as_mut_ptr().cast::<OffsetPtr<u64>>();
        // SAFETY: elements 0..3 are initialised; shifting them to 1..4 stays in the array.
        unsafe { relocate_values(base.add(1), base, 3) };
        for (i, target) in targets.iter().enumerate() {
            // SAFETY: element `i + 1` was written by the shift; read through `base`, which
            // stays the one pointer used for the array meanwhile.
            assert_eq!(unsafe { (*base.add(i + 1)).get() }, addr_of(target));
        }
        // And back down, overlapping the other way.
        // SAFETY: elements 1..4 are initialised; shifting them to 0..3 stays in the array.
        unsafe { relocate_values(base, base.add(1), 3) };
        for (i, target) in targets.iter().enumerate() {
            // SAFETY: element `i` was written by the shift.
            assert_eq!(unsafe { (*base.add(i)).get() }, addr_of(target));
        }
    }

    /// Two `OffsetPtr`s and their targets inside one buffer, like a tiny segment.
    #[repr(C)]
    struct Tiny {
        to_value: OffsetPtr<u64>,
        to_array: OffsetPtr<u32>,
        value: u64,
        array: [u32; 4],
    }

    #[test]
    fn a_whole_copied_buffer_points_into_the_copy_without_relocation() {
        let mut a = Box::new(MaybeUninit::<Tiny>::uninit());
        let a_ptr = a.as_mut_ptr();
        // SAFETY: `a` is valid for writes; pointers are set in place after the write.
        unsafe {
            a_ptr.write(Tiny {
                to_value: OffsetPtr::null(),
                to_array: OffsetPtr::null(),
                value: 7,
                array: [1, 2, 3, 4],
            });
            (*a_ptr).to_value.set(ptr::addr_of!((*a_ptr).value));
            (*a_ptr).to_array.set(ptr::addr_of!((*a_ptr).array[2]));
        }
        let mut b = Box::new(MaybeUninit::<Tiny>::uninit());
        let b_ptr = b.as_mut_ptr();
        // SAFETY: distinct boxes, both valid; `Tiny` is copied whole, like a mapping.
        unsafe { ptr::copy_nonoverlapping(a_ptr, b_ptr, 1) };
        // The copy is a segment of its own: registering it exposes it, as for any mapping.
        let _reg = crate::registry::register(b_ptr.cast(), size_of::<Tiny>(), true).unwrap();
        // SAFETY: `b` was fully initialised by the copy.
        let b_ref = unsafe { &*b_ptr };
        // SAFETY: as above; taking field addresses only.
        let (b_value, b_elem) = unsafe {
            (
                ptr::addr_of_mut!((*b_ptr).value),
                ptr::addr_of_mut!((*b_ptr).array[2]),
            )
        };
        assert_eq!(b_ref.to_value.get(), b_value);
        assert_eq!(b_ref.to_array.get(), b_elem);
        // SAFETY: both targets are inside the initialised copy.
        unsafe {
            assert_eq!(*b_ref.to_value.get(), 7);
            assert_eq!(*b_ref.to_array.get(), 3);
        }
        drop(a);
    }

    #[test]
    fn shm_mut_offers_in_place_operations() {
        let targets = [5u64, 6, 7];
        let mut pair = [OffsetPtr::<u64>::null(), OffsetPtr::null()];
        let [first, second] = &mut pair;
        // SAFETY: both pointers stay in `pair`; they are null.
        let (mut a, mut b) = unsafe { (ShmMut::new(first), ShmMut::new(second)) };
        a.set_target(&targets[0]);
        a += 2;
        assert_eq!(a.get(), addr_of(&targets[2]));
        a -= 1;
        a.wrapping_offset(-1);
        assert_eq!(a.get(), addr_of(&targets[0]));
        a.set_tag(1).unwrap();
        assert!(a.set_tag(4).is_err());
        b.set_from(&a);
        assert_eq!(b.tag(), 1);
        b.set_target(&targets[1]);
        a.swap_targets(&mut b);
        assert_eq!(
            (a.get(), b.get()),
            (addr_of(&targets[1]), addr_of(&targets[0]))
        );
        assert_eq!(pair[0].get(), addr_of(&targets[1]));
        assert_eq!(pair[1].get(), addr_of(&targets[0]));
    }
}
