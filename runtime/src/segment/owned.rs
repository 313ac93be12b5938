//! Blocks that one container owns, and the check that no two containers own one.
//!
//! A container's pointer read from untrusted bytes (a file at rest, an image, a buffer)
//! could aim at a block that another container, an object or the segment's own tables
//! also use: two `&mut` to one buffer, or a double free. So every block a container owns
//! names its owner in its first word (the [tag](set_owner), written before the block is
//! published and again whenever the owner moves), and a validation accepts a pointer only
//! to the start of a genuine used block, found by walking the allocator's chain of block
//! headers, that carries no mark (not an object entry, not [internal](crate::alloc)) and
//! whose tag names the very pointer (or node) being validated. One word names one owner,
//! so of two pointers to a block at most one passes.
//!
//! The tag is the distance from the block to its owner, in the low 48 bits (segments stay
//! below 2^47 bytes), under a fixed high mark: a free block's first word is a free-list
//! link and a cached block's a cache link, both offsets below 2^48, so neither ever reads
//! as a tag.
//!
//! The walk costs O(blocks); one walk serves a whole validation of an object (every
//! container nested in it), see [`Scope`]. A read-only mapping only reads, for which the
//! bounds suffice: nothing is checked there beyond them.

use core::cell::RefCell;
use core::ptr::NonNull;

use crate::layout::Invalid;
use crate::manager::header::words;
use crate::objects::space::Space;
use crate::registry;

/// The bytes a container reserves at the start of each block it owns, for the tag.
pub const OWNER_TAG_BYTES: usize = 8;

/// The high 16 bits of every tag.
const MARK: u64 = 0x5EA1 << 48;
const LOW: u64 = (1 << 48) - 1;

fn tag(block: usize, owner: usize) -> u64 {
    MARK | (owner.wrapping_sub(block) as u64 & LOW)
}

/// Records in the first word of `block` that the pointer (or node) at `owner` owns it.
/// Called once a block is allocated, before the owner publishes a pointer to it, and
/// whenever the owner moves (its `relocate`) or the block changes owner.
///
/// # Safety
/// `block` is the start of a live allocation of a writable mapping, aligned to 8, that the
/// caller owns and that reserves its first [`OWNER_TAG_BYTES`] bytes for the tag.
#[inline]
pub unsafe fn set_owner(block: NonNull<u8>, owner: *const u8) {
    // SAFETY: the caller's contract: an aligned word of a block it owns and may write.
    unsafe {
        block
            .cast::<u64>()
            .write(tag(block.as_ptr().addr(), owner.addr()))
    };
}

/// Checks a pointer read from bytes from elsewhere, to a block of at least `len` bytes
/// (tag included) that the pointer (or node) at `owner` claims to own: inside `owner`'s
/// mapping and aligned to 8; in a writable mapping also the start of a used block of at
/// least `len` usable bytes that is neither an object entry nor one of the segment's own
/// tables, whose tag names `owner`. `len` must be at least [`OWNER_TAG_BYTES`].
pub fn check_owned(block: *const u8, owner: *const u8, len: usize) -> Result<NonNull<u8>, Invalid> {
    let core =
        registry::segment_at(owner).ok_or_else(|| Invalid::new("a pointer inside a segment"))?;
    let base = core.base().as_ptr().addr();
    let off = block.addr().wrapping_sub(base);
    let in_bounds = block.addr() % 8 == 0
        && len >= OWNER_TAG_BYTES
        && off.checked_add(len).is_some_and(|end| end <= core.size());
    let Some(block) = NonNull::new(block.cast_mut()).filter(|_| in_bounds) else {
        return Err(Invalid::new(
            "a pointer to a block that lies, aligned, inside the pointer's own segment",
        ));
    };
    if !core.writable() {
        return Ok(block);
    }
    let genuine = Scope::with_blocks(&core, |blocks| {
        let i = blocks.partition_point(|&(payload, ..)| payload < off as u64);
        blocks.get(i).is_some_and(|&(payload, usable, marks)| {
            payload == off as u64 && marks == 0 && usable >= len
        })
    });
    if !genuine {
        return Err(Invalid::new(
            "a pointer to the start of a block of its own, allocated and large enough",
        ));
    }
    // SAFETY: the block's first word lies aligned inside the mapping (checked above) and is
    // initialised (a used block's first word is a tag or a link written by whoever had it
    // last, or bytes of the image, which are initialised); nobody writes it meanwhile but
    // its owner, which is the value being validated and not yet handed out.
    let word = unsafe { block.cast::<u64>().read() };
    if word != tag(block.as_ptr().addr(), owner.addr()) {
        return Err(Invalid::new(
            "a pointer to a block that names this pointer as its one owner",
        ));
    }
    Ok(block)
}

/// What one walk of a segment's chain found: its base, and its used blocks as (payload
/// offset, usable bytes, marks) in address order.
type Walked = (usize, Vec<(u64, usize, u64)>);

/// A validation in progress on this thread: how deep, and the walk it made so far.
struct Active {
    depth: u32,
    walked: Option<Walked>,
}

thread_local! {
    static ACTIVE: RefCell<Active> = const { RefCell::new(Active { depth: 0, walked: None }) };
}

/// While one lives on this thread, [`check_owned`] walks each segment's blocks once and
/// reuses the walk (the runtime opens one around each object's validation: an object of a
/// million strings costs one walk, not a million). The blocks a container owns change
/// only through that container, which is still being validated; other blocks may come and
/// go meanwhile without changing any answer (see the module docs).
pub(crate) struct Scope;

impl Scope {
    pub(crate) fn enter() -> Scope {
        let _ = ACTIVE.try_with(|a| a.borrow_mut().depth += 1);
        Scope
    }

    /// Runs `f` on the used blocks of `core`'s segment: the walk of this scope, or a new
    /// one (kept when a scope is open).
    fn with_blocks<R>(
        core: &crate::manager::SegmentCore,
        f: impl Fn(&[(u64, usize, u64)]) -> R,
    ) -> R {
        let base = core.base().as_ptr().addr();
        let in_scope = ACTIVE.try_with(|a| {
            let mut a = a.borrow_mut();
            if a.depth == 0 {
                return None;
            }
            if a.walked.as_ref().is_none_or(|(b, _)| *b != base) {
                a.walked = Some((base, core.used_blocks()));
            }
            a.walked.as_ref().map(|(_, blocks)| f(blocks))
        });
        match in_scope {
            Ok(Some(r)) => r,
            _ => f(&core.used_blocks()),
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let _ = ACTIVE.try_with(|a| {
            let mut a = a.borrow_mut();
            a.depth -= 1;
            if a.depth == 0 {
                a.walked = None;
            }
        });
    }
}

/// Draws a new trust epoch for the segment of `core` (see [`trust_epoch`]): a writable
/// mapping just created it, or opened it without trusting what it found, and nothing else
/// uses it yet.
pub(crate) fn new_trust_epoch(core: crate::manager::SegmentCore) {
    use std::hash::BuildHasher;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let epoch = std::hash::RandomState::new().hash_one((core.base().as_ptr().addr(), nanos)) | 1;
    Space::new(core)
        .word(words::TRUST_EPOCH)
        .store(epoch, core::sync::atomic::Ordering::Relaxed);
}

/// The trust epoch of the segment `value` lies in (None outside a segment): a random
/// number, never 0, drawn anew whenever the segment's bytes came from somewhere untrusted
/// (created, opened cold, copied from an image or buffer), so that bytes from before
/// cannot hold it. A handle that records the epoch it was written in is known to come
/// from this segment's trusted writers when it holds the current one; an older handle
/// (say an `Arc` in a file, whose counts no validation of one object can confirm) is
/// then only trusted to read, never to free.
pub fn trust_epoch<T: ?Sized>(value: &T) -> Option<u64> {
    let core = registry::segment_at((value as *const T).cast())?;
    Some(Space::new(core).load_word::<true>(words::TRUST_EPOCH))
}
