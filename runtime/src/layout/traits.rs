//! What may live in a segment: [`ShmSafe`], its plain-data refinement
//! [`PositionIndependent`] (and that one's no-uninitialised-byte refinement [`NoPadding`])
//! and its no-interior-mutability refinement [`ShmImmutable`], implemented here for
//! primitives, atomics, arrays, tuples and a few std wrappers; and [`ShmRoot`], the segment
//! root. The [layout module](super) says why the traits are separate.

use core::cmp::Reverse;
use core::marker::PhantomData;
use core::mem::{offset_of, MaybeUninit};
use core::num::{
    NonZeroI128, NonZeroI16, NonZeroI32, NonZeroI64, NonZeroI8, NonZeroIsize, NonZeroU128,
    NonZeroU16, NonZeroU32, NonZeroU64, NonZeroU8, NonZeroUsize, Wrapping,
};

use super::fingerprint::{compound_fingerprint, leaf_fingerprint, type_fingerprint_of};
use super::schema::Schema;
use super::validity::Invalid;

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
///   it holds, calling `relocate` on each field with that field's old address;
/// - sets [`ALL_BIT_PATTERNS_VALID`](ShmSafe::ALL_BIT_PATTERNS_VALID) only if any bytes
///   (padding aside) are a valid value, and otherwise has [`validate`](ShmSafe::validate)
///   accept exactly the valid ones.
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

    /// True when any initialised bytes are a valid value (integers, floats, offset pointers,
    /// and what holds only those): lookups then skip [`validate`](ShmSafe::validate)
    /// entirely. False by default: a manual impl that does not say is checked, and without
    /// a `validate` of its own it is refused.
    const ALL_BIT_PATTERNS_VALID: bool = false;

    /// Checks that the bytes at `value` are a valid `Self`, reading each field's bytes and
    /// never padding; a lookup runs it before the first reference to an object is handed
    /// out in a mapping that did not write it. The derive generates it: field by field,
    /// enum tags against the declared discriminant values.
    ///
    /// # Safety
    ///
    /// `value` is aligned and valid for reads of `size_of::<Self>()` bytes, whose non-padding
    /// bytes are initialised, and nothing writes them meanwhile except through atomics.
    unsafe fn validate(value: *const Self) -> Result<(), Invalid> {
        let _ = value;
        if Self::ALL_BIT_PATTERNS_VALID {
            Ok(())
        } else {
            Err(Invalid::new(
                "a value of a checked type (this one's manual `ShmSafe` impl has no `validate`)",
            ))
        }
    }

    /// The layout fingerprint, computed at compile time (see [`Schema::fingerprint`]): what
    /// `#[derive(ShmSafe)]` hashes for a field of this type. The default covers only the
    /// size and alignment; the runtime's impls and the derive say more.
    const LAYOUT_FINGERPRINT: u64 = leaf_fingerprint("?", size_of::<Self>(), align_of::<Self>());

    /// What an [`OffsetPtr`](crate::OffsetPtr) to this type hashes: the layout fingerprint,
    /// except that a derived type contributes only its name, size, alignment and generic
    /// arguments ([`Schema::pointee_fingerprint`]), since it may point at itself. Compound
    /// types (arrays, tuples, wrappers) build it from their parts' own.
    const POINTEE_FINGERPRINT: u64 = Self::LAYOUT_FINGERPRINT;

    /// The layout description of a derived type (None for primitives and manual impls).
    const SCHEMA: Option<&'static Schema> = None;

    /// Calls `f` with [`SCHEMA`](ShmSafe::SCHEMA) and the schemas of the types a value
    /// holds (its fields', an array's or tuple's elements', a container's descriptor and
    /// its elements', recursively), so that constructing an object stores in the segment
    /// what a tool needs to read it without the program that wrote it. `f` returns whether
    /// the schema is new to it: the walk goes into a type's parts only then, which ends it
    /// where a type holds itself through a container (`kids: Vec<Tree>` in `Tree`).
    /// Pointers are not followed. The derive, the runtime's compound impls and the
    /// containers say more than the default, `SCHEMA` alone.
    fn for_each_schema(f: &mut dyn FnMut(&'static Schema) -> bool) {
        if let Some(s) = Self::SCHEMA {
            f(s);
        }
    }

    /// A stable 64-bit fingerprint of the type, stored with every object constructed in a
    /// segment and checked by every lookup, so that finding an object as another type is
    /// an error. The default hashes (FNV-1a) the type's name, size and alignment; the
    /// derive overrides it with a hash of the layout.
    #[inline]
    fn type_fingerprint() -> u64 {
        type_fingerprint_of(
            core::any::type_name::<Self>(),
            size_of::<Self>(),
            align_of::<Self>(),
        )
    }
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

/// A [`PositionIndependent`] type every byte of which is initialised in every value: no
/// padding, no uninitialised bytes anywhere, recursively (in its fields, their fields, the
/// elements of its arrays). So a `&T` may be read as `size_of::<T>()` initialised bytes
/// (`slice::from_raw_parts(ptr.cast::<u8>(), size_of::<T>())`), and those bytes sent, as a
/// message queue does, with no uninitialised byte on the wire (reading padding as `u8` is
/// undefined behaviour, and would leak whatever the bytes held before).
///
/// `#[derive(ShmSafe, NoPadding)]` implements it for a non-generic `#[repr(C)]` (or
/// `transparent`) struct whose fields are all `NoPadding` and whose size is the sum of
/// theirs (a compile-time check), and for a fieldless enum with an integer `repr`.
/// Implemented here for the integers, `NonZero` integers, floats, `bool`, `char`, `()`,
/// `PhantomData`, arrays and `Wrapping`/`Reverse` of `NoPadding` types. Not for tuples
/// (their layout may have padding), `Option` (a `None` may leave its payload's bytes
/// uninitialised), `MaybeUninit`, nor atomics and other types with interior mutability
/// (their bytes may change while they are read as bytes through `&T`).
///
/// The bytes make a valid value only where [`ShmSafe::validate`] says so (`bool`, `char`
/// and enums have invalid bit patterns): a receiver checks what it reads.
///
/// # Safety
///
/// For every value of the type, all `size_of::<Self>()` bytes are initialised, and none of
/// them is ever written through a `&Self` (no interior mutability).
#[diagnostic::on_unimplemented(
    message = "`{Self}` may have padding or uninitialised bytes, so its bytes cannot be read as they are",
    label = "not NoPadding",
    note = "derive it with #[derive(ShmSafe, NoPadding)] on a #[repr(C)] struct without padding (add explicit `[u8; N]` fields where padding would be) or a fieldless enum with an integer repr; tuples, `Option`, `MaybeUninit` and atomics are never NoPadding"
)]
pub unsafe trait NoPadding: ShmSafe + PositionIndependent {}

/// A [`ShmSafe`] type with no interior mutability, neither in its own bytes nor behind its
/// [`OffsetPtr`](crate::OffsetPtr)s (nor, later, in its containers' elements): no atomics,
/// locks or `UnsafeCell`. Only such types are handed out by a read-only mapping, whose bytes
/// must not change through a `&T` (zerocopy's `Immutable` covers only a type's own bytes).
///
/// The derive implements it when every field is `ShmImmutable`; a field that points back at
/// the type itself (`next: OffsetPtr<Node>`) is assumed immutable while deciding, since it
/// adds no field of its own (only through [`OffsetPtr`](crate::OffsetPtr), arrays, tuples
/// and other [`ForwardsImmutable`] types).
///
/// # Safety
///
/// No byte reachable from a `&Self` (its own bytes and the targets of its pointers) may
/// change while that reference is alive.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has interior mutability (an atomic, a lock or an `UnsafeCell`), so a read-only mapping cannot hand it out",
    label = "could be written through a shared reference, but a read-only mapping's bytes cannot be written",
    note = "open the segment read-write (`open`) or copy-on-write (`options().copy_on_write().open(..)`) to reach it"
)]
pub unsafe trait ShmImmutable: ShmSafe {}

/// A [`ShmSafe`] type that may be read while other processes write it: every byte of it
/// is read and written with atomic accesses only (atomics, a
/// [`SeqLock`](crate::sync::SeqLock), arrays and derived structs of those), so a reader
/// sees no data race and needs no lock. Only such types are handed out by a
/// [`SegmentObserver`](crate::SegmentObserver): a read-only mapping that does not keep
/// writers out, for telemetry readers that must not be able to write.
///
/// Not derived: an observer reads a value through the [`Observed`](crate::Observed)
/// methods of its type, which a derived struct has none of. Keep values read together in
/// one `SeqLock` of a plain struct, or in objects of their own.
///
/// # Safety
///
/// Through a `&Self`, no byte of it is ever accessed other than atomically, its
/// [`ShmSafe::validate`] included; nothing reads memory it points to (it holds no
/// pointers); and reading it needs no write (the memory may be mapped read-only).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be read while a writer changes it, so an observer cannot hand it out",
    label = "plain reads of these bytes would race the writers an observer lets in",
    note = "keep what observers read in atomics or a `SeqLock`, or open the segment `read_only()` (which keeps writers out)"
)]
pub unsafe trait ShmObservable: ShmSafe {}

/// A type that is [`ShmImmutable`] exactly when its type arguments are, whatever else they
/// implement. The derive decides a type's `ShmImmutable` with a stand-in for the type itself
/// where a field points back at it (`OffsetPtr<Node>` in `Node`), and requires this of every
/// type around the stand-in: through any other type (a user's generic `Pick<Node>` whose
/// field is `<Node as Tr>::Out`), the user's impls for the stand-in could choose the answer.
///
/// # Safety
///
/// Whether `Self` implements `ShmImmutable` must depend on its type arguments only through
/// whether they implement it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` may ask more of the type than `ShmImmutable`, so pointing back at the type through it leaves the type not `ShmImmutable`",
    label = "a field pointing back at the type itself through `{Self}`",
    note = "point back at the type through `OffsetPtr`, arrays or tuples only"
)]
pub unsafe trait ForwardsImmutable {}

/// A segment's root type: `#[shm_segment]` implements it. A segment holds at most one root
/// per [`ROOT_NAME`](ShmRoot::ROOT_NAME), found or built with `Default` by
/// [`root`](crate::ManagedSegment::root) and checked against [`ROOT_SCHEMA`](ShmRoot::ROOT_SCHEMA).
///
/// The root name, not the Rust type, identifies a root in a segment: two programs that
/// declare a root under the same name share it (and get a
/// [`SchemaMismatch`](crate::Error::SchemaMismatch) if their layouts differ).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a segment root",
    label = "not declared with #[shm_segment]",
    note = "declare the root type with #[shm_segment] (it must also implement Default)"
)]
pub trait ShmRoot: ShmSafe + Default {
    /// The name the root is stored under (the struct's name unless
    /// `#[shm_segment(name = "...")]` says otherwise).
    const ROOT_NAME: &'static str;
    /// The root's layout.
    const ROOT_SCHEMA: &'static Schema;
}

/// Implements the traits for types that are plain bytes: `ShmImmutable` too unless listed
/// after `cells:`.
macro_rules! plain_data {
    (@base $t:ty) => {
        // SAFETY: a plain value (no pointer, no drop glue) whose bytes mean the same anywhere.
        unsafe impl ShmSafe for $t {
            const LAYOUT_FINGERPRINT: u64 = leaf_fingerprint(
                stringify!($t),
                size_of::<$t>(),
                align_of::<$t>(),
            );
            const ALL_BIT_PATTERNS_VALID: bool = true;
        }
        // SAFETY: as above; `relocate` is the default no-op.
        unsafe impl PositionIndependent for $t {}
    };
    (cells: $($t:ty),* $(,)?) => {$(
        plain_data!(@base $t);
        // SAFETY: an atomic: every access through `&Self` is atomic, and its `validate` is
        // the default (every bit pattern is valid), which reads nothing.
        unsafe impl ShmObservable for $t {}
    )*};
    ($($t:ty),* $(,)?) => {$(
        plain_data!(@base $t);
        // SAFETY: no interior mutability: the bytes change only through `&mut`.
        unsafe impl ShmImmutable for $t {}
    )*};
}

plain_data!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);
plain_data!(f32, f64, ());

/// Implements [`NoPadding`] for plain values: primitives and `NonZero` integers.
macro_rules! no_padding {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: a primitive value (an integer, a float, a `bool`, a `char`, or `()` with no
        // bytes at all): each of its bytes is initialised, and it has no interior mutability.
        unsafe impl NoPadding for $t {}
    )*};
}

no_padding!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);
no_padding!(f32, f64, bool, char, ());
no_padding!(
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

/// Implements the traits for plain values with invalid bit patterns: `$valid` says whether
/// the bytes at `$p` (a `*const Self`) are a valid value, `$expected` what a valid one is.
macro_rules! checked_data {
    ($($t:ty => $expected:literal, |$p:ident| $valid:expr;)*) => {$(
        // SAFETY: a plain value (no pointer, no drop glue) whose bytes mean the same anywhere;
        // `validate` accepts exactly its valid bit patterns.
        unsafe impl ShmSafe for $t {
            const LAYOUT_FINGERPRINT: u64 = leaf_fingerprint(
                stringify!($t),
                size_of::<$t>(),
                align_of::<$t>(),
            );
            unsafe fn validate($p: *const Self) -> Result<(), Invalid> {
                // SAFETY: the caller's contract: aligned, readable and initialised.
                if unsafe { $valid } {
                    Ok(())
                } else {
                    Err(Invalid::new($expected))
                }
            }
        }
        // SAFETY: as above; `relocate` is the default no-op.
        unsafe impl PositionIndependent for $t {}
        // SAFETY: no interior mutability.
        unsafe impl ShmImmutable for $t {}
    )*};
}

checked_data! {
    bool => "a bool (byte 0 or 1)", |p| p.cast::<u8>().read() <= 1;
    char => "a char (a Unicode scalar value)", |p| char::from_u32(p.cast::<u32>().read()).is_some();
    NonZeroU8 => "a nonzero integer", |p| p.cast::<u8>().read() != 0;
    NonZeroU16 => "a nonzero integer", |p| p.cast::<u16>().read() != 0;
    NonZeroU32 => "a nonzero integer", |p| p.cast::<u32>().read() != 0;
    NonZeroU64 => "a nonzero integer", |p| p.cast::<u64>().read() != 0;
    NonZeroU128 => "a nonzero integer", |p| p.cast::<u128>().read() != 0;
    NonZeroUsize => "a nonzero integer", |p| p.cast::<usize>().read() != 0;
    NonZeroI8 => "a nonzero integer", |p| p.cast::<i8>().read() != 0;
    NonZeroI16 => "a nonzero integer", |p| p.cast::<i16>().read() != 0;
    NonZeroI32 => "a nonzero integer", |p| p.cast::<i32>().read() != 0;
    NonZeroI64 => "a nonzero integer", |p| p.cast::<i64>().read() != 0;
    NonZeroI128 => "a nonzero integer", |p| p.cast::<i128>().read() != 0;
    NonZeroIsize => "a nonzero integer", |p| p.cast::<isize>().read() != 0;
}
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
    cells: core::sync::atomic::AtomicU8,
    core::sync::atomic::AtomicI8,
);

// SAFETY: a plain value whose bytes mean the same anywhere; `validate` accepts 0 and 1 only,
// reading atomically as another mapping may be storing it meanwhile.
#[cfg(target_has_atomic = "8")]
unsafe impl ShmSafe for core::sync::atomic::AtomicBool {
    const LAYOUT_FINGERPRINT: u64 = leaf_fingerprint("core::sync::atomic::AtomicBool", 1, 1);
    unsafe fn validate(value: *const Self) -> Result<(), Invalid> {
        use core::sync::atomic::{AtomicU8, Ordering};
        // SAFETY: the caller's contract; `AtomicU8` has the size, alignment and interior
        // mutability of `AtomicBool`.
        let byte = unsafe { &*value.cast::<AtomicU8>() }.load(Ordering::Relaxed);
        if byte <= 1 {
            Ok(())
        } else {
            Err(Invalid::new("a bool (byte 0 or 1)"))
        }
    }
}
// SAFETY: as above; `relocate` is the default no-op.
#[cfg(target_has_atomic = "8")]
unsafe impl PositionIndependent for core::sync::atomic::AtomicBool {}
// SAFETY: an atomic, whose `validate` loads atomically.
#[cfg(target_has_atomic = "8")]
unsafe impl ShmObservable for core::sync::atomic::AtomicBool {}
#[cfg(target_has_atomic = "16")]
plain_data!(cells: core::sync::atomic::AtomicU16, core::sync::atomic::AtomicI16);
#[cfg(target_has_atomic = "32")]
plain_data!(cells: core::sync::atomic::AtomicU32, core::sync::atomic::AtomicI32);
#[cfg(target_has_atomic = "64")]
plain_data!(cells: core::sync::atomic::AtomicU64, core::sync::atomic::AtomicI64);
#[cfg(target_has_atomic = "ptr")]
plain_data!(
    cells: core::sync::atomic::AtomicUsize,
    core::sync::atomic::AtomicIsize,
);

// SAFETY: a zero-sized marker holds no data, whatever it names.
unsafe impl<T: ?Sized> ShmSafe for PhantomData<T> {
    const LAYOUT_FINGERPRINT: u64 = leaf_fingerprint("PhantomData", 0, 1);
    const ALL_BIT_PATTERNS_VALID: bool = true;
}
// SAFETY: as above; nothing to relocate.
unsafe impl<T: ?Sized> PositionIndependent for PhantomData<T> {}
// SAFETY: no bytes at all.
unsafe impl<T: ?Sized> ShmImmutable for PhantomData<T> {}
// SAFETY: immutable whatever it names.
unsafe impl<T: ?Sized> ForwardsImmutable for PhantomData<T> {}
// SAFETY: no bytes at all, so none of them is uninitialised or mutable.
unsafe impl<T: ?Sized> NoPadding for PhantomData<T> {}

// SAFETY: the bytes, initialised or not, are those of a position-independent `T`, so no
// pointer in them needs fixing (which could not be done without knowing they are initialised).
unsafe impl<T: PositionIndependent> ShmSafe for MaybeUninit<T> {
    const LAYOUT_FINGERPRINT: u64 = compound_fingerprint("MaybeUninit", &[T::LAYOUT_FINGERPRINT]);
    const POINTEE_FINGERPRINT: u64 = compound_fingerprint("MaybeUninit", &[T::POINTEE_FINGERPRINT]);
    const ALL_BIT_PATTERNS_VALID: bool = true;
    fn for_each_schema(f: &mut dyn FnMut(&'static Schema) -> bool) {
        T::for_each_schema(f);
    }
}
// SAFETY: as above.
unsafe impl<T: PositionIndependent> PositionIndependent for MaybeUninit<T> {}
// SAFETY: the bytes of an immutable `T`, initialised or not.
unsafe impl<T: PositionIndependent + ShmImmutable> ShmImmutable for MaybeUninit<T> {}

/// Implements the traits for a `repr(transparent)` wrapper, relocating its one field.
macro_rules! transparent_wrapper {
    ($($w:ident),*) => {$(
        // SAFETY: `repr(transparent)` over a `ShmSafe` `T`: the same bytes, relocated by `T`'s
        // hook at the same address.
        unsafe impl<T: ShmSafe> ShmSafe for $w<T> {
            const LAYOUT_FINGERPRINT: u64 =
                compound_fingerprint(stringify!($w), &[T::LAYOUT_FINGERPRINT]);
            const POINTEE_FINGERPRINT: u64 =
                compound_fingerprint(stringify!($w), &[T::POINTEE_FINGERPRINT]);
            const ALL_BIT_PATTERNS_VALID: bool = T::ALL_BIT_PATTERNS_VALID;
            fn for_each_schema(f: &mut dyn FnMut(&'static Schema) -> bool) {
                T::for_each_schema(f);
            }
            unsafe fn validate(value: *const Self) -> Result<(), Invalid> {
                // SAFETY: the same bytes as a `T` (`repr(transparent)`); the caller's
                // contract carries over.
                unsafe { T::validate(value.cast()) }
            }
            #[inline(always)]
            unsafe fn relocate(&mut self, moved_from: usize) {
                // SAFETY: the field is at offset 0, so it moved from `moved_from` too; the
                // caller's contract carries over.
                unsafe { self.0.relocate(moved_from) }
            }
        }
        // SAFETY: the same bytes as a position-independent `T`.
        unsafe impl<T: PositionIndependent> PositionIndependent for $w<T> {}
        // SAFETY: the same bytes as an immutable `T`.
        unsafe impl<T: ShmImmutable> ShmImmutable for $w<T> {}
        // SAFETY: the impl above asks only `T: ShmImmutable`.
        unsafe impl<T> ForwardsImmutable for $w<T> {}
        // SAFETY: the same bytes as a `T`, all of which are initialised and immutable.
        unsafe impl<T: NoPadding> NoPadding for $w<T> {}
    )*};
}

transparent_wrapper!(Reverse, Wrapping);

// SAFETY: an array of `ShmSafe` elements; each element is relocated from its own old address.
unsafe impl<T: ShmSafe, const N: usize> ShmSafe for [T; N] {
    const LAYOUT_FINGERPRINT: u64 =
        compound_fingerprint("array", &[T::LAYOUT_FINGERPRINT, N as u64]);
    const POINTEE_FINGERPRINT: u64 =
        compound_fingerprint("array", &[T::POINTEE_FINGERPRINT, N as u64]);
    const ALL_BIT_PATTERNS_VALID: bool = T::ALL_BIT_PATTERNS_VALID || N == 0;
    fn for_each_schema(f: &mut dyn FnMut(&'static Schema) -> bool) {
        T::for_each_schema(f);
    }
    unsafe fn validate(value: *const Self) -> Result<(), Invalid> {
        for i in 0..N {
            // SAFETY: element `i` lies within the array, under the caller's contract.
            unsafe { T::validate(value.cast::<T>().add(i)) }
                .map_err(|e| e.within(&format!("[{i}]"), i * size_of::<T>()))?;
        }
        Ok(())
    }
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
// SAFETY: immutable elements make an immutable array.
unsafe impl<T: ShmImmutable, const N: usize> ShmImmutable for [T; N] {}
// SAFETY: elements are accessed as elements, and an array's `validate` validates each.
unsafe impl<T: ShmObservable, const N: usize> ShmObservable for [T; N] {}
// SAFETY: the elements are laid out back to back with no gap (an array's size is `N` times
// its element's, whose size is a multiple of its alignment), and each element's bytes are
// all initialised and immutable.
unsafe impl<T: NoPadding, const N: usize> NoPadding for [T; N] {}

// SAFETY: the pointer's own bytes change only through `&mut`, and its target is immutable.
unsafe impl<T: ShmImmutable> ShmImmutable for crate::OffsetPtr<T> {}
// SAFETY: the impl above asks only `T: ShmImmutable`.
unsafe impl<T> ForwardsImmutable for crate::OffsetPtr<T> {}

/// Implements the traits for tuples, relocating each field from its own old address.
macro_rules! tuples {
    ($( ($($idx:tt $t:ident),+) )+) => {$(
        // SAFETY: every field is `ShmSafe` and is relocated from its own old address.
        unsafe impl<$($t: ShmSafe),+> ShmSafe for ($($t,)+) {
            const LAYOUT_FINGERPRINT: u64 = compound_fingerprint(
                "tuple",
                &[$($t::LAYOUT_FINGERPRINT, offset_of!(Self, $idx) as u64),+],
            );
            const POINTEE_FINGERPRINT: u64 = compound_fingerprint(
                "tuple",
                &[$($t::POINTEE_FINGERPRINT, offset_of!(Self, $idx) as u64),+],
            );
            const ALL_BIT_PATTERNS_VALID: bool = true $(&& $t::ALL_BIT_PATTERNS_VALID)+;
            fn for_each_schema(f: &mut dyn FnMut(&'static Schema) -> bool) {
                $($t::for_each_schema(f);)+
            }
            unsafe fn validate(value: *const Self) -> Result<(), Invalid> {
                $(
                    if !$t::ALL_BIT_PATTERNS_VALID {
                        // SAFETY: the field lies within the tuple, under the caller's contract.
                        unsafe { $t::validate(core::ptr::addr_of!((*value).$idx)) }.map_err(|e| {
                            e.within(stringify!($idx), offset_of!(Self, $idx))
                        })?;
                    }
                )+
                Ok(())
            }
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
        // SAFETY: immutable fields make an immutable tuple.
        unsafe impl<$($t: ShmImmutable),+> ShmImmutable for ($($t,)+) {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OffsetPtr;

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

    fn assert_no_padding<T: NoPadding>() {}

    #[test]
    fn primitives_arrays_and_wrappers_have_no_padding() {
        assert_no_padding::<u8>();
        assert_no_padding::<i128>();
        assert_no_padding::<f64>();
        assert_no_padding::<bool>();
        assert_no_padding::<char>();
        assert_no_padding::<()>();
        assert_no_padding::<NonZeroU64>();
        assert_no_padding::<PhantomData<*const u8>>();
        assert_no_padding::<[[u16; 3]; 0]>();
        assert_no_padding::<[Reverse<Wrapping<u32>>; 4]>();
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
