//! What [`Box`](super::Box) and [`Arc`](crate::Arc) share: a value in a block of its own
//! (allocated, freed), pointers to such blocks checked for bytes from elsewhere, and
//! drops of chains of them that run in a loop instead of recursing once per link.
//!
//! A block is a buffer of one element (see [`crate::buffer`]): its first word is the tag
//! (see [`shmkit_runtime::segment::owned`]), naming the one box that owns it or saying
//! that `Arc`s and `Weak`s of one value type share it, padded to the value's alignment;
//! the value follows. Handles point at the value, which the block is found from.

use core::alloc::Layout;
use core::cell::{Cell, RefCell};
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use core::sync::atomic::{fence, Ordering};
use std::collections::HashMap;

use shmkit_runtime::segment::owned::{self, OWNER_TAG_BYTES};
use shmkit_runtime::{AllocError, Invalid, OffsetPtr, SegmentAllocator};

use crate::buffer;

/// The layout of the block of one `B`, tag included; None past `isize::MAX` bytes.
fn layout<B>() -> Option<Layout> {
    buffer::layout::<B>(1)
}

/// The bytes of a block before its value: those of a buffer of no elements.
fn prefix<B>() -> usize {
    buffer::layout::<B>(0).map_or(OWNER_TAG_BYTES, |l| l.size())
}

/// A block for one `B`, from `alloc`: the place of its value, uninitialised. Its tag is
/// written before the block is published ([`moved_to`], [`share`]); until then it is
/// whatever the allocator left there (a link, never a tag).
pub(crate) fn allocate<B>(alloc: &SegmentAllocator<'_>) -> Result<NonNull<B>, AllocError> {
    let layout = layout::<B>().ok_or_else(AllocError::capacity_overflow)?;
    let start = alloc.allocate(layout)?.cast::<u8>();
    // SAFETY: `prefix < layout.size() <= block.len()`: inside the block, aligned for a `B`.
    Ok(unsafe { start.add(prefix::<B>()) }.cast())
}

/// The first word of the block of `value`, for its tag.
fn tag_of<B>(value: NonNull<B>) -> NonNull<u8> {
    // SAFETY: the block starts `prefix` bytes before its value (`allocate`).
    unsafe { value.cast::<u8>().sub(prefix::<B>()) }
}

/// Gives back the block of the `B` at `value`, which is gone (dropped or moved out), to
/// the mapping it lies in. A failure means a corrupted segment, which its next allocation
/// reports; the block leaks.
///
/// # Safety
/// `value` came from [`allocate`] of a `B` in a writable mapping that stays mapped during
/// the call, holds no value any more, and nothing uses its block afterwards.
pub(crate) unsafe fn free<B>(value: NonNull<B>) {
    // SAFETY: the block is live and its tag is initialised (`allocate`); the reference, to
    // bytes of any value, only finds the mapping, within this call.
    let first = unsafe { value.cast::<MaybeUninit<u8>>().sub(prefix::<B>()).as_ref() };
    if let Ok(alloc) = SegmentAllocator::of(first) {
        // SAFETY: the caller's contract: a buffer of one `B` of this mapping that nothing
        // uses.
        unsafe { buffer::free(&alloc, value, 1) };
    }
}

/// Records that the box whose pointer is now at `owner` owns the block of `value` (before
/// it is published, after the box moved, or the value moved between boxes).
///
/// # Safety
/// `value` came from [`allocate`] of a `B` in a writable mapping, and the caller owns it.
pub(crate) unsafe fn moved_to<B>(value: NonNull<B>, owner: *const u8) {
    // SAFETY: forwarded: a buffer of one `B`, whose tag is reserved at its start.
    unsafe { buffer::moved_to(value, owner) };
}

/// Records that handles of `kind` (the value type's fingerprint) share the block of
/// `value`, after everything a check of such a handle reads before its value is written
/// (Release: [`check_shared`] then sees it).
///
/// # Safety
/// `value` came from [`allocate`] of a `B` in a writable mapping, and no handle to it is
/// published yet.
pub(crate) unsafe fn share<B>(value: NonNull<B>, kind: u64) {
    fence(Ordering::Release);
    // SAFETY: the block's first word, reserved for the tag, of a block the caller owns.
    unsafe { owned::set_shared(tag_of(value), kind) };
}

/// Checks a box's pointer from elsewhere: to the value of a block of its own (inside the
/// box's own mapping, aligned, and in a writable mapping, where the value may be changed
/// or freed through it, a live block whose tag names this very pointer). A read-only
/// mapping only reads, and for that the bounds suffice. Finding the block walks the
/// segment's blocks (once per validation of an object).
pub(crate) fn check_owned<B>(ptr: &OffsetPtr<B>) -> Result<NonNull<B>, Invalid> {
    buffer::check(ptr, 1)?;
    NonNull::new(ptr.get()).ok_or_else(|| Invalid::new("a pointer to a value"))
}

/// Checks an `Arc`'s or `Weak`'s pointer from elsewhere, as [`check_owned`], except that
/// the block's tag must say that handles of `kind` share it; what was written before the
/// tag ([`share`]) is then seen.
pub(crate) fn check_shared<B>(ptr: &OffsetPtr<B>, kind: u64) -> Result<NonNull<B>, Invalid> {
    let len = layout::<B>().map_or(usize::MAX, |l| l.size());
    let value = ptr.get();
    let block = value.cast::<u8>().wrapping_sub(prefix::<B>());
    owned::check_shared(block, (ptr as *const OffsetPtr<B>).cast(), kind, len)?;
    fence(Ordering::Acquire);
    NonNull::new(value)
        .filter(|v| v.as_ptr().addr() % align_of::<B>() == 0)
        .ok_or_else(|| Invalid::new("a block aligned for its value"))
}

/// A last step of a drop that a nested drop left for the outermost one on this thread.
struct Pending {
    block: NonNull<u8>,
    finish: unsafe fn(NonNull<u8>),
}

thread_local! {
    /// The steps queued while a [`finish_flat`] runs on this thread; None when none runs.
    static PENDING: RefCell<Option<std::vec::Vec<Pending>>> = const { RefCell::new(None) };
}

/// Runs `finish(block)`, the last step of dropping a box or the last `Arc` of a value
/// (dropping the value in place, giving the block back): at once when no such step runs
/// on this thread, followed by those that nested drops queued meanwhile; inside one,
/// queued for it. So a list of a million boxes drops in a loop instead of a million nested
/// calls, which would overflow the stack. A thread being torn down, whose queue is gone,
/// runs it at once.
///
/// The value is ownerless from before this call until `finish` runs (a process killed
/// meanwhile leaks it).
///
/// # Safety
/// `finish(block)` is sound to run once, at any time until the outermost call on this
/// thread returns.
pub(crate) unsafe fn finish_flat(block: NonNull<u8>, finish: unsafe fn(NonNull<u8>)) {
    let outermost = PENDING.try_with(|p| {
        let mut p = p.borrow_mut();
        match p.as_mut() {
            Some(queue) => {
                queue.push(Pending { block, finish });
                false
            }
            None => {
                *p = Some(std::vec::Vec::new());
                true
            }
        }
    });
    match outermost {
        Ok(false) => {}
        Ok(true) => {
            let _close = CloseQueue;
            // SAFETY: the caller's contract.
            unsafe { finish(block) };
            while let Some(next) = PENDING.with(|p| p.borrow_mut().as_mut().and_then(|q| q.pop())) {
                // SAFETY: queued by a nested call, whose caller made the same promise.
                unsafe { (next.finish)(next.block) };
            }
        }
        // SAFETY: the caller's contract.
        Err(_) => unsafe { finish(block) },
    }
}

/// Closes the queue of [`finish_flat`] when the outermost call ends (a panic leaks what
/// is still queued).
struct CloseQueue;

impl Drop for CloseQueue {
    fn drop(&mut self) {
        let _ = PENDING.try_with(|p| p.borrow_mut().take());
    }
}

/// What owns a block reached by a validation: one box, or `Arc`s and `Weak`s.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A `Box`.
    Box,
    /// An `Arc`.
    Strong,
    /// A `Weak`.
    Weak,
}

/// What the validation running on this thread found of one block so far.
#[derive(Clone, Copy, Default)]
pub(crate) struct Reached {
    /// The fingerprint of the value type the first handle to it gave.
    pub(crate) value: u64,
    /// How many boxes reached it.
    pub(crate) boxes: u64,
    /// How many `Arc`s reached it.
    pub(crate) strong: u64,
    /// How many `Weak`s reached it.
    pub(crate) weak: u64,
    /// Whether its value is validated already (or being validated further up).
    pub(crate) value_checked: bool,
}

impl Reached {
    /// Whether no handle reached the block before.
    pub(crate) fn is_new(&self) -> bool {
        self.boxes + self.strong + self.weak == 0
    }
}

thread_local! {
    /// The blocks that the outermost validation of a box, `Arc` or `Weak` on this thread
    /// reached so far, by address; None when none runs.
    static REACHED: RefCell<Option<HashMap<usize, Reached>>> = const { RefCell::new(None) };
}

/// The record of the blocks one validation reaches, from the outermost box, `Arc` or
/// `Weak` validated on this thread down through every one nested in its value: a block
/// reached twice is then seen (two boxes owning one block, a cycle, more `Arc`s than its
/// count), and a cycle ends. Boxes reached through sibling values validated separately
/// (the elements of a `Vec<Box<T>>`) are outside each other's record.
///
/// In a writable mapping the tags alone rule out two boxes of one block and cycles of
/// boxes (a block names one pointer, and a chain that entered a cycle would need the block
/// it entered by to name both the pointer it came from and the one closing the cycle), and
/// a box and an `Arc` of one block. A read-only mapping checks only bounds: there this
/// record is what ends a cycle, and keeps a block that many boxes reach from being
/// checked once per path to it.
pub(crate) struct Walk {
    outermost: bool,
}

impl Walk {
    /// Joins the validation running on this thread, or starts one.
    pub(crate) fn enter() -> Walk {
        let outermost = REACHED
            .try_with(|r| {
                let mut r = r.borrow_mut();
                let start = r.is_none();
                if start {
                    *r = Some(HashMap::new());
                }
                start
            })
            .unwrap_or(false);
        Walk { outermost }
    }

    /// Records that a handle of kind `owner`, to a value whose type has the fingerprint
    /// `value`, reached `block`, and, if `checks_value`, that its value is validated from
    /// now on (the caller does it unless it was before); what was found of the block
    /// before. Without a record (a thread being torn down) every block is new.
    pub(crate) fn reach(
        &self,
        block: NonNull<u8>,
        value: u64,
        owner: Owner,
        checks_value: bool,
    ) -> Reached {
        let fresh = Reached {
            value,
            ..Reached::default()
        };
        REACHED
            .try_with(|r| {
                let mut r = r.borrow_mut();
                let reached = r.as_mut()?.entry(block.as_ptr().addr()).or_insert(fresh);
                let before = *reached;
                match owner {
                    Owner::Box => reached.boxes += 1,
                    Owner::Strong => reached.strong += 1,
                    Owner::Weak => reached.weak += 1,
                }
                reached.value_checked |= checks_value;
                Some(before)
            })
            .ok()
            .flatten()
            .unwrap_or(fresh)
    }
}

impl Drop for Walk {
    fn drop(&mut self) {
        if self.outermost {
            let _ = REACHED.try_with(|r| r.borrow_mut().take());
        }
    }
}

/// How many links deep a validation goes on the stack of a thread that did not start for
/// it (whose stack size is unknown: 256 links take well under the 2 MiB of a Rust
/// thread's default stack). Fewer under Miri, so that its tests cross this bound and the
/// next with short chains.
const LINKS_ON_A_CALLER_STACK: u32 = if cfg!(miri) { 16 } else { 256 };
/// The stack of a thread that continues a validation, and how many links deep it goes
/// there (4 KiB a link).
const HELPER_STACK: usize = 64 << 20;
const LINKS_ON_A_HELPER_STACK: u32 = if cfg!(miri) { 32 } else { 1 << 14 };

thread_local! {
    /// How many links deep the validation on this thread is, and may go.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    static DEPTH_LIMIT: Cell<u32> = const { Cell::new(LINKS_ON_A_CALLER_STACK) };
}

/// Runs `check`, the validation of a value one link (box, `Arc`) further down: on this
/// thread while its stack has room for another link, else on a new thread with a large
/// stack of its own, which goes on from there (taking the record of the blocks reached
/// along). So a list of a million boxes from elsewhere is checked without overflowing any
/// stack: every 16384 links, one thread waits for the next. A thread that cannot be
/// started makes the value refused.
pub(crate) fn deeper(check: impl FnOnce() -> Result<(), Invalid>) -> Result<(), Invalid> {
    let depth = DEPTH.get();
    if depth >= DEPTH_LIMIT.get() {
        return on_a_new_stack(check);
    }
    DEPTH.set(depth + 1);
    let _back = RestoreDepth(depth);
    check()
}

/// Runs `check`, the validation of the elements of the container whose header is at
/// `header` (a `Vec`, `Deque`, `HashMap`, `Map` or `List` of values that need checking),
/// as one link further down, as a box's value is: the header is recorded as reached by
/// this thread's validation, so a second path to it (a cycle of containers holding their
/// own type, which a read-only mapping's bounds checks let through) is refused, and
/// `check` runs where the stack has room ([`deeper`]), so that containers nested a
/// million deep are checked without overflowing a stack. A header lies inside a block,
/// never at its start (a tag or an entry is there), so it is never taken for a block.
pub(crate) fn contents<T>(
    header: &T,
    check: impl FnOnce() -> Result<(), Invalid>,
) -> Result<(), Invalid> {
    let walk = Walk::enter();
    if !walk
        .reach(NonNull::from(header).cast(), 0, Owner::Box, true)
        .is_new()
    {
        return Err(Invalid::new(
            "containers that do not contain themselves (a cycle of pointers)",
        ));
    }
    deeper(check)
}

/// Sets the depth back when a link's check ends (or unwinds).
struct RestoreDepth(u32);

impl Drop for RestoreDepth {
    fn drop(&mut self) {
        DEPTH.set(self.0);
    }
}

/// A value handed to the thread that runs [`on_a_new_stack`]'s check.
struct Handed<T>(T);

// SAFETY: the thread that hands it over waits (`join`) until the other thread is done
// with it, so it is used by one thread at a time, as if the first thread ran the check
// itself: the check reads segment data, which holds no thread-bound state.
unsafe impl<T> Send for Handed<T> {}

impl<T> Handed<T> {
    fn take(self) -> T {
        self.0
    }
}

/// Runs `check` on a new thread with a large stack, while this one waits, with the
/// record of the blocks reached handed over and back.
#[cold]
fn on_a_new_stack(check: impl FnOnce() -> Result<(), Invalid>) -> Result<(), Invalid> {
    let record = REACHED.with(|r| r.borrow_mut().take());
    let work = Handed((check, record));
    let ran = std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("shmkit-validate".into())
            .stack_size(HELPER_STACK)
            .spawn_scoped(s, move || {
                let (check, record) = work.take();
                REACHED.with(|r| *r.borrow_mut() = record);
                DEPTH_LIMIT.set(LINKS_ON_A_HELPER_STACK);
                let checked = check();
                (checked, REACHED.with(|r| r.borrow_mut().take()))
            })
            .map(|helper| helper.join())
    });
    match ran {
        Ok(Ok((checked, record))) => {
            REACHED.with(|r| *r.borrow_mut() = record);
            checked
        }
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => {
            // The record went with the check that never ran; the walk fails anyway.
            REACHED.with(|r| *r.borrow_mut() = Some(HashMap::new()));
            Err(Invalid::new("values nested no deeper than a new thread is needed to check (none could be started)"))
        }
    }
}
