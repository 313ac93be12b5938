//! [`Box<T>`]: one value of `T` in a block of its own in the segment (Boost's
//! `offset_ptr`-owned object, `unique_ptr`), or nothing.
//!
//! # Layout
//!
//! `#[repr(C)]`, 8 bytes: one self-relative [`OffsetPtr`] to the value. Null, and a
//! pointer that aims at itself (which all-zero bytes are), mean an empty box: a value is
//! never inside the box that owns it. Otherwise the pointer aims at one initialised `T` in
//! a block of the segment the box lives in, owned by this box alone: the block's first
//! word (its tag, padded to `T`'s alignment) names the box's pointer, and is rewritten
//! whenever the box moves or the value moves to another box.
//!
//! # Why it is optional
//!
//! By value a position-dependent value is only ever empty, and a box is
//! position-dependent (its pointer is relative to itself): so a box by value is empty, and
//! a box is really an optional box. Its API says so: [`get`](Box::get) is an `Option`,
//! [`BoxExt::insert`] fills it in place from any source of `T`, [`BoxExt::take_with`] and
//! [`BoxExt::clear`] empty it, [`BoxExt::swap`] moves values between boxes. There is no `Deref`: it would have to panic on an empty box.
//!
//! A box may hold position-dependent values (`Box<Vec<u32>>`), built in their block, and
//! a type may hold a box of itself (`struct Node { next: Box<Node> }`): the fingerprint is
//! over the pointee's, as an `OffsetPtr`'s, so it does not contain itself, and dropping a
//! long chain runs in a loop, not one nested call per link. Validating one recurses per
//! link, moving on to a new thread with a large stack every so many links.
//!
//! # Crash consistency
//!
//! A new value is built in its new block, which is then tagged, before one Release store
//! publishes the block; the old value is dropped and its block freed afterwards. Emptying
//! a box stores the empty pointer before the value is dropped; swapping empties both boxes
//! before either gets the other's value, whose tag is rewritten before it is published. A
//! process killed in between leaks a value, never leaves one with two owners. A process
//! killed while relocating a box, between its pointer and its block's tag, leaves a tag
//! that names the old place: a validation in a writable mapping then refuses the box (an
//! error, not undefined behaviour).
//!
//! # Bytes from elsewhere
//!
//! [`validate`](ShmSafe::validate) checks that the pointer aims inside the box's own
//! mapping, aligned, and, in a writable mapping, at the value of a live block with room
//! for a `T` whose tag names this very pointer (see
//! [`shmkit_runtime::segment::owned`]): so no two boxes, wherever they are, own one
//! block, nor a box a block of a container, an object or an `Arc`, and no chain of boxes
//! comes back to itself. It also checks that no other box or `Arc` reached by the same
//! validation owns that block (what ends a cycle in a read-only mapping, which checks only
//! bounds), and the value.

mod ext;

pub(crate) mod block;

pub use ext::BoxExt;

use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{compiler_fence, Ordering as AtomicOrdering};

use shmkit_runtime::layout::{compound_fingerprint, container_schemas, ForwardsImmutable};
use shmkit_runtime::{
    AllocError, FieldSchema, Invalid, OffsetPtr, Schema, SegmentAllocator, ShmImmutable, ShmSafe,
};

use crate::crash::point;
use crate::emplace::{emplace_at, Emplace, Filled, Slot};
use block::{Owner, Walk};

/// One `T` in a block of its own in the segment, or nothing (see the [module docs](self)).
///
/// ```
/// use shmkit_containers::{Box, BoxExt, Vec};
/// use shmkit_runtime::ManagedHeapMemory;
///
/// let mut seg = ManagedHeapMemory::new(1 << 16)?;
/// seg.construct("b", Box::<Vec<u32>>::new())?;
/// let mut b = seg.find_mut::<Box<Vec<u32>>>("b")?.expect("constructed above");
/// assert!(b.get().is_none());
/// b.insert(1..4)?; // a `Vec<u32>` built in its block from a range
/// assert_eq!(b.get().map(|v| v.as_slice()), Some(&[1, 2, 3][..]));
/// let sum = b.take_with(|v| v.iter().sum::<u32>()); // dropped in place afterwards
/// assert_eq!((sum, b.is_none()), (Some(6), true));
/// # Ok::<(), shmkit_runtime::Error>(())
/// ```
#[repr(C)]
pub struct Box<T> {
    ptr: OffsetPtr<T>,
    /// The box owns its value (for drop check).
    _owns: PhantomData<T>,
}

// SAFETY: as std's `Box`: the box owns its value, reached only through it.
unsafe impl<T: Send> Send for Box<T> {}
// SAFETY: as above; `&Box<T>` gives only `&T`.
unsafe impl<T: Sync> Sync for Box<T> {}

impl<T> Box<T> {
    /// An empty box, allocating nothing (all-zero bytes are one too).
    pub const fn new() -> Self {
        Box {
            ptr: OffsetPtr::null(),
            _owns: PhantomData,
        }
    }

    /// The value, None when the box is empty.
    #[inline]
    pub fn get(&self) -> Option<&T> {
        // SAFETY: a block of the box holds an initialised `T` that the box owns alone
        // (checked by `validate` for bytes from elsewhere), borrowed with the box.
        self.block().map(|b| unsafe { b.as_ref() })
    }

    /// Whether the box holds a value.
    #[inline]
    pub fn is_some(&self) -> bool {
        self.block().is_some()
    }

    /// Whether the box is empty.
    #[inline]
    pub fn is_none(&self) -> bool {
        self.block().is_none()
    }

    /// The block, if any: the pointer unless it is null or aims at itself.
    #[inline]
    fn block(&self) -> Option<NonNull<T>> {
        let target = self.ptr.get();
        let at_itself = target.addr() == (&raw const self.ptr).addr();
        NonNull::new(target).filter(|_| !at_itself)
    }

    /// Empties the box first (a Release store, fenced) and returns what it held, which
    /// nothing owns until the caller drops or moves it.
    fn detach(&mut self) -> Option<NonNull<T>> {
        let block = self.block()?;
        // SAFETY: null aims nowhere.
        unsafe { self.ptr.set_release(core::ptr::null()) };
        compiler_fence(AtomicOrdering::SeqCst);
        point("box: emptied, its block owned by nothing");
        Some(block)
    }

    /// Where the tag of the box's block says its owner is: the pointer to it.
    #[inline(always)]
    fn owner(&self) -> *const u8 {
        (&raw const self.ptr).cast()
    }

    /// Puts `block` (holding a `T` that nothing else owns) in the box, tagged with the
    /// box's pointer first, with one Release store, fenced; returns the block it held
    /// before, which nothing owns any more.
    ///
    /// # Safety
    /// `block` came from [`block::allocate`] of a `T` in the mapping that holds the box.
    unsafe fn publish(&mut self, block: NonNull<T>) -> Option<NonNull<T>> {
        let old = self.block();
        // SAFETY: the caller's contract; the box stays where it is, and the Release store
        // orders the tag before the pointer.
        unsafe {
            block::moved_to(block, self.owner());
            point("box: a block tagged, not yet published");
            self.ptr.set_release(block.as_ptr());
        }
        compiler_fence(AtomicOrdering::SeqCst);
        point("box: a block published, the old one owned by nothing");
        old
    }

    /// Drops the value in place and frees its block, once the box is empty.
    fn release(&mut self) {
        if let Some(block) = self.detach() {
            // SAFETY: the block holds a `T` that nothing owns any more; `drop_block`
            // drops it and frees the block once, while the mapping is mapped (the caller
            // of the outermost drop on this thread holds it).
            unsafe { block::finish_flat(block.cast(), drop_block::<T>) };
        }
    }

    /// Builds a value from `src` in a new block and puts it in the box; the old value is
    /// dropped afterwards. On error the box is unchanged.
    fn replace_from<S>(&mut self, src: S) -> Result<(), AllocError>
    where
        T: Emplace<S>,
    {
        let alloc = self.allocator()?;
        let new = block::allocate::<T>(&alloc)?;
        // SAFETY: a fresh value's place in a block of this mapping, aligned for a `T`, that
        // only we know.
        if let Err(e) = unsafe { emplace_at(new, src) } {
            // SAFETY: allocated just above; it holds nothing.
            unsafe { block::free(new) };
            return Err(e);
        }
        // SAFETY: a box's block, in the mapping that holds the box (its allocator was
        // found from the box's address).
        if let Some(old) = unsafe { self.publish(new) } {
            // SAFETY: as in `release`: the old value is owned by nothing now.
            unsafe { block::finish_flat(old.cast(), drop_block::<T>) };
        }
        Ok(())
    }

    /// The allocator of the mapping this box lives in, found from its pointer (which holds
    /// no `T`: its first byte). The lifetime is the caller's choice, within the method that asked for it
    /// (the caller's `&mut self` keeps the mapping mapped).
    fn allocator<'a>(&self) -> Result<SegmentAllocator<'a>, AllocError> {
        let field = (&raw const self.ptr).cast::<u8>();
        // SAFETY: see above; the first byte of the pointer, initialised.
        SegmentAllocator::of(unsafe { &*field })
    }
}

/// The last step of dropping a box's value: drops it in place and frees its block.
///
/// # Safety
/// `block` is the block of a `T`, initialised, that nothing owns, in a mapping that stays
/// mapped during the call.
unsafe fn drop_block<T>(block: NonNull<u8>) {
    let block = block.cast::<T>();
    // SAFETY: the caller's contract.
    unsafe {
        block.as_ptr().drop_in_place();
        block::free(block);
    }
}

impl<T> Default for Box<T> {
    fn default() -> Self {
        Box::new()
    }
}

impl<T: fmt::Debug> fmt::Debug for Box<T> {
    /// As the `Option<&T>` it is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

impl<T: PartialEq> PartialEq for Box<T> {
    /// As `Option<&T>`: two empty boxes are equal.
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl<T: Eq> Eq for Box<T> {}

impl<T: PartialOrd> PartialOrd for Box<T> {
    /// As `Option<&T>`: empty first.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.get().partial_cmp(&other.get())
    }
}

impl<T: Ord> Ord for Box<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.get().cmp(&other.get())
    }
}

impl<T: Hash> Hash for Box<T> {
    /// As `Option<&T>`.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.get().hash(state);
    }
}

// SAFETY: the box holds one offset pointer, relocated after a move of the box (the block
// stays where it is, its tag rewritten); `validate` accepts only pointers to a live block
// of the box's own segment holding a valid `T` (in a writable mapping, one that names the
// box as its one owner); the drop glue is the box's own (a segment container).
unsafe impl<T: ShmSafe> ShmSafe for Box<T> {
    /// Over the value's pointee fingerprint, as an `OffsetPtr<T>`'s: a type may hold a box
    /// of itself, and a fingerprint cannot contain itself.
    const LAYOUT_FINGERPRINT: u64 = compound_fingerprint("Box", &[T::POINTEE_FINGERPRINT]);

    /// A sequence without `len`: one value where `ptr` aims, none if null (for the
    /// inspector's `dump`).
    const SCHEMA: Option<&'static Schema> = Some(&Schema::container(
        "Box",
        "sequence",
        size_of::<Self>(),
        align_of::<Self>(),
        &[T::POINTEE_FINGERPRINT],
        &[FieldSchema::part(
            "ptr",
            core::mem::offset_of!(Self, ptr),
            size_of::<T>(),
            align_of::<T>(),
            T::LAYOUT_FINGERPRINT,
        )],
    ));

    fn for_each_schema(f: &mut dyn FnMut(&'static Schema) -> bool) {
        container_schemas::<T>(Self::SCHEMA, f);
    }

    /// A pointer outside the segment must be refused.
    const ALL_BIT_PATTERNS_VALID: bool = false;

    unsafe fn validate(value: *const Self) -> Result<(), Invalid> {
        // SAFETY: the caller's contract: aligned, readable, not written meanwhile.
        let b = unsafe { &*value };
        if b.is_none() {
            return Ok(());
        }
        let walk = Walk::enter();
        let block = block::check_owned(&b.ptr).map_err(|e| e.within("ptr", 0))?;
        if !walk
            .reach(block.cast(), T::type_fingerprint(), Owner::Box, true)
            .is_new()
        {
            return Err(Invalid::new("a block that one box owns alone").within("ptr", 0));
        }
        block::deeper(|| {
            // SAFETY: an aligned `T`'s place in the mapping (checked just above), which only
            // this box owns and so nothing writes meanwhile.
            unsafe { T::validate(block.as_ptr()) }
        })
        .map_err(|e| e.within("*", 0))
    }

    #[inline]
    unsafe fn relocate(&mut self, moved_from: usize) {
        if self.is_none() {
            // All-zero bytes (a pointer at itself) would aim at the old place otherwise.
            self.ptr = OffsetPtr::null();
        } else {
            let at = core::mem::offset_of!(Self, ptr);
            // SAFETY: the pointer moved with the box, from its own old address; its block
            // is this box's (the caller's contract: `self` holds the bytes that were the
            // box), in the writable mapping it was moved in.
            unsafe {
                self.ptr.relocate(moved_from.wrapping_add(at));
                if let Some(block) = self.block() {
                    block::moved_to(block, self.owner());
                }
            }
        }
    }

    /// The layout fingerprint, the same in every program.
    fn type_fingerprint() -> u64 {
        Self::LAYOUT_FINGERPRINT
    }
}

// SAFETY: the pointer changes only through `&mut` (`BoxExt`), and an immutable value
// makes an immutable box.
unsafe impl<T: ShmImmutable> ShmImmutable for Box<T> {}
// SAFETY: the impl above asks only `T: ShmImmutable`.
unsafe impl<T> ForwardsImmutable for Box<T> {}

impl<T> Drop for Box<T> {
    /// Drops the value in place and gives its block back to the segment. A box that is in
    /// no writable segment is empty (by value it is).
    fn drop(&mut self) {
        self.release();
    }
}

/// A box holding a value built from the source (`Some`), or an empty one (`None`):
/// `boxes.push(Some(1..4))?` for a `Vec<Box<Vec<u32>>>`.
impl<T: Emplace<S>, S> Emplace<Option<S>> for Box<T> {
    fn emplace<'a>(slot: Slot<'a, Self>, src: Option<S>) -> Result<Filled<'a, Self>, AllocError> {
        let mut b = slot.write(Box::new());
        if let Some(src) = src {
            b.as_mut().insert(src)?;
        }
        Ok(b)
    }
}

/// A deep copy, where the value is copied from a reference (`&Vec<String>`, plain data).
impl<'s, T: Emplace<&'s T>> Emplace<&'s Box<T>> for Box<T> {
    fn emplace<'a>(slot: Slot<'a, Self>, src: &'s Box<T>) -> Result<Filled<'a, Self>, AllocError> {
        Self::emplace(slot, src.get())
    }
}
