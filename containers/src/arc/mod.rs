//! [`Arc<T>`] and [`Weak<T>`]: a value shared by several handles in a segment, counted
//! atomically so that handles in other processes count too (Boost's `shared_ptr` and
//! `weak_ptr`).
//!
//! # Layout
//!
//! A handle is `#[repr(C)]`, 16 bytes: a self-relative [`OffsetPtr`] to the shared part
//! of a block, and the trust epoch it was published in (see below). As for a
//! [`Box`](crate::Box), null and a pointer at itself (all-zero bytes) are an empty handle.
//! The block starts with its tag, which says that handles of `T` share it (see
//! [`shmkit_runtime::segment::owned`]), then holds one `u64` of counts, the epoch the
//! block was allocated in, and the value. The counts: the strong count (the `Arc`s) in the
//! low 32 bits, the weak count in the high 32 (the `Weak`s, plus one for all the `Arc`s
//! together while there are any, as in std). One word, so that one atomic load sees both:
//! [`ArcExt::value_mut`] knows the value is unshared without locking the weak count as std
//! does, which a process killed at that moment would leave locked. The value is dropped
//! when the strong count goes to 0, the block freed when the weak count does.
//!
//! # Sharing in place
//!
//! By value a handle is only ever empty, so a handle cannot be cloned out of the segment.
//! Another handle in the segment is made in place instead: [`ArcExt::share`] makes an
//! `Arc` slot share another `Arc`'s value, [`WeakExt::downgrade_from`] makes a `Weak` slot
//! refer to it, [`ArcExt::upgrade_from`] makes an `Arc` slot share what a `Weak` refers to
//! if it is still there. Both handles must be in one segment (a handle aims into its own).
//! `&mut` access to the value exists only while it is unshared (one `Arc`, no `Weak`),
//! as std's `get_mut`; shared, it is read through `&T` (so `T: Sync` matters, and a
//! handle is `Send`/`Sync` when `T: Send + Sync`, as std's), and changed through what
//! `T` offers for that: atomics, a shmkit `Mutex`.
//!
//! # Crash consistency
//!
//! A count is raised before a handle that it counts is published, and a handle is emptied
//! before the count is lowered: a process killed in between leaves a count too high, which
//! leaks the value or the block, never one too low, which would free it under a handle. A
//! new block is complete (counts, epoch, value) before it is tagged, and tagged before it
//! is published. A handle that changes blocks is emptied first, then gets its epoch, then
//! its new block (one Release store). A value that its last `Arc` was dropping when the process died
//! stays half-dropped and unreachable: the strong count is 0, so no `Weak` upgrades to it.
//!
//! # Bytes from elsewhere: tags, epochs, and why old handles leak
//!
//! [`validate`](ShmSafe::validate) checks the pointer as a box's is checked (inside the
//! mapping, aligned, and in a writable mapping the start of a live block large enough),
//! except that the block's tag must say that handles of `T` share it: no container's
//! buffer, no box's block and no block of values of another type passes for one, nor the
//! other way round. It checks that the counts say the value is there (an `Arc`: strong
//! and weak at least 1) or at least the block (a `Weak`: weak at least 1), and the value
//! while an `Arc` could reach it. Within one validation (from the outermost box or handle
//! down) it also counts the handles it reaches to each block: more than the block's
//! counts, a block also owned by a box, or values of two types in one block, are refused.
//!
//! What no validation of one object can know is how many handles elsewhere (in other
//! objects, not yet looked up) a block has, so it cannot prove a count right: two `Arc`s in
//! two objects of a forged file may share a block whose strong count says 1, and dropping
//! either would free the value under the other. So a count is trusted only for the
//! handles that trusted code counted in it. Every time a writable mapping takes a
//! segment's bytes from somewhere untrusted (creates it, opens it cold, copies an image),
//! the runtime draws a new random [trust epoch](shmkit_runtime::segment::owned::trust_epoch);
//! a handle records the epoch it was published in, and a block the one it was allocated
//! in. A handle of another epoch than the segment's is *old*: it reads its value as any
//! other, and may be shared, downgraded or upgraded from (the new handle is current and
//! counted as usual), but it never gives its count back: dropping, clearing or
//! overwriting it leaks its count, and [`ArcExt::value_mut`] lends nothing through it. A
//! validation also refuses an old handle to a block allocated in the current epoch (no
//! genuine handle is older than its block; a forged one could otherwise join a new block
//! whose count does not know it).
//!
//! Why that is sound: the counts of a block from before the epoch change only through
//! current handles (and a validation's own, given back), each of which raised a count
//! once before it lowers it once; no old handle ever lowers one. So they never fall below
//! what they were when the epoch began. The first handle of such a block that any
//! validation lets through sees exactly those counts (no current handle can exist before
//! one was let through). If it is an `Arc`, the strong count was at least 1, so the value
//! is never dropped and the `Arc`s' share of the weak count never given back, and the weak
//! count at least 1, so the block is never freed. If it is a `Weak`, the weak count beside
//! the `Arc`s' share was at least 1, so the block is never freed; a strong count of 0 stays
//! 0 (nothing upgrades from it), else the value is never dropped as above. Nor is the
//! value ever lent mutably while an old handle could read it: a current `Arc` then finds
//! at least 2 `Arc`s, or a `Weak`, counted. Blocks allocated in this epoch have current
//! handles only, whose counts are exact.
//!
//! The price: after a cold open (a file at rest, a segment nobody had mapped, an image
//! copy), the `Arc` values and blocks that existed before are never freed, only leaked
//! (and `value_mut` refuses them), however their handles go. Telling which counts are
//! right would take checking every handle of the segment against every count at once;
//! without that, leaking is the only thing that stays sound whatever the file says.
//! Values made after the open are counted and freed as usual.

mod ext;

pub use ext::{ArcError, ArcExt, WeakExt};

use core::cmp::Ordering as CmpOrdering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{compiler_fence, fence, AtomicU64, Ordering};

use shmkit_runtime::layout::compound_fingerprint;
use shmkit_runtime::segment::owned::trust_epoch;
use shmkit_runtime::{AllocError, Invalid, OffsetPtr, SegmentAllocator, ShmSafe};

use crate::boxed::block::{self, Owner, Walk};
use crate::crash::point;
use crate::emplace::{emplace_at, Emplace, Filled, Slot};

/// One strong count, in the low half of the count word.
const STRONG: u64 = 1;
/// One weak count, in the high half.
const WEAK: u64 = 1 << 32;
/// The most handles of one kind a block counts.
const MAX: u64 = u32::MAX as u64;

/// The strong count of a count word.
fn strong(counts: u64) -> u64 {
    counts & MAX
}

/// The weak count of a count word (the `Weak`s, and one for the `Arc`s while any is left).
fn weak(counts: u64) -> u64 {
    counts >> 32
}

/// What an `Arc` or `Weak` points at, after its block's tag: the counts, the trust epoch
/// the block was allocated in, then the value.
#[repr(C)]
struct Shared<T> {
    counts: AtomicU64,
    born: u64,
    value: T,
}

// SAFETY: an atomic word (any bytes are counts), a word, and a `T`, relocated at its own
// offset.
// Blocks never move; only `Arc`s and `Weak`s point at one, and they validate it.
unsafe impl<T: ShmSafe> ShmSafe for Shared<T> {
    /// Over the value's pointee fingerprint, as the `Arc`'s (a value may hold an `Arc` of
    /// its own type).
    const LAYOUT_FINGERPRINT: u64 = compound_fingerprint("ArcInner", &[T::POINTEE_FINGERPRINT]);

    /// The value (the counts are any word).
    unsafe fn validate(block: *const Self) -> Result<(), Invalid> {
        let at = core::mem::offset_of!(Self, value);
        // SAFETY: the value lies within the block, under the caller's contract.
        unsafe { T::validate(&raw const (*block).value) }.map_err(|e| e.within("value", at))
    }

    unsafe fn relocate(&mut self, moved_from: usize) {
        let at = core::mem::offset_of!(Self, value);
        // SAFETY: the value moved with the block, from its own old address.
        unsafe { self.value.relocate(moved_from.wrapping_add(at)) }
    }
}

/// The pointer of an `Arc` or `Weak` and its trust epoch, with what both do with them.
#[repr(C)]
struct Link<T> {
    ptr: OffsetPtr<Shared<T>>,
    /// The segment's trust epoch when `ptr` was published: if it is not the current one,
    /// the block's count is not known to count this link (see the module docs).
    epoch: u64,
}

impl<T> Link<T> {
    const fn new() -> Self {
        Link {
            ptr: OffsetPtr::null(),
            epoch: 0,
        }
    }

    /// Whether the link was published in its segment's current trust epoch, so that its
    /// block's count counts it.
    #[inline]
    fn is_current(&self) -> bool {
        trust_epoch(self) == Some(self.epoch)
    }

    /// The block, if any: the pointer unless it is null or aims at itself.
    #[inline]
    fn block(&self) -> Option<NonNull<Shared<T>>> {
        let target = self.ptr.get();
        let at_itself = target.addr() == (&raw const self.ptr).addr();
        NonNull::new(target).filter(|_| !at_itself)
    }

    /// The count word of the block.
    #[inline]
    fn counts(&self) -> Option<&AtomicU64> {
        // SAFETY: the block of a handle is live while the handle is (its count includes
        // a current handle, and never falls to 0 while an old one exists: see the module
        // docs), and its count word is an atomic.
        self.block().map(|b| unsafe { &(*b.as_ptr()).counts })
    }

    /// Empties the link first (a Release store, fenced) and returns the block it held if
    /// the block's count counts it (the link is current), for the caller to give that
    /// count back; an old link's count stays, leaked (see the module docs).
    fn detach(&mut self) -> Option<NonNull<Shared<T>>> {
        let block = self.block()?;
        let counted = self.is_current();
        // SAFETY: null aims nowhere.
        unsafe { self.ptr.set_release(core::ptr::null()) };
        compiler_fence(Ordering::SeqCst);
        point("arc: a handle emptied, its count not yet given back");
        counted.then_some(block)
    }

    /// Makes the link a current handle of `block`, whose count already counts it: empties
    /// it ([`detach`](Self::detach), whose answer it returns), records the segment's
    /// trust epoch, then publishes the block with one Release store, fenced.
    ///
    /// # Safety
    /// `block` lies in the mapping that holds the link.
    unsafe fn publish(&mut self, block: NonNull<Shared<T>>) -> Option<NonNull<Shared<T>>> {
        let old = self.detach();
        // A link in a segment (as its block is) always finds the epoch.
        self.epoch = trust_epoch(self).unwrap_or(0);
        point("arc: an epoch recorded, the block not yet published");
        // SAFETY: the caller's contract; the link stays where it is.
        unsafe { self.ptr.set_release(block.as_ptr()) };
        compiler_fence(Ordering::SeqCst);
        point("arc: a block published");
        old
    }

    /// The allocator of the mapping this link lives in, found from the first byte of its
    /// pointer (which holds no `T`). The lifetime is the caller's choice, within the
    /// method that asked for it (the caller's `&mut self` keeps the mapping mapped).
    fn allocator<'a>(&self) -> Result<SegmentAllocator<'a>, AllocError> {
        let field = (&raw const self.ptr).cast::<u8>();
        // SAFETY: see above; an initialised byte.
        SegmentAllocator::of(unsafe { &*field })
    }

    /// Makes this link another handle of `source`'s block (or empty, if `source` is):
    /// its count is raised by `raise` first (which refuses with an error instead), then
    /// the link published. Returns the block held before, whose count still counts it.
    /// Nothing changes on error, nor when the link holds that block already.
    fn adopt(
        &mut self,
        source: &Link<T>,
        raise: impl Fn(u64) -> Result<u64, ArcError>,
    ) -> Result<Option<NonNull<Shared<T>>>, ArcError> {
        let Some(block) = source.block() else {
            return Ok(self.detach());
        };
        if self.block() == Some(block) {
            return Ok(None);
        }
        if !self
            .allocator()
            .is_ok_and(|a| a.contains(block.as_ptr().cast()))
        {
            return Err(ArcError::OtherSegment {
                addr: block.as_ptr().addr(),
            });
        }
        // SAFETY: `source`'s block is live while `source` is (see `counts`).
        let counts = unsafe { &(*block.as_ptr()).counts };
        let mut current = counts.load(Ordering::Relaxed);
        loop {
            let raised = raise(current)?;
            match counts.compare_exchange_weak(
                current,
                raised,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        point("arc: a count raised, the handle not yet published");
        // SAFETY: the block lies in this link's mapping (checked above).
        Ok(unsafe { self.publish(block) })
    }
}

/// Gives back an `Arc`'s count of `block`: the last one drops the value.
///
/// # Safety
/// The count counts a handle that is gone (emptied); the block is live, in a mapping
/// that stays mapped until the outermost drop on this thread returns.
unsafe fn release_strong<T>(block: NonNull<Shared<T>>) {
    // SAFETY: the block is live (the caller's count keeps it).
    let before = unsafe { &(*block.as_ptr()).counts }.fetch_sub(STRONG, Ordering::Release);
    point("arc: a strong count given back");
    if strong(before) == 1 {
        // Whatever the other handles did with the value happens before it is dropped.
        fence(Ordering::Acquire);
        // SAFETY: the last `Arc` is gone: nothing owns the value, and no `Weak` upgrades
        // to it (the strong count is 0). `drop_value` runs once.
        unsafe { block::finish_flat(block.cast(), drop_value::<T>) };
    }
}

/// The last step of the last `Arc`: drops the value in place, then gives back the weak
/// count the `Arc`s held together.
///
/// # Safety
/// `block` is a live block of a `Shared<T>` whose value nothing owns, as
/// [`release_strong`] calls it.
unsafe fn drop_value<T>(block: NonNull<u8>) {
    let block = block.cast::<Shared<T>>();
    // SAFETY: the caller's contract; the value is dropped once, then the `Arc`s' weak
    // count is given back.
    unsafe {
        (&raw mut (*block.as_ptr()).value).drop_in_place();
        point("arc: a value dropped, its weak count not yet given back");
        release_weak(block);
    }
}

/// Gives back a weak count of `block`: the last one frees it.
///
/// # Safety
/// As for [`release_strong`], for a weak count; the value is gone if this may be the
/// last one (the `Arc`s hold one together).
unsafe fn release_weak<T>(block: NonNull<Shared<T>>) {
    // SAFETY: the block is live (the caller's count keeps it).
    let before = unsafe { &(*block.as_ptr()).counts }.fetch_sub(WEAK, Ordering::Release);
    point("arc: a weak count given back");
    if weak(before) == 1 {
        fence(Ordering::Acquire);
        // SAFETY: no handle is left, and the value is gone.
        unsafe { block::free(block) };
    }
}

/// A value shared by handles in one segment, counted atomically: std's `Arc` in place,
/// or an empty handle (see the [module docs](self)).
///
/// ```
/// use shmkit_containers::{Arc, ArcExt, String};
/// use shmkit_runtime::ManagedHeapMemory;
///
/// let mut seg = ManagedHeapMemory::new(1 << 16)?;
/// seg.construct_array_with("arcs", 2, |_| Arc::<String>::new())?;
/// let mut arcs = seg.find_slice_mut::<Arc<String>>("arcs")?.expect("constructed above");
/// let mut it = arcs.iter_mut();
/// let (mut a, mut b) = (it.next().expect("two"), it.next().expect("two"));
/// a.insert("shared")?; // a new value, built in its block
/// b.share(&a)?; // a second handle to it
/// assert!(a.ptr_eq(&b) && a.strong_count() == 2);
/// assert_eq!(b.get().map(|s| s.as_str()), Some("shared"));
/// assert!(a.value_mut().is_none()); // shared: no `&mut`
/// b.clear();
/// assert_eq!(a.strong_count(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[repr(C)]
pub struct Arc<T> {
    link: Link<T>,
    /// The `Arc`s own the value together (for drop check).
    _owns: PhantomData<T>,
}

/// A handle that refers to an [`Arc`]'s value without keeping it (std's `Weak` in place),
/// or an empty one. It reads nothing: [`ArcExt::upgrade_from`] makes an `Arc` of it while
/// the value is there.
#[repr(C)]
pub struct Weak<T> {
    link: Link<T>,
    /// A `Weak` may drop the block, not the value.
    _refers: PhantomData<T>,
}

// SAFETY: as std's `Arc`: the value is reached through every handle, in any thread (and
// process), read through `&T` and dropped by whichever handle is last.
unsafe impl<T: Send + Sync> Send for Arc<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for Arc<T> {}
// SAFETY: as std's `Weak`: it upgrades to an `Arc` in any thread.
unsafe impl<T: Send + Sync> Send for Weak<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for Weak<T> {}

impl<T> Arc<T> {
    /// An empty handle, allocating nothing (all-zero bytes are one too).
    pub const fn new() -> Self {
        Arc {
            link: Link::new(),
            _owns: PhantomData,
        }
    }

    /// The value, None when the handle is empty.
    #[inline]
    pub fn get(&self) -> Option<&T> {
        // SAFETY: a handle's block holds the value while its strong count is above 0,
        // which it is while this handle exists (the count counts a current handle, and
        // never falls to 0 while an old one exists: see the module docs); it is shared, so
        // only read (or changed through what `T` offers for that, being `Sync`).
        self.link.block().map(|b| unsafe { &(*b.as_ptr()).value })
    }

    /// Whether the handle holds a value.
    pub fn is_some(&self) -> bool {
        self.link.block().is_some()
    }

    /// Whether the handle is empty.
    pub fn is_none(&self) -> bool {
        self.link.block().is_none()
    }

    /// How many `Arc`s share the value, here and in other processes; 0 when empty.
    pub fn strong_count(&self) -> usize {
        self.link
            .counts()
            .map_or(0, |c| strong(c.load(Ordering::Acquire)) as usize)
    }

    /// How many `Weak`s refer to the value; 0 when empty.
    pub fn weak_count(&self) -> usize {
        self.link.counts().map_or(0, |c| {
            weak(c.load(Ordering::Acquire)).saturating_sub(1) as usize
        })
    }

    /// Whether the two handles share one value (or are both empty).
    pub fn ptr_eq(&self, other: &Arc<T>) -> bool {
        self.link.block() == other.link.block()
    }
}

impl<T> Weak<T> {
    /// An empty handle, allocating nothing (all-zero bytes are one too).
    pub const fn new() -> Self {
        Weak {
            link: Link::new(),
            _refers: PhantomData,
        }
    }

    /// How many `Arc`s share the value; 0 when it is gone or the handle is empty.
    pub fn strong_count(&self) -> usize {
        self.link
            .counts()
            .map_or(0, |c| strong(c.load(Ordering::Acquire)) as usize)
    }

    /// How many `Weak`s refer to the value, this one included; 0 when the handle is empty.
    pub fn weak_count(&self) -> usize {
        self.link.counts().map_or(0, |c| {
            let c = c.load(Ordering::Acquire);
            weak(c).saturating_sub(u64::from(strong(c) > 0)) as usize
        })
    }

    /// Whether the two handles refer to one block (or are both empty).
    pub fn ptr_eq(&self, other: &Weak<T>) -> bool {
        self.link.block() == other.link.block()
    }

    /// Whether this handle refers to the value `arc` holds.
    pub fn refers_to(&self, arc: &Arc<T>) -> bool {
        arc.is_some() && self.link.block() == arc.link.block()
    }
}

impl<T> Default for Arc<T> {
    fn default() -> Self {
        Arc::new()
    }
}

impl<T> Default for Weak<T> {
    fn default() -> Self {
        Weak::new()
    }
}

impl<T: fmt::Debug> fmt::Debug for Arc<T> {
    /// As the `Option<&T>` it is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

impl<T> fmt::Debug for Weak<T> {
    /// `(Weak)`, as std's: reading the value would take an upgrade.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(Weak)")
    }
}

impl<T: PartialEq> PartialEq for Arc<T> {
    /// By value, as std's (`Option<&T>`: two empty handles are equal).
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl<T: Eq> Eq for Arc<T> {}

impl<T: PartialOrd> PartialOrd for Arc<T> {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        self.get().partial_cmp(&other.get())
    }
}

impl<T: Ord> Ord for Arc<T> {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.get().cmp(&other.get())
    }
}

impl<T: Hash> Hash for Arc<T> {
    /// As `Option<&T>`.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.get().hash(state);
    }
}

/// What an `Arc` or a `Weak` found of its block in a validation.
struct Found<T> {
    block: NonNull<Shared<T>>,
    counts: u64,
    before: block::Reached,
}

/// The checks of `Arc` and `Weak` validation that do not depend on the kind: the pointer
/// (to a block that handles of `T` share, allocated before the handle's epoch if that is
/// not the current one), and what the validation reached of the block before. None for an
/// empty handle.
fn validate_link<T: ShmSafe>(
    link: &Link<T>,
    walk: &Walk,
    owner: Owner,
    checks_value: impl FnOnce(u64) -> bool,
) -> Result<Option<Found<T>>, Invalid> {
    if link.block().is_none() {
        return Ok(None);
    }
    let block =
        block::check_shared(&link.ptr, T::type_fingerprint()).map_err(|e| e.within("ptr", 0))?;
    // SAFETY: a `Shared<T>`'s place in the mapping, of a live block in a writable one
    // (checked just above); its count word is an atomic, and its epoch was written before
    // its tag (seen by the check) and never again while the block lives.
    let (counts, born) = unsafe {
        let shared = block.as_ptr();
        ((*shared).counts.load(Ordering::Acquire), (*shared).born)
    };
    if !link.is_current() && trust_epoch(link) == Some(born) {
        return Err(Invalid::new(
            "a handle from before the segment's trust epoch to a block from before it too",
        )
        .within("ptr", 0));
    }
    let before = walk.reach(
        block.cast(),
        T::type_fingerprint(),
        owner,
        checks_value(counts),
    );
    if !before.is_new() && (before.boxes > 0 || before.value != T::type_fingerprint()) {
        return Err(
            Invalid::new("a block that only Arcs and Weaks of one value type share")
                .within("ptr", 0),
        );
    }
    Ok(Some(Found {
        block,
        counts,
        before,
    }))
}

// SAFETY: a handle holds one offset pointer, relocated after a move of the handle (the
// block stays where it is), and a word; `validate` accepts only pointers to a live block
// of the handle's own segment, tagged as shared by handles of `T`, whose counts say the
// value is there and, while an `Arc` can reach it, whose value is valid; an old handle
// never lowers a count (see the module docs). The drop glue is the handle's own (a
// segment container).
unsafe impl<T: ShmSafe> ShmSafe for Arc<T> {
    /// Over the value's pointee fingerprint, as a `Box`'s, and the handle's size (16
    /// bytes since handles record their trust epoch).
    const LAYOUT_FINGERPRINT: u64 =
        compound_fingerprint("Arc", &[T::POINTEE_FINGERPRINT, size_of::<Self>() as u64]);

    /// A pointer outside the segment, or counts that say the value is gone, are refused.
    const ALL_BIT_PATTERNS_VALID: bool = false;

    unsafe fn validate(value: *const Self) -> Result<(), Invalid> {
        // SAFETY: the caller's contract: aligned, readable, not written meanwhile.
        let arc = unsafe { &*value };
        let walk = Walk::enter();
        let Some(found) = validate_link(&arc.link, &walk, Owner::Strong, |_| true)? else {
            return Ok(());
        };
        if strong(found.counts) == 0 || weak(found.counts) == 0 {
            return Err(Invalid::new(
                "an Arc whose counts say its value is there (strong and weak at least 1)",
            )
            .within("ptr", 0));
        }
        if found.before.strong >= strong(found.counts) {
            return Err(
                Invalid::new("no more Arcs to a value than its strong count").within("ptr", 0),
            );
        }
        if found.before.value_checked || T::ALL_BIT_PATTERNS_VALID {
            return Ok(());
        }
        block::deeper(|| {
            // SAFETY: a `Shared<T>`'s place whose value this handle keeps (see `get`);
            // shared, so nothing writes it but through atomics.
            unsafe { Shared::validate(found.block.as_ptr()) }
        })
        .map_err(|e| e.within("*", 0))
    }

    #[inline]
    unsafe fn relocate(&mut self, moved_from: usize) {
        // SAFETY: forwarded: the link is the handle's first field.
        unsafe { relocate_link(&mut self.link, moved_from) }
    }

    /// The layout fingerprint, the same in every program.
    fn type_fingerprint() -> u64 {
        Self::LAYOUT_FINGERPRINT
    }
}

// SAFETY: as for `Arc`; a `Weak`'s block may hold no value (strong count 0), which is then
// not read.
unsafe impl<T: ShmSafe> ShmSafe for Weak<T> {
    /// Over the value's pointee fingerprint and the handle's size, as an `Arc`'s.
    const LAYOUT_FINGERPRINT: u64 =
        compound_fingerprint("Weak", &[T::POINTEE_FINGERPRINT, size_of::<Self>() as u64]);

    /// A pointer outside the segment must be refused.
    const ALL_BIT_PATTERNS_VALID: bool = false;

    unsafe fn validate(value: *const Self) -> Result<(), Invalid> {
        // SAFETY: the caller's contract: aligned, readable, not written meanwhile.
        let w = unsafe { &*value };
        let walk = Walk::enter();
        let Some(found) = validate_link(&w.link, &walk, Owner::Weak, |c| strong(c) > 0)? else {
            return Ok(());
        };
        let strong_now = strong(found.counts);
        if found.before.weak >= weak(found.counts).saturating_sub(u64::from(strong_now > 0)) {
            return Err(
                Invalid::new("no more Weaks to a block than its weak count").within("ptr", 0)
            );
        }
        if strong_now == 0 || found.before.value_checked || T::ALL_BIT_PATTERNS_VALID {
            return Ok(());
        }
        block::deeper(|| validate_value_under_weak(&w.link, found.block))
            .map_err(|e| e.within("*", 0))
    }

    #[inline]
    unsafe fn relocate(&mut self, moved_from: usize) {
        // SAFETY: forwarded: the link is the handle's first field.
        unsafe { relocate_link(&mut self.link, moved_from) }
    }

    /// The layout fingerprint, the same in every program.
    fn type_fingerprint() -> u64 {
        Self::LAYOUT_FINGERPRINT
    }
}

/// Validates the value of a `Weak`'s block that `Arc`s hold: an upgrade would read it. In
/// a writable mapping, `Arc`s elsewhere may drop it meanwhile, so it is kept by a strong
/// count of the validation's own while it is read (given back afterwards, or kept, and so
/// the value leaked, if it is invalid: dropping an invalid value could do anything). A
/// read-only mapping has no writers to race.
fn validate_value_under_weak<T: ShmSafe>(
    link: &Link<T>,
    block: NonNull<Shared<T>>,
) -> Result<(), Invalid> {
    // SAFETY: the block is live while the `Weak` is (as an `Arc`'s, see `Link::counts`).
    let counts = unsafe { &(*block.as_ptr()).counts };
    if link.allocator().is_err() {
        // SAFETY: a mapping that cannot write is a read-only one, which no writer runs
        // beside; the counts say the value is there.
        return unsafe { Shared::validate(block.as_ptr()) };
    }
    let pinned = counts.fetch_update(Ordering::Acquire, Ordering::Relaxed, |c| {
        (strong(c) > 0 && strong(c) < MAX).then(|| c + STRONG)
    });
    if pinned.is_err() {
        // Dropped meanwhile (or as many `Arc`s as can be): nothing an upgrade can reach.
        return Ok(());
    }
    // SAFETY: the value is kept by the count just raised; shared, so nothing writes it but
    // through atomics.
    unsafe { Shared::validate(block.as_ptr()) }?;
    // SAFETY: the count raised above, given back; the mapping is writable and mapped.
    unsafe { release_strong(block) };
    Ok(())
}

/// Relocates a handle's link after a move of the handle from `moved_from`.
///
/// # Safety
/// As for [`ShmSafe::relocate`], the link at offset 0 of the handle.
#[inline]
unsafe fn relocate_link<T: ShmSafe>(link: &mut Link<T>, moved_from: usize) {
    if link.block().is_none() {
        // All-zero bytes (a pointer at itself) would aim at the old place otherwise.
        link.ptr = OffsetPtr::null();
    } else {
        // SAFETY: the pointer moved with the handle, from its own old address.
        unsafe { link.ptr.relocate(moved_from) }
    }
}

impl<T> Drop for Arc<T> {
    /// Gives back the handle's count: the last `Arc` drops the value in place, and the
    /// last handle frees the block.
    fn drop(&mut self) {
        if let Some(block) = self.link.detach() {
            // SAFETY: the handle is emptied and its count given back once; the mapping is
            // mapped while the value holding the handle is dropped.
            unsafe { release_strong(block) };
        }
    }
}

impl<T> Drop for Weak<T> {
    /// Gives back the handle's count: the last handle frees the block.
    fn drop(&mut self) {
        if let Some(block) = self.link.detach() {
            // SAFETY: as for `Arc`; the `Arc`s hold a weak count while the value is there.
            unsafe { release_weak(block) };
        }
    }
}

impl<T: ShmSafe> Arc<T> {
    /// Builds a value from `src` in a new block and makes this handle its only `Arc`; the
    /// handle's old value is given back afterwards. On error nothing changed.
    fn replace_from<S>(&mut self, src: S) -> Result<(), AllocError>
    where
        T: Emplace<S>,
    {
        let alloc = self.link.allocator()?;
        let new = block::allocate::<Shared<T>>(&alloc)?;
        let place = new.as_ptr();
        // A handle in a segment (as the allocator says it is) always finds the epoch.
        let born = trust_epoch(&self.link).unwrap_or(0);
        // SAFETY: a fresh `Shared<T>`'s place in a block of this mapping, aligned, that
        // only we know: its count word and epoch are written, then its value built in
        // place.
        let built = unsafe {
            (&raw mut (*place).counts).write(AtomicU64::new(STRONG | WEAK));
            (&raw mut (*place).born).write(born);
            emplace_at(NonNull::new_unchecked(&raw mut (*place).value), src)
        };
        if let Err(e) = built {
            // SAFETY: allocated just above; it holds no value.
            unsafe { block::free(new) };
            return Err(e);
        }
        // SAFETY: the block is in the mapping that holds the handle (its allocator was
        // found from the handle's address), complete, and tagged (after its epoch, which a
        // check of a handle to it reads once it sees the tag) before it is published.
        if let Some(old) = unsafe {
            block::share(new, T::type_fingerprint());
            self.link.publish(new)
        } {
            // SAFETY: the handle no longer holds the old block: its count is given back.
            unsafe { release_strong(old) };
        }
        Ok(())
    }
}

/// An `Arc` holding a new value built from the source (`Some`), or an empty one (`None`),
/// as a [`Box`](crate::Box) is built.
impl<T: Emplace<S>, S> Emplace<Option<S>> for Arc<T> {
    fn emplace<'a>(slot: Slot<'a, Self>, src: Option<S>) -> Result<Filled<'a, Self>, AllocError> {
        let mut arc = slot.write(Arc::new());
        if let Some(src) = src {
            arc.as_mut().insert(src)?;
        }
        Ok(arc)
    }
}
