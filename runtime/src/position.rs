//! What may live in a segment, and how a value that lives there may be mutated.
//!
//! # Why a guard instead of `&mut T`
//!
//! A segment holds [`OffsetPtr`](crate::OffsetPtr)s: `target − address of the pointer itself`.
//! That is what keeps a whole segment valid wherever it is mapped, but it also means a single
//! pointer is only right *at the address where it was set*. Rust moves are plain byte copies
//! with no hook: given two `&mut OffsetPtr<T>`, safe code could `mem::swap` them, and each would
//! then point `distance between the two pointers` bytes away from its target — a pointer to the
//! wrong data, without a line of `unsafe`.
//!
//! So the model has three parts:
//!
//! - [`ShmSafe`]: the type may live in a segment at all (no references, no process-local
//!   pointers, no std heap types). Its [`relocate`](ShmSafe::relocate) hook lets *library*
//!   code move a value (a `Vec` that reallocates) and then fix its self-relative pointers.
//! - [`PositionIndependent`]: a `ShmSafe` type whose bytes mean the same wherever they are
//!   copied — plain data. Only such types may be handed out as `&mut T` or moved by safe code.
//!   It is an `unsafe` marker trait implemented by the derive, not an auto trait, so no one
//!   gets it by accident.
//! - [`ShmMut<'a, T>`]: the guard for mutable access to a value that lives in a segment, in the
//!   spirit of `Pin<&mut T>` and rkyv's `Seal`. It gives `&T` always, `&mut T` only when
//!   `T: PositionIndependent`, and otherwise in-place operations and field projections that
//!   never move the value.
//!
//! ```
//! use shmkit_runtime::ShmMut;
//! let mut hits = 0u64;
//! let mut guard = ShmMut::from_mut(&mut hits);
//! *guard.as_mut().get_mut() += 1; // plain data: `&mut` is fine
//! assert_eq!(*guard, 1);
//! ```
//!
//! A position-dependent value cannot be reached mutably, so it cannot be swapped or replaced:
//!
//! ```compile_fail,E0277
//! use shmkit_runtime::{OffsetPtr, ShmMut};
//! fn escape(p: ShmMut<'_, OffsetPtr<u8>>) -> &mut OffsetPtr<u8> {
//!     p.get_mut() // error: `OffsetPtr<u8>` is position-dependent
//! }
//! ```
//!
//! ```compile_fail,E0596
//! use shmkit_runtime::{OffsetPtr, ShmMut};
//! fn swap(mut a: ShmMut<'_, OffsetPtr<u8>>, mut b: ShmMut<'_, OffsetPtr<u8>>) {
//!     std::mem::swap(&mut *a, &mut *b); // error: ShmMut is not DerefMut
//! }
//! ```
//!
//! Swapping the *guards* is harmless (it swaps two references, the values stay in place);
//! what a pointer points at is changed in place with
//! [`swap_targets`](ShmMut::swap_targets) or [`set_target`](ShmMut::set_target).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

use core::cmp::Reverse;
use core::fmt;
use core::marker::PhantomData;
use core::mem::{offset_of, MaybeUninit};
use core::num::{
    NonZeroI128, NonZeroI16, NonZeroI32, NonZeroI64, NonZeroI8, NonZeroIsize, NonZeroU128,
    NonZeroU16, NonZeroU32, NonZeroU64, NonZeroU8, NonZeroUsize, Wrapping,
};
use core::ops::{Deref, DerefMut};

/// A type that may live in a segment.
///
/// `usize`/`isize` qualify, but their size differs between 32- and 64-bit processes, so a
/// segment holding them is not shareable between the two.
///
/// # Safety
///
/// Implement it (or rather `#[derive(ShmSafe)]` it) only for a type that
/// - holds no references, raw pointers, function pointers, trait objects or other
///   process-local values, only plain data, atomics and [`OffsetPtr`](crate::OffsetPtr)s (directly or
///   through segment containers) that point into the same segment;
/// - has no drop glue other than that of the segment containers;
/// - implements [`relocate`](ShmSafe::relocate) so that it fixes every self-relative pointer
///   it holds, calling `relocate` on each field with that field's old address.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot live in shared memory",
    label = "not ShmSafe: it may hold references, process-local pointers or std heap data",
    note = "derive it with #[derive(ShmSafe)], or use the segment containers (shmkit Vec/String/Box...) and OffsetPtr instead of std heap types, references or raw pointers"
)]
pub unsafe trait ShmSafe: Sized {
    /// The relocation hook: library code calls it right after it has byte-copied a value from
    /// address `moved_from` to `self`, so that self-relative pointers aim at their old targets
    /// again. Plain data does nothing (the default), which compiles to nothing.
    ///
    /// A pointer that aims inside the moved value's own bytes is the implementing type's own
    /// business: an `OffsetPtr` alone keeps aiming at the old absolute address.
    ///
    /// # Safety
    ///
    /// `self` must hold exactly the bytes that were at `moved_from` (an address only: those old
    /// bytes may since have been overwritten and are not read), with nothing having read
    /// `self`'s pointers in between, and `relocate` must be called once per move.
    #[inline(always)]
    unsafe fn relocate(&mut self, moved_from: usize) {
        let _ = moved_from;
    }

    /// A stable 64-bit fingerprint of the type, stored with every object constructed in a
    /// segment and checked by every lookup, so that finding an object as another type is
    /// an error. The default hashes (FNV-1a) the type's name, size and alignment; the
    /// derive overrides it with a hash of the layout.
    /// The layout fingerprint, computed at compile time (see [`crate::schema`]): what
    /// `#[derive(ShmSafe)]` hashes for a field of this type. The default covers only the
    /// size and alignment; the runtime's impls and the derive say more.
    const LAYOUT_FINGERPRINT: u64 =
        crate::schema::leaf_fingerprint("?", size_of::<Self>(), align_of::<Self>());

    /// The layout description of a derived type (None for primitives and manual impls).
    const SCHEMA: Option<&'static crate::schema::Schema> = None;

    #[inline]
    fn type_fingerprint() -> u64 {
        type_fingerprint_of(
            core::any::type_name::<Self>(),
            size_of::<Self>(),
            align_of::<Self>(),
        )
    }
}

/// FNV-1a over `name`, then `size` and `align` as little-endian `u64`s: the default
/// [`ShmSafe::type_fingerprint`].
pub const fn type_fingerprint_of(name: &str, size: usize, align: usize) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01B3;
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        h = (h ^ bytes[i] as u64).wrapping_mul(PRIME);
        i += 1;
    }
    let tail = [(size as u64).to_le_bytes(), (align as u64).to_le_bytes()];
    let mut k = 0;
    while k < 16 {
        h = (h ^ tail[k / 8][k % 8] as u64).wrapping_mul(PRIME);
        k += 1;
    }
    h
}

/// A [`ShmSafe`] type whose bytes mean the same wherever they are copied: plain data, with no
/// self-relative pointer. Only such types are moved by safe code or handed out as `&mut T`.
///
/// Not implemented for [`OffsetPtr`](crate::OffsetPtr) nor for anything that holds one.
///
/// # Safety
///
/// Copying the bytes of a value to any other (suitably aligned) address must give an equally
/// valid value that means the same; [`ShmSafe::relocate`] must do nothing.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is position-dependent: it cannot be handed out as `&mut` nor moved",
    label = "holds self-relative pointers (OffsetPtr or segment containers)",
    note = "mutate it in place through its ShmMut methods and the accessors #[derive(ShmSafe)] generates"
)]
pub unsafe trait PositionIndependent: ShmSafe {}

/// Implements both traits for types that are plain bytes.
macro_rules! plain_data {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: a plain value (no pointer, no drop glue) whose bytes mean the same anywhere.
        unsafe impl ShmSafe for $t {
            const LAYOUT_FINGERPRINT: u64 = crate::schema::leaf_fingerprint(
                stringify!($t),
                size_of::<$t>(),
                align_of::<$t>(),
            );
        }
        // SAFETY: as above; `relocate` is the default no-op.
        unsafe impl PositionIndependent for $t {}
    )*};
}

plain_data!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);
plain_data!(f32, f64, bool, char, ());
plain_data!(
    NonZeroU8,
    NonZeroU16,
    NonZeroU32,
    NonZeroU64,
    NonZeroU128,
    NonZeroUsize,
    NonZeroI8,
    NonZeroI16,
    NonZeroI32,
    NonZeroI64,
    NonZeroI128,
    NonZeroIsize,
);
plain_data!(
    Option<NonZeroU8>,
    Option<NonZeroU16>,
    Option<NonZeroU32>,
    Option<NonZeroU64>,
    Option<NonZeroU128>,
    Option<NonZeroUsize>,
    Option<NonZeroI8>,
    Option<NonZeroI16>,
    Option<NonZeroI32>,
    Option<NonZeroI64>,
    Option<NonZeroI128>,
    Option<NonZeroIsize>,
);

#[cfg(target_has_atomic = "8")]
plain_data!(
    core::sync::atomic::AtomicBool,
    core::sync::atomic::AtomicU8,
    core::sync::atomic::AtomicI8,
);
#[cfg(target_has_atomic = "16")]
plain_data!(core::sync::atomic::AtomicU16, core::sync::atomic::AtomicI16);
#[cfg(target_has_atomic = "32")]
plain_data!(core::sync::atomic::AtomicU32, core::sync::atomic::AtomicI32);
#[cfg(target_has_atomic = "64")]
plain_data!(core::sync::atomic::AtomicU64, core::sync::atomic::AtomicI64);
#[cfg(target_has_atomic = "ptr")]
plain_data!(
    core::sync::atomic::AtomicUsize,
    core::sync::atomic::AtomicIsize,
);

// SAFETY: a zero-sized marker holds no data, whatever it names.
unsafe impl<T: ?Sized> ShmSafe for PhantomData<T> {
    const LAYOUT_FINGERPRINT: u64 = crate::schema::leaf_fingerprint("PhantomData", 0, 1);
}
// SAFETY: as above; nothing to relocate.
unsafe impl<T: ?Sized> PositionIndependent for PhantomData<T> {}

// SAFETY: the bytes, initialised or not, are those of a position-independent `T`, so no
// pointer in them needs fixing (which could not be done without knowing they are initialised).
unsafe impl<T: PositionIndependent> ShmSafe for MaybeUninit<T> {
    const LAYOUT_FINGERPRINT: u64 =
        crate::schema::compound_fingerprint("MaybeUninit", &[T::LAYOUT_FINGERPRINT]);
}
// SAFETY: as above.
unsafe impl<T: PositionIndependent> PositionIndependent for MaybeUninit<T> {}

/// Implements the traits for a `repr(transparent)` wrapper, relocating its one field.
macro_rules! transparent_wrapper {
    ($($w:ident),*) => {$(
        // SAFETY: `repr(transparent)` over a `ShmSafe` `T`: the same bytes, relocated by `T`'s
        // hook at the same address.
        unsafe impl<T: ShmSafe> ShmSafe for $w<T> {
            const LAYOUT_FINGERPRINT: u64 =
                crate::schema::compound_fingerprint(stringify!($w), &[T::LAYOUT_FINGERPRINT]);
            #[inline(always)]
            unsafe fn relocate(&mut self, moved_from: usize) {
                // SAFETY: the field is at offset 0, so it moved from `moved_from` too; the
                // caller's contract carries over.
                unsafe { self.0.relocate(moved_from) }
            }
        }
        // SAFETY: the same bytes as a position-independent `T`.
        unsafe impl<T: PositionIndependent> PositionIndependent for $w<T> {}
    )*};
}

transparent_wrapper!(Reverse, Wrapping);

// SAFETY: an array of `ShmSafe` elements; each element is relocated from its own old address.
unsafe impl<T: ShmSafe, const N: usize> ShmSafe for [T; N] {
    const LAYOUT_FINGERPRINT: u64 =
        crate::schema::compound_fingerprint("array", &[T::LAYOUT_FINGERPRINT, N as u64]);
    #[inline(always)]
    unsafe fn relocate(&mut self, moved_from: usize) {
        for (i, element) in self.iter_mut().enumerate() {
            // SAFETY: element `i` moved from `moved_from + i * size_of::<T>()` along with the
            // array, under the caller's contract.
            unsafe { element.relocate(moved_from.wrapping_add(i * size_of::<T>())) }
        }
    }
}
// SAFETY: an array of position-independent elements is itself plain data.
unsafe impl<T: PositionIndependent, const N: usize> PositionIndependent for [T; N] {}

/// Implements the traits for tuples, relocating each field from its own old address.
macro_rules! tuples {
    ($( ($($idx:tt $t:ident),+) )+) => {$(
        // SAFETY: every field is `ShmSafe` and is relocated from its own old address.
        unsafe impl<$($t: ShmSafe),+> ShmSafe for ($($t,)+) {
            const LAYOUT_FINGERPRINT: u64 = crate::schema::compound_fingerprint(
                "tuple",
                &[$($t::LAYOUT_FINGERPRINT, offset_of!(Self, $idx) as u64),+],
            );
            #[inline(always)]
            unsafe fn relocate(&mut self, moved_from: usize) {
                $(
                    // SAFETY: the field moved with the tuple, from `moved_from` plus its offset.
                    unsafe { self.$idx.relocate(moved_from.wrapping_add(offset_of!(Self, $idx))) };
                )+
            }
        }
        // SAFETY: a tuple of position-independent fields is itself plain data.
        unsafe impl<$($t: PositionIndependent),+> PositionIndependent for ($($t,)+) {}
    )+};
}

tuples! {
    (0 A)
    (0 A, 1 B)
    (0 A, 1 B, 2 C)
    (0 A, 1 B, 2 C, 3 D)
    (0 A, 1 B, 2 C, 3 D, 4 E)
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F)
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G)
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H)
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I)
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J)
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J, 10 K)
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J, 10 K, 11 L)
}

/// Mutable access to a value that lives in place (in a segment): `&T` always, `&mut T` only
/// for [`PositionIndependent`] types, in-place operations and projections otherwise.
/// See the [module documentation](self) for why.
pub struct ShmMut<'a, T: ?Sized> {
    value: &'a mut T,
}

impl<'a, T: ?Sized> ShmMut<'a, T> {
    /// Wraps a reference to plain data: moving it is harmless, so this is safe.
    #[inline(always)]
    pub fn from_mut(value: &'a mut T) -> Self
    where
        T: PositionIndependent,
    {
        ShmMut { value }
    }

    /// The inner `&mut T`: plain data may be moved or swapped freely.
    #[inline(always)]
    pub fn get_mut(self) -> &'a mut T
    where
        T: PositionIndependent,
    {
        self.value
    }

    /// Replaces the value (dropping the old one).
    #[inline(always)]
    pub fn set(&mut self, value: T)
    where
        T: PositionIndependent,
    {
        *self.value = value;
    }

    /// Wraps a mutable reference to a value that is in place.
    ///
    /// # Safety
    ///
    /// The value must be at its place: every self-relative pointer in it is either null or
    /// aims into the memory it belongs with (its segment) as seen from where the value is now.
    /// Code holding a `ShmMut` relies on that.
    #[inline(always)]
    pub unsafe fn new(value: &'a mut T) -> Self {
        ShmMut { value }
    }

    /// Reborrows the guard for a shorter time, like `Pin::as_mut`.
    #[inline(always)]
    pub fn as_mut(&mut self) -> ShmMut<'_, T> {
        ShmMut { value: self.value }
    }

    /// The inner `&mut T`, whatever `T`.
    ///
    /// # Safety
    ///
    /// The caller must not move the value out of its place through the reference (no
    /// `mem::swap`, `mem::replace`, `mem::take`, assignment of a whole position-dependent
    /// value), except by relocating it with [`ShmSafe::relocate`] afterwards.
    #[inline(always)]
    pub unsafe fn get_unchecked_mut(self) -> &'a mut T {
        self.value
    }

    /// Projects the guard onto a part of the value (a field), as the derive's accessors do.
    ///
    /// # Safety
    ///
    /// `project` must return a part of the value it is given (a field, an element), and must
    /// not move anything out of place, as for [`get_unchecked_mut`](Self::get_unchecked_mut).
    #[inline(always)]
    pub unsafe fn map_unchecked<U: ?Sized, F>(self, project: F) -> ShmMut<'a, U>
    where
        F: FnOnce(&'a mut T) -> &'a mut U,
    {
        ShmMut {
            value: project(self.value),
        }
    }
}

impl<T: ?Sized> Deref for ShmMut<'_, T> {
    type Target = T;

    /// Shared access is always fine: `&T` cannot move the value.
    #[inline(always)]
    fn deref(&self) -> &T {
        self.value
    }
}

/// Plain data may be mutated and moved freely, so its guard is a `&mut T` too: this is
/// what makes `*db.hits_mut() += 1` work. Position-dependent values get no `DerefMut`, so
/// `mem::swap(&mut *a, &mut *b)` on them does not compile.
impl<T: PositionIndependent> DerefMut for ShmMut<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        self.value
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for ShmMut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<'a, T> ShmMut<'a, [T]> {
    /// Number of elements.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// Whether there are no elements.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// The guard of element `i`, or `None` when out of bounds.
    #[inline(always)]
    pub fn index(&mut self, i: usize) -> Option<ShmMut<'_, T>> {
        self.value.get_mut(i).map(|value| ShmMut { value })
    }

    /// Guards of every element, in order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = ShmMut<'_, T>> {
        self.value.iter_mut().map(|value| ShmMut { value })
    }
}

impl<'a, T: PositionIndependent> ShmMut<'a, [T]> {
    /// Wraps a slice of plain data (safe for the same reason as [`ShmMut::from_mut`]).
    #[inline(always)]
    pub fn from_mut_slice(value: &'a mut [T]) -> Self {
        ShmMut { value }
    }

    /// The inner `&mut [T]` of plain data.
    #[inline(always)]
    pub fn get_mut_slice(self) -> &'a mut [T] {
        self.value
    }
}

impl<'a, T, const N: usize> ShmMut<'a, [T; N]> {
    /// The guard of the array as a slice, for [`index`](ShmMut::index) and
    /// [`iter_mut`](ShmMut::iter_mut).
    #[inline(always)]
    pub fn into_slice(self) -> ShmMut<'a, [T]> {
        ShmMut { value: self.value }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OffsetPtr;

    /// A plain-data struct the way the derive will implement it.
    #[repr(C)]
    struct Point {
        x: u32,
        y: u32,
    }
    // SAFETY: two `u32`s.
    unsafe impl ShmSafe for Point {}
    // SAFETY: two `u32`s.
    unsafe impl PositionIndependent for Point {}

    fn assert_position_independent<T: PositionIndependent>() {}

    #[test]
    fn primitives_and_compounds_are_position_independent() {
        assert_position_independent::<u8>();
        assert_position_independent::<f64>();
        assert_position_independent::<char>();
        assert_position_independent::<Option<NonZeroU32>>();
        assert_position_independent::<core::sync::atomic::AtomicU64>();
        assert_position_independent::<[(u8, i64, bool); 4]>();
        assert_position_independent::<(u8, u16, u32, u64, i8, i16, i32, i64, f32, f64, (), char)>();
        assert_position_independent::<MaybeUninit<[u16; 3]>>();
        assert_position_independent::<Reverse<Wrapping<u32>>>();
        assert_position_independent::<PhantomData<*const u8>>();
    }

    #[test]
    fn get_mut_and_set_on_plain_data() {
        let mut p = Point { x: 1, y: 2 };
        let mut guard = ShmMut::from_mut(&mut p);
        guard.as_mut().get_mut().x = 10;
        guard.set(Point {
            x: 3,
            y: guard.y + 1,
        });
        assert_eq!((guard.x, guard.y), (3, 3));
        let r = guard.get_mut();
        r.y = 7;
        assert_eq!((p.x, p.y), (3, 7));
    }

    #[test]
    fn map_unchecked_projects_to_a_field() {
        let mut p = Point { x: 1, y: 2 };
        let guard = ShmMut::from_mut(&mut p);
        // SAFETY: the projection returns a field and moves nothing.
        let y = unsafe { guard.map_unchecked(|p| &mut p.y) };
        *y.get_mut() = 20;
        assert_eq!(p.y, 20);
    }

    #[test]
    fn slice_guard_indexes_and_iterates() {
        let mut values = [1u32, 2, 3];
        let mut guard = ShmMut::from_mut(&mut values).into_slice();
        assert_eq!(guard.len(), 3);
        assert!(!guard.is_empty());
        *guard.index(1).map(ShmMut::get_mut).unwrap() = 20;
        assert!(guard.index(3).is_none());
        for element in guard.iter_mut() {
            *element.get_mut() += 1;
        }
        guard.as_mut().get_mut_slice()[0] = 0;
        assert_eq!(values, [0, 21, 4]);

        let mut empty: [u8; 0] = [];
        assert!(ShmMut::from_mut_slice(&mut empty[..]).is_empty());
    }

    #[test]
    fn slice_of_offset_ptrs_is_mutated_in_place() {
        let targets = [5u64, 6];
        let mut ptrs = [OffsetPtr::<u64>::null(), OffsetPtr::null()];
        // SAFETY: the array stays where it is; both pointers are null.
        let guard = unsafe { ShmMut::new(&mut ptrs) };
        let mut slice = guard.into_slice();
        for (i, mut p) in slice.iter_mut().enumerate() {
            p.set_target(&targets[1 - i]);
        }
        // SAFETY: the pointers aim at live `u64`s of `targets`.
        let read: Vec<u64> = ptrs.iter().map(|p| unsafe { *p.get() }).collect();
        assert_eq!(read, [6, 5]);
    }

    #[test]
    fn tuple_relocation_uses_each_fields_own_old_address() {
        // The second field of `(u8, OffsetPtr<u64>)` sits after padding; relocating with the
        // tuple's address instead of the field's would aim it off by that offset.
        let target = 77u64;
        let mut old = MaybeUninit::<(u8, OffsetPtr<u64>)>::uninit();
        let old_ptr = old.as_mut_ptr();
        // SAFETY: `old` is valid for writes; the pointer is set in place afterwards.
        unsafe {
            old_ptr.write((1, OffsetPtr::null()));
            (*old_ptr).1.set(&target);
        }
        let mut new = MaybeUninit::<(u8, OffsetPtr<u64>)>::uninit();
        // SAFETY: both are valid, distinct and aligned; `new` is relocated right after.
        unsafe {
            crate::ptr::relocate_value(new.as_mut_ptr(), old_ptr);
            assert_eq!((*new.as_ptr()).1.get(), &target as *const u64 as *mut u64);
            assert_eq!(*(*new.as_ptr()).1.get(), 77);
        }
    }
}
