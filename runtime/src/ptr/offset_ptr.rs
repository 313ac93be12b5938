//! [`OffsetPtr<T>`]: a pointer stored as `target − address of the pointer itself`, so that a
//! whole segment stays valid wherever it is mapped and however its bytes are copied.
//!
//! # Provenance
//!
//! An offset is an integer: the target's provenance cannot be recovered from it. A segment is
//! therefore an *exposed* allocation: setting a target exposes its provenance and
//! [`OffsetPtr::get`] builds its pointer with [`core::ptr::with_exposed_provenance_mut`];
//! registering a mapping exposes the whole mapping, which covers pointers that were set in
//! another process or in the bytes a mapping was copied from.
//!
//! # Where a pointer may aim
//!
//! A non-null `OffsetPtr` aims into the segment it lives in. Safe code keeps that: by value a
//! pointer is only ever null (the by-value setters are `unsafe`), and the in-place setters of
//! [`ShmMut<OffsetPtr<T>>`](ShmMut) check that the target is an aligned `T` inside the
//! registered mapping that holds the pointer.

use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::marker::PhantomData;
use core::ops::{AddAssign, SubAssign};
use core::ptr;

use crate::error::{Error, Result};
use crate::layout::{Invalid, ShmMut, ShmSafe};
use crate::registry;

/// A self-relative pointer to a `T` in the same segment (Boost's `offset_ptr`).
///
/// It stores `target − self` as an `isize`; null is the offset 1, as in Boost (so a pointer
/// to the byte right after its own first byte, i.e. inside itself, cannot be represented).
/// Because it is self-relative it only means something in place: by value there is only the
/// null pointer ([`null`](Self::null), [`Default`]); it is neither `Clone` nor `Copy`, and in a
/// segment it is reached mutably through [`ShmMut`] only, which never moves it and checks
/// every target it stores (see the `ptr` module docs).
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
        self.off = self.encode(target_addr, tag_bits);
    }

    /// The offset that aims this pointer, where it is, at `target_addr` (0 for null) with
    /// the given tag bits.
    #[inline(always)]
    fn encode(&self, target_addr: usize, tag_bits: isize) -> isize {
        let off = if target_addr == 0 {
            Self::NULL
        } else {
            (target_addr.wrapping_sub(self.self_addr()) as isize) & !Self::LOW_MASK
        };
        off | tag_bits
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

    /// Aims the pointer at `target` (null allowed), in place; the tag is kept. In a segment,
    /// use [`ShmMut::set_target`](ShmMut#method.set_target), which checks the target.
    ///
    /// `target` should be aligned for `T` as any pointer to a `T` must be: when `T` has tag
    /// bits, the low bits of a misaligned target are dropped (it is rounded down).
    ///
    /// # Safety
    /// The pointer is at the place it will be read from (it is not moved afterwards, except
    /// by [`relocate`](ShmSafe::relocate)), and `target` is null or lies in the same segment
    /// (or allocation) as the pointer: code holding an `OffsetPtr` in a segment relies on it
    /// aiming into that segment.
    #[inline]
    pub unsafe fn set(&mut self, target: *const T) {
        let tag_bits = self.off & Self::TAG_MASK;
        // Exposed so that `get` (here or at another mapping of these bytes) may use it.
        self.store(target.expose_provenance(), tag_bits);
    }

    /// [`set`](Self::set) with one Release store: what was written before (the target's
    /// contents) is in memory before the pointer is. Containers publish a new buffer with
    /// it, so a process killed at any instruction leaves the old target or a complete new one.
    ///
    /// # Safety
    /// As for [`set`](Self::set).
    #[inline]
    pub unsafe fn set_release(&mut self, target: *const T) {
        let off = self.encode(target.expose_provenance(), self.off & Self::TAG_MASK);
        // SAFETY: `off` is an aligned, live `isize` (the field) that `&mut self` lets
        // nothing else access meanwhile.
        unsafe { core::sync::atomic::AtomicIsize::from_ptr(&raw mut self.off) }
            .store(off, core::sync::atomic::Ordering::Release);
    }

    /// Makes this pointer aim where `other` aims, with `other`'s tag: assignment in place.
    ///
    /// # Safety
    /// As for [`set`](Self::set), with `other`'s target.
    #[inline]
    pub unsafe fn set_from(&mut self, other: &OffsetPtr<T>) {
        self.store(other.target_addr(), other.off & Self::TAG_MASK);
    }

    /// Swaps the targets (and tags) of two pointers, each recomputing its offset in place:
    /// the analog of Boost's `swap` (a byte swap would aim both at the wrong place).
    ///
    /// # Safety
    /// As for [`set`](Self::set), for both pointers, each with the other's target.
    #[inline]
    pub unsafe fn swap_targets(&mut self, other: &mut Self) {
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

    /// Checks what a container's [`validate`](ShmSafe::validate) must know before it reads
    /// `count` `T`s at this pointer's target: the pointer is not null, the target is aligned
    /// for `T`, and all `count` values lie in the registered mapping that holds the pointer
    /// itself. Bytes from elsewhere (a forged file) may aim anywhere; the fingerprint of an
    /// `OffsetPtr` says nothing about its target.
    pub fn validate_target(&self, count: usize) -> core::result::Result<(), Invalid> {
        const EXPECTED: &str =
            "a pointer to aligned values that lie inside the pointer's own segment";
        let target = self.target_addr();
        let fits = match (
            registry::lookup((self as *const Self).cast()),
            count.checked_mul(size_of::<T>()),
        ) {
            (Some(m), Some(bytes)) => {
                !self.is_null()
                    && target % align_of::<T>() == 0
                    && m.contains(ptr::without_provenance(target))
                    && m.base.addr() + m.len - target >= bytes
            }
            _ => false,
        };
        if fits {
            Ok(())
        } else {
            Err(Invalid::new(EXPECTED))
        }
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
/// for where the pointer is, so none moves it, and every target they store is checked to be
/// an aligned `T` inside the registered mapping that holds the pointer
/// ([`Error::InvalidAddress`] otherwise, and the pointer is left as it was).
impl<T> ShmMut<'_, OffsetPtr<T>> {
    /// The `&mut` for the in-place methods of [`OffsetPtr`].
    #[inline(always)]
    fn in_place(&mut self) -> &mut OffsetPtr<T> {
        // SAFETY: only `OffsetPtr`'s own `&mut self` methods are called on it, and they all
        // store an offset computed for the pointer's current address: none moves it.
        unsafe { self.as_mut().get_unchecked_mut() }
    }

    /// Whether the target address `target` (0 for null) may be stored in this pointer.
    fn check_target(&self, target: usize) -> Result<()> {
        if target == 0 {
            return Ok(());
        }
        let me = (&raw const **self).cast::<u8>();
        let reason = if target % align_of::<T>() != 0 {
            "is not aligned for the pointer's target type"
        } else if target == me.addr().wrapping_add(1) {
            "is the pointer's own second byte, which encodes null"
        } else {
            match registry::lookup(me) {
                None => "cannot be stored: the pointer is not in a segment of this process",
                Some(m)
                    if m.contains(ptr::without_provenance(target))
                        && m.base.addr() + m.len - target >= size_of::<T>() =>
                {
                    return Ok(())
                }
                Some(_) => "lies outside the segment the pointer is in",
            }
        };
        Err(Error::InvalidAddress {
            addr: target,
            reason: format!(
                "as the target of an OffsetPtr<{}>, {reason}",
                core::any::type_name::<T>()
            ),
        })
    }

    /// Aims the pointer at `target` (null allowed), keeping the tag.
    #[inline]
    #[expect(
        clippy::not_unsafe_ptr_arg_deref,
        reason = "`target` is stored as an offset, never dereferenced"
    )]
    pub fn set_target(&mut self, target: *const T) -> Result<()> {
        self.check_target(target.addr())?;
        // SAFETY: the pointer is in place (it is behind a `ShmMut`) and `target` was just
        // checked to lie in its segment.
        unsafe { self.in_place().set(target) };
        Ok(())
    }

    /// Aims the pointer where `other` aims, with `other`'s tag.
    #[inline]
    pub fn set_from(&mut self, other: &OffsetPtr<T>) -> Result<()> {
        self.check_target(other.target_addr())?;
        // SAFETY: as in `set_target`.
        unsafe { self.in_place().set_from(other) };
        Ok(())
    }

    /// Swaps the targets (and tags) of two pointers in place.
    #[inline]
    pub fn swap_targets(&mut self, other: &mut ShmMut<'_, OffsetPtr<T>>) -> Result<()> {
        self.check_target(other.target_addr())?;
        other.check_target(self.target_addr())?;
        // SAFETY: both are in place, each new target checked against its segment.
        unsafe { self.in_place().swap_targets(other.in_place()) };
        Ok(())
    }

    /// [`OffsetPtr::set_tag`] in place.
    #[inline]
    pub fn set_tag(&mut self, tag: usize) -> Result<()> {
        self.in_place().set_tag(tag)
    }

    /// Moves the target by `count` elements of `T`; null stays null. An error, and no
    /// change, when the new target would leave the segment.
    #[inline]
    pub fn offset_by(&mut self, count: isize) -> Result<()> {
        if self.is_null() {
            return Ok(());
        }
        let target = self
            .target_addr()
            .wrapping_add_signed(count.wrapping_mul(size_of::<T>() as isize));
        self.check_target(target)?;
        self.in_place().wrapping_offset(count);
        Ok(())
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

    /// `OffsetPtr::set` for these tests, whose pointers stay where they are and aim at
    /// memory of the same test, read only while it lives.
    fn aim<T>(p: &mut OffsetPtr<T>, target: *const T) {
        // SAFETY: see above; no pointer set here is moved afterwards.
        unsafe { p.set(target) }
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
        aim(&mut p, &target);
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
        aim(&mut p, ptr::null());
        assert!(p.is_null());
        assert_eq!(p.offset(), 1);
    }

    #[test]
    fn points_at_itself_with_offset_zero() {
        let mut p = OffsetPtr::<u64>::null();
        let me = addr_of(&p).cast::<u64>();
        aim(&mut p, me);
        assert_eq!(p.offset(), 0);
        assert_eq!(p.get(), me);
    }

    #[test]
    fn writes_through_the_target() {
        let mut target = 1u32;
        let t = ptr::addr_of_mut!(target);
        let mut p = OffsetPtr::<u32>::null();
        aim(&mut p, t);
        // SAFETY: `target` is live and only reached through this pointer meanwhile.
        unsafe { *p.get() = 5 };
        assert_eq!(target, 5);
    }

    #[test]
    fn equality_and_hash_by_target_wherever_the_pointers_are() {
        let targets = [1u64, 2];
        let mut a = OffsetPtr::<u64>::null();
        let mut b = OffsetPtr::<u64>::null();
        aim(&mut a, &targets[0]);
        aim(&mut b, &targets[0]);
        assert_ne!(
            a.offset(),
            b.offset(),
            "different places, different offsets"
        );
        assert_eq!(a, b);
        let mut seen = HashSet::new();
        seen.insert(&a);
        assert!(seen.contains(&b));
        aim(&mut b, &targets[1]);
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
        aim(&mut ptrs[0], &targets[2]);
        aim(&mut ptrs[1], &targets[0]);
        aim(&mut ptrs[2], &targets[1]);
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
        aim(&mut p, values.as_ptr());
        aim(&mut origin, values.as_ptr());
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
        aim(&mut a, &units[0]);
        aim(&mut b, &units[1]);
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
        aim(&mut p, &values[1]);
        let max = (1usize << OffsetPtr::<u64>::TAG_BITS) - 1;
        p.set_tag(max).unwrap();
        assert_eq!(p.tag(), max);
        assert_eq!(p.get(), addr_of(&values[1]), "get masks the tag");
        aim(&mut p, &values[2]);
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
        aim(&mut p, misaligned);
        assert!(!p.is_null());
        assert_eq!(p.get(), addr_of(&values[1]));
        assert_eq!(p.tag(), 0);
        // Without tag bits the exact address is kept.
        let bytes = [0u8; 4];
        let mut b = OffsetPtr::<u8>::null();
        aim(&mut b, &bytes[3]);
        assert_eq!(b.get(), addr_of(&bytes[3]));
    }

    #[test]
    fn set_from_and_swap_targets_recompute_offsets() {
        let targets = [1u64, 2];
        let mut a = OffsetPtr::<u64>::null();
        let mut b = OffsetPtr::<u64>::null();
        aim(&mut a, &targets[0]);
        a.set_tag(1).unwrap();
        // SAFETY: as in `aim`.
        unsafe { b.set_from(&a) };
        assert_eq!((b.get(), b.tag()), (addr_of(&targets[0]), 1));
        aim(&mut b, &targets[1]);
        b.set_tag(2).unwrap();
        // SAFETY: as in `aim`.
        unsafe { a.swap_targets(&mut b) };
        assert_eq!((a.get(), a.tag()), (addr_of(&targets[1]), 2));
        assert_eq!((b.get(), b.tag()), (addr_of(&targets[0]), 1));
        let mut null = OffsetPtr::<u64>::null();
        // SAFETY: as in `aim`.
        unsafe { a.swap_targets(&mut null) };
        assert!(a.is_null());
        assert_eq!(null.get(), addr_of(&targets[1]));
    }

    #[test]
    fn debug_prints_the_target() {
        let target = 3u64;
        let mut p = OffsetPtr::<u64>::null();
        aim(&mut p, &target);
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
            aim(slot.write(OffsetPtr::null()), target);
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

    /// Two pointers and their targets in one registered range, like a tiny segment.
    #[repr(C)]
    struct Pair {
        ptrs: [OffsetPtr<u64>; 2],
        targets: [u64; 3],
    }

    /// A registered `Pair` (boxed, so it stays put) and its two pointers as `ShmMut`s.
    fn with_pair(
        f: impl FnOnce(*mut Pair, ShmMut<'_, OffsetPtr<u64>>, ShmMut<'_, OffsetPtr<u64>>),
    ) {
        let pair = Box::into_raw(Box::new(Pair {
            ptrs: [OffsetPtr::null(), OffsetPtr::null()],
            targets: [5, 6, 7],
        }));
        let reg = crate::registry::register(pair.cast(), size_of::<Pair>(), true).unwrap();
        // SAFETY: the box is live until the end; the two pointers are distinct fields, null,
        // and stay in place; the test reads the rest through `pair` only.
        let (a, b) = unsafe {
            let [a, b] = &mut (*pair).ptrs;
            (ShmMut::new(a), ShmMut::new(b))
        };
        f(pair, a, b);
        drop(reg);
        // SAFETY: from `Box::into_raw` above, freed once.
        drop(unsafe { Box::from_raw(pair) });
    }

    #[test]
    fn shm_mut_offers_in_place_operations() {
        with_pair(|pair, mut a, mut b| {
            // SAFETY: field addresses of the live pair.
            let t = |i: usize| unsafe { (&raw mut (*pair).targets).cast::<u64>().add(i) };
            a.set_target(t(0)).unwrap();
            a.offset_by(2).unwrap();
            assert_eq!(a.get(), t(2));
            a.offset_by(-2).unwrap();
            assert_eq!(a.get(), t(0));
            a.set_tag(1).unwrap();
            assert!(a.set_tag(4).is_err());
            b.set_from(&a).unwrap();
            assert_eq!(b.tag(), 1);
            b.set_target(t(1)).unwrap();
            a.swap_targets(&mut b).unwrap();
            assert_eq!((a.get(), b.get()), (t(1), t(0)));
            b.set_target(ptr::null()).unwrap();
            assert!(b.is_null());
        });
    }

    /// By value a pointer is only ever null; in place, a target outside the registered
    /// mapping that holds the pointer is refused and leaves the pointer as it was.
    #[test]
    fn shm_mut_refuses_targets_outside_the_segment() {
        let outside = 9u64;
        let elsewhere = OffsetPtr::<u64>::null();
        with_pair(|pair, mut a, mut b| {
            // SAFETY: field address of the live pair.
            let last = unsafe { (&raw mut (*pair).targets[2]) };
            a.set_target(last).unwrap();
            let refused = |r: Result<()>| matches!(r, Err(Error::InvalidAddress { .. }));
            assert!(refused(b.set_target(&outside)));
            assert!(refused(
                b.set_target(last.cast::<u8>().wrapping_add(4).cast())
            ));
            assert!(refused(a.offset_by(1)), "one past the end of the segment");
            assert!(refused(a.offset_by(-100)));
            assert_eq!(a.get(), last, "a refused move changes nothing");
            assert!(b.is_null());
            // A pointer elsewhere (here: by value, so null) may be copied: null is fine.
            b.set_from(&elsewhere).unwrap();
        });
        // Outside any segment nothing non-null can be stored.
        let mut loose = OffsetPtr::<u64>::null();
        // SAFETY: `loose` stays where it is; it is null.
        let mut loose = unsafe { ShmMut::new(&mut loose) };
        assert!(matches!(
            loose.set_target(&outside),
            Err(Error::InvalidAddress { .. })
        ));
    }
}
