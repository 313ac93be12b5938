//! Blocks that one container owns, and the check that no two containers own one.
//!
//! A container's pointer read from untrusted bytes (a file at rest, an image, a buffer)
//! could aim at a block that another container, an object or the segment's own tables
//! also use: two `&mut` to one buffer, or a double free. So every block a container owns
//! names its owner in its first word (the [tag](set_owner), written before the block is
//! published and again whenever the owner moves), and a validation accepts a pointer only
//! to the start of a genuine used block, found by walking the allocator's chain of block
//! headers, that carries no mark (neither an object entry nor one of the segment's own) and
//! whose tag names the very pointer (or node) being validated. One word names one owner,
//! so of two pointers to a block at most one passes.
//!
//! The tag is the distance from the block to its owner, in the low 48 bits (segments stay
//! below 2^47 bytes), under a fixed high mark: a free block's first word is a free-list
//! link and a cached block's a cache link, both offsets below 2^48, so neither ever reads
//! as a tag.
//!
//! A block that several handles share (an `Arc`'s value and counts) has no one owner to
//! name: its first word says "shared, by handles of this kind" instead ([`set_shared`]),
//! under another high mark than an owner's, so that no container takes such a block for
//! its own nor a handle a container's block (or a block of values of another type) for a
//! shared one. How many handles share it is the handles' business (their counts).
//!
//! The walk costs O(blocks); a thread keeps its last one for the next checks (see
//! `genuine`). A read-only mapping only reads, for which the bounds suffice: nothing is
//! checked there beyond them.

use core::cell::RefCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::alloc::block::HEADER;
use crate::alloc::heap::Heap;
use crate::layout::Invalid;
use crate::manager::header::words;
use crate::manager::SegmentCore;
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
    // Atomic: a validation elsewhere may read it meanwhile (and then finds it names
    // another owner than the pointer it checks, before or after).
    unsafe { AtomicU64::from_ptr(block.cast::<u64>().as_ptr()) }
        .store(tag(block.as_ptr().addr(), owner.addr()), Ordering::Relaxed);
}

/// Checks a pointer read from bytes from elsewhere, to a block of at least `len` bytes
/// (tag included) that the pointer (or node) at `owner` claims to own: inside `owner`'s
/// mapping and aligned to 8; in a writable mapping also the start of a used block of at
/// least `len` usable bytes that is neither an object entry nor one of the segment's own
/// tables, whose tag names `owner`. `len` must be at least [`OWNER_TAG_BYTES`].
pub fn check_owned(block: *const u8, owner: *const u8, len: usize) -> Result<NonNull<u8>, Invalid> {
    check_tagged(
        block,
        owner,
        len,
        tag(block.addr(), owner.addr()),
        "a pointer to a block that names this pointer as its one owner",
    )
}

/// The high 16 bits of the tag of a shared block: not [`MARK`], so that no owner's tag
/// equals it (and, as [`MARK`], no free-list or cache link).
const SHARED_MARK: u64 = 0x5EA2 << 48;

/// Records in the first word of `block` that handles of the kind `kind` share it (only
/// the low 48 bits of `kind` count: say, of a fingerprint of the shared value's type).
/// Called once the block is allocated, before the first handle to it is published; the
/// tag stays while the block lives (its handles move, the block does not).
///
/// # Safety
/// As for [`set_owner`].
#[inline]
pub unsafe fn set_shared(block: NonNull<u8>, kind: u64) {
    // SAFETY: the caller's contract: an aligned word of a block it owns and may write.
    // Atomic, as an owner's tag.
    unsafe { AtomicU64::from_ptr(block.cast::<u64>().as_ptr()) }
        .store(SHARED_MARK | (kind & LOW), Ordering::Relaxed);
}

/// Checks a pointer read from bytes from elsewhere, held by the handle at `handle`, to a
/// block of at least `len` bytes (tag included) that handles of the kind `kind` share: as
/// [`check_owned`] (bounds only in a read-only mapping), except that the tag must be the
/// one [`set_shared`] wrote for `kind`.
pub fn check_shared(
    block: *const u8,
    handle: *const u8,
    kind: u64,
    len: usize,
) -> Result<NonNull<u8>, Invalid> {
    check_tagged(
        block,
        handle,
        len,
        SHARED_MARK | (kind & LOW),
        "a pointer to a block that handles of its kind share",
    )
}

/// [`check_owned`] and [`check_shared`]: a block of the mapping of `within`, tagged
/// `expected` (in a writable mapping), or refused with `refusal` if only the tag differs.
fn check_tagged(
    block: *const u8,
    within: *const u8,
    len: usize,
    expected: u64,
    refusal: &'static str,
) -> Result<NonNull<u8>, Invalid> {
    let core =
        registry::segment_at(within).ok_or_else(|| Invalid::new("a pointer inside a segment"))?;
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
    match genuine(&core, off as u64, len, expected)? {
        Found::Owned => Ok(block),
        Found::NoBlock => Err(Invalid::new(
            "a pointer to the start of a block of its own, allocated and large enough",
        )),
        Found::OtherOwner => Err(Invalid::new(refusal)),
    }
}

/// Where the used blocks of one segment start (payload offsets, in address order), from
/// one walk of its chain of block headers under the segment lock.
struct Walk {
    /// The mapping walked and the registry generation then (a mapping that went, and
    /// another mapped at its address, is another generation), and the segment's chain
    /// generation then: while all three are the same, the walk is true.
    base: usize,
    registry: u64,
    chain: u64,
    starts: Vec<u64>,
}

thread_local! {
    /// This thread's last walk, for the next check of the same segment: a validation of a
    /// million containers walks once, not a million times.
    static LAST_WALK: RefCell<Option<Walk>> = const { RefCell::new(None) };
}

/// What a check found at a pointer's target.
enum Found {
    /// A block of its own, whose tag names the pointer (or its kind, shared).
    Owned,
    /// No used block without a mark, large enough, starts there.
    NoBlock,
    /// Such a block, whose tag names another owner (or kind).
    OtherOwner,
}

/// Whether a used block without a mark, of at least `len` usable bytes, starts at payload
/// offset `off` of `core`'s segment, and whether its first word (the tag) is `expected`. Under the
/// segment lock, so no block starts or ends meanwhile, from this thread's last walk when
/// nothing changed since, else a new one. The header and the tag are read now: marks are
/// set without the lock, and a tag by its owner (atomically, see [`set_owner`]).
fn genuine(core: &SegmentCore, off: u64, len: usize, expected: u64) -> Result<Found, Invalid> {
    let (base, registry) = (core.base().as_ptr().addr(), registry::generation());
    let found = core.with_chain(|t, chain| {
        let start = |walk: &Walk| walk.starts.binary_search(&off).is_ok();
        let is_start = LAST_WALK
            .try_with(|last| {
                let mut last = last.borrow_mut();
                let current = last
                    .as_ref()
                    .is_some_and(|w| (w.base, w.registry, w.chain) == (base, registry, chain));
                if !current {
                    *last = Some(Walk::new(t, base, registry, chain));
                }
                last.as_ref().is_some_and(start)
            })
            .unwrap_or_else(|_| start(&Walk::new(t, base, registry, chain)));
        let block = is_start
            && t.plain_block_size(off - HEADER as u64)
                .is_some_and(|size| size - HEADER as u64 >= len as u64);
        if !block {
            return Found::NoBlock;
        }
        // SAFETY: a used block starts at `off` (the walk, under the lock), so its first
        // word lies aligned in the mapping; it was written (a tag, a link, the image's
        // bytes), and is written only atomically by the block's owner meanwhile (a shared
        // block's, once, before its first handle is published).
        let tag = unsafe { AtomicU64::from_ptr(core.base().as_ptr().add(off as usize).cast()) }
            .load(Ordering::Relaxed);
        if tag == expected {
            Found::Owned
        } else {
            Found::OtherOwner
        }
    });
    found.map_err(|_| Invalid::new("a segment whose allocator can be locked and walked"))
}

impl Walk {
    fn new(t: &Heap, base: usize, registry: u64, chain: u64) -> Walk {
        let mut starts = Vec::new();
        t.for_each_used(|b, _| starts.push(b.offset + HEADER as u64));
        Walk {
            base,
            registry,
            chain,
            starts,
        }
    }
}

/// Draws a new trust epoch for the segment of `core` (see [`trust_epoch`]): a writable
/// mapping just created it, or opened it without trusting what it found, and nothing else
/// uses it yet.
pub(crate) fn new_trust_epoch(core: SegmentCore) {
    use std::hash::BuildHasher;
    // Keyed from the system's randomness (and different for every call).
    let epoch = std::hash::RandomState::new().hash_one(core.base().as_ptr().addr()) | 1;
    Space::new(core)
        .word(words::TRUST_EPOCH)
        .store(epoch, Ordering::Relaxed);
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
