//! [`MemoryAlgorithm`]: how a segment finds free space in its block area (Boost's
//! "memory algorithm": `rbtree_best_fit`, `simple_seq_fit`, or one the user writes).
//!
//! The algorithm is chosen by a type parameter of the segment and recorded in its header;
//! the segment calls it only under its lock, through a table of functions ([`Ops`]) made
//! once per algorithm. The thread caches, the object layer and the containers never call it
//! (they work on the block format, [`super::block`]), so an indirect call lands only on the
//! locked path, where the lock itself costs tens of times more; and the types that carry a
//! segment's allocator (containers, handles) stay free of the algorithm's type.

use super::block::{ALGORITHM_BIT, HEADER, MIN_BLOCK};
use super::heap::{largest_free_walked, Heap};

/// A memory algorithm: the policy that finds, frees and resizes blocks in a segment's block
/// area. Implement it to give segments an algorithm of your own; the segment manager, the
/// thread caches and every container work with it unchanged.
///
/// Every function is called with the segment lock held, on a [`Heap`] whose blocks follow
/// the [block format](crate::algorithm#the-block-format). The block area starts as
/// `[start, end)` with nothing in it; [`init`](Self::init) makes its free space.
///
/// # Safety
/// The segment hands out what this algorithm returns as memory nobody else uses, so an
/// implementation must keep, at every step:
/// - Blocks: a block returned by `allocate` (or grown, shrunk) is a used block of the
///   chain, of at least the size asked, that overlaps no other used block; nothing the
///   algorithm writes lies in a used block's payload (its own used blocks' headers aside,
///   as the block format allows).
/// - The chain: headers are consistent from `start` to the sentinel at `end` after every
///   function returns, and — for crash safety — after every single write: a header's size
///   is written only once the bytes it covers hold valid blocks, so a process killed
///   anywhere leaves a chain that [`rebuild`](Self::rebuild) can trust, losing at worst the
///   block in flight.
/// - The counter: [`Heap::free_bytes`] is the sum of the free blocks' sizes.
/// - [`check`](Self::check) and [`rebuild`](Self::rebuild) read bytes that may be forged:
///   they follow no offset they have not checked (the heap's accessors panic rather than
///   read outside the segment; a forged segment must give an error, not a panic).
/// - [`KIND`](Self::KIND) is unique among the algorithms a program uses; kinds below 256
///   are shmkit's own.
pub unsafe trait MemoryAlgorithm: 'static {
    /// The name segments report ([`AlgorithmStats::name`](crate::AlgorithmStats)) and errors
    /// use.
    const NAME: &'static str;
    /// The number recorded in the segment header: opening a segment with another
    /// algorithm is an [`Error::AlgorithmMismatch`](crate::Error::AlgorithmMismatch).
    const KIND: u64;
    /// Words a free block keeps for the algorithm after its header and at its end: what
    /// zeroing the free memory leaves alone. The algorithm clears them when it hands the
    /// block out, so memory that was zeroed stays zeroed.
    const KEPT_WORDS: (u64, u64) = (0, 0);

    /// Bytes of table the algorithm wants after the segment header, for a segment of
    /// `segment_len` bytes ([`Heap::table_word`]). Asked once, at creation; a table that
    /// leaves no room for the block area makes the creation fail with
    /// [`Error::InvalidSize`](crate::Error::InvalidSize).
    fn table_bytes(segment_len: usize) -> usize {
        let _ = segment_len;
        0
    }

    /// Makes the free space of an empty area: `[start, end)` is yours, the sentinel's
    /// header at `end` is written, the counter and your words are zero.
    fn init(heap: &mut Heap);

    /// A used block of at least `size` bytes (a multiple of 8, at least [`MIN_BLOCK`],
    /// header included); None when none is free.
    fn allocate(heap: &mut Heap, size: u64) -> Option<u64>;

    /// A used block of at least `size` bytes whose payload (8 bytes in) lies at an address
    /// that is a multiple of `align`, a power of two above 8. By default: a block large
    /// enough for any padding, cut in front, the front piece freed.
    fn allocate_aligned(heap: &mut Heap, size: u64, align: u64) -> Option<u64> {
        aligned_by_cutting(heap, size, align, Self::allocate, Self::deallocate)
    }

    /// Frees used block `off` (the segment only passes blocks it allocated and nobody will
    /// use again).
    fn deallocate(heap: &mut Heap, off: u64);

    /// Bytes of the free block right after used block `off` that
    /// [`grow_forward`](Self::grow_forward) can take (0: none; the default).
    fn free_after(heap: &Heap, off: u64) -> u64 {
        let _ = (heap, off);
        0
    }

    /// Bytes of the free block right before used block `off` that
    /// [`grow_backward`](Self::grow_backward) can take (0: none; the default).
    fn free_before(heap: &Heap, off: u64) -> u64 {
        let _ = (heap, off);
        0
    }

    /// Grows used block `off` to `new_size` bytes into the free block after it (called only
    /// within what [`free_after`](Self::free_after) said). The block's marks stay.
    fn grow_forward(heap: &mut Heap, off: u64, new_size: u64) {
        let _ = (heap, off, new_size);
    }

    /// Grows used block `off` backward by `delta` bytes of the free block before it (called
    /// only within [`free_before`](Self::free_before), leaving 0 or at least [`MIN_BLOCK`]
    /// bytes of it); returns the block's new offset. The block's marks stay.
    fn grow_backward(heap: &mut Heap, off: u64, delta: u64) -> u64 {
        let _ = (heap, delta);
        off
    }

    /// Shrinks used block `off` toward `new_size` bytes, freeing the tail when it can;
    /// returns the size the block has afterwards (by default it keeps its size).
    fn shrink(heap: &mut Heap, off: u64, new_size: u64) -> u64 {
        let _ = new_size;
        heap.word(off) & !super::block::FLAGS
    }

    /// The segment grew: the area may now end at `new_end` (the new sentinel's header goes
    /// 8 bytes before it). By default the old sentinel becomes a used block reaching the
    /// new one, and is freed.
    fn extend(heap: &mut Heap, new_end: u64) {
        extend_by_freeing(heap, new_end, Self::deallocate)
    }

    /// The segment may shrink: cut a free block at the end of the area, keeping the area
    /// reaching `min_end` or later; returns the new end (the sentinel plus its header). By
    /// default nothing is cut.
    fn trim_end(heap: &mut Heap, min_end: u64) -> u64 {
        let _ = min_end;
        heap.end() + HEADER as u64
    }

    /// A cheap check, before anything else reads the algorithm's words (every open, also
    /// read-only ones): that they fit the room they have. By default there is nothing to
    /// check.
    fn check_state(heap: &Heap) -> Result<(), String> {
        let _ = heap;
        Ok(())
    }

    /// Checks every invariant of the algorithm's structures against the chain (which the
    /// segment has checked already); the error says what is wrong.
    fn check(heap: &Heap) -> Result<(), String>;

    /// Derives the algorithm's structures again from the chain of headers, after a process
    /// died holding the segment lock, merging free neighbours where the algorithm wants
    /// them merged. An error marks the segment corrupted.
    fn rebuild(heap: &mut Heap) -> Result<(), String>;

    /// Size of the largest free block, header included (0 when none). By default a walk
    /// of the chain.
    fn largest_free(heap: &Heap) -> u64 {
        largest_free_walked(heap)
    }

    /// `(first levels, size classes)` of the algorithm's index of free blocks, for
    /// [`AlgorithmStats`](crate::AlgorithmStats); by default one list.
    fn size_classes(heap: &Heap) -> (usize, usize) {
        let _ = heap;
        (0, 1)
    }
}

/// The default aligned allocation: a block with room for the worst padding, whose front
/// piece (when not empty) becomes a block of its own and is freed.
fn aligned_by_cutting(
    heap: &mut Heap,
    size: u64,
    align: u64,
    allocate: fn(&mut Heap, u64) -> Option<u64>,
    deallocate: fn(&mut Heap, u64),
) -> Option<u64> {
    let padded = size.checked_add(align)?.checked_add(MIN_BLOCK as u64)?;
    let off = allocate(heap, padded)?;
    let have = heap.word(off) & !super::block::FLAGS;
    let pad = aligned_pad(heap, off, have, size, align)?;
    if pad == 0 {
        return Some(off);
    }
    let at = off + pad;
    let kept = heap.word(off) & ALGORITHM_BIT;
    // The second header first: the first still spans both if we die in between.
    heap.set_word(at, have - pad);
    heap.set_word(off, pad | kept);
    deallocate(heap, off);
    Some(at)
}

/// Bytes to skip at the front of block `off` of `have` bytes so that its payload is aligned
/// to `align`, when the skipped part can stand as a block and `size` bytes still fit.
pub(crate) fn aligned_pad(heap: &Heap, off: u64, have: u64, size: u64, align: u64) -> Option<u64> {
    let payload = heap.base().addr() as u64 + off + HEADER as u64;
    let mut pad = super::block::round_up(payload, align) - payload;
    while pad != 0 && pad < MIN_BLOCK as u64 {
        pad += align;
    }
    (pad.checked_add(size)? <= have).then_some(pad)
}

/// The default growth: the old sentinel becomes a used block up to the new one, then is
/// freed (a sliver too small for a block stays outside the area until a later growth).
fn extend_by_freeing(heap: &mut Heap, new_end: u64, deallocate: fn(&mut Heap, u64)) {
    let old = heap.end();
    let sentinel = new_end - HEADER as u64;
    let grown = sentinel - old;
    if grown < MIN_BLOCK as u64 {
        return;
    }
    let kept = heap.word(old) & ALGORITHM_BIT;
    // Past the old end first, then the block that reaches it: a crash in between leaves the
    // old chain as it was, or the new one with the block leaked.
    heap.set_word(sentinel, 0);
    heap.set_word(old, grown | kept);
    heap.set_end(sentinel);
    deallocate(heap, old);
}

/// The memory algorithm's own view of a segment (Boost's `get_memory_algorithm`), measured
/// in one go: under the segment lock for writable mappings, as a snapshot for read-only ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AlgorithmStats {
    /// The algorithm's [`NAME`](MemoryAlgorithm::NAME).
    pub name: &'static str,
    /// Bytes of the block area the algorithm manages: the segment minus its header and the
    /// algorithm's table.
    pub managed: usize,
    /// Bytes in the algorithm's free blocks, block headers included. Blocks held in thread
    /// caches are in use as far as the algorithm knows; the segment's `free_memory` counts
    /// them as free.
    pub free: usize,
    /// Usable bytes of the largest free block: the largest request that can succeed now
    /// without emptying the thread caches (0 when nothing is free).
    pub largest_free: usize,
    /// First levels of the algorithm's index of free blocks (TLSF: power-of-two size
    /// classes; 0 for an algorithm that keeps one list).
    pub levels: usize,
    /// Free lists in all (TLSF: every level is split into linear second-level classes).
    pub size_classes: usize,
}

/// An algorithm's functions, as the segment calls them (one table per algorithm, made at
/// compile time: see [`ops`]).
pub(crate) struct Ops {
    pub(crate) name: &'static str,
    pub(crate) kind: u64,
    pub(crate) kept_words: (u64, u64),
    pub(crate) table_bytes: fn(usize) -> usize,
    pub(crate) init: fn(&mut Heap),
    pub(crate) allocate: fn(&mut Heap, u64) -> Option<u64>,
    pub(crate) allocate_aligned: fn(&mut Heap, u64, u64) -> Option<u64>,
    pub(crate) deallocate: fn(&mut Heap, u64),
    pub(crate) free_after: fn(&Heap, u64) -> u64,
    pub(crate) free_before: fn(&Heap, u64) -> u64,
    pub(crate) grow_forward: fn(&mut Heap, u64, u64),
    pub(crate) grow_backward: fn(&mut Heap, u64, u64) -> u64,
    pub(crate) shrink: fn(&mut Heap, u64, u64) -> u64,
    pub(crate) extend: fn(&mut Heap, u64),
    pub(crate) trim_end: fn(&mut Heap, u64) -> u64,
    pub(crate) check_state: fn(&Heap) -> Result<(), String>,
    pub(crate) check: fn(&Heap) -> Result<(), String>,
    pub(crate) rebuild: fn(&mut Heap) -> Result<(), String>,
    pub(crate) largest_free: fn(&Heap) -> u64,
    pub(crate) size_classes: fn(&Heap) -> (usize, usize),
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

trait HasOps {
    const OPS: Ops;
}

impl<A: MemoryAlgorithm> HasOps for A {
    const OPS: Ops = Ops {
        name: A::NAME,
        kind: A::KIND,
        kept_words: A::KEPT_WORDS,
        table_bytes: A::table_bytes,
        init: A::init,
        allocate: A::allocate,
        allocate_aligned: A::allocate_aligned,
        deallocate: A::deallocate,
        free_after: A::free_after,
        free_before: A::free_before,
        grow_forward: A::grow_forward,
        grow_backward: A::grow_backward,
        shrink: A::shrink,
        extend: A::extend,
        trim_end: A::trim_end,
        check_state: A::check_state,
        check: A::check,
        rebuild: A::rebuild,
        largest_free: A::largest_free,
        size_classes: A::size_classes,
    };
}

/// The function table of algorithm `A`.
#[inline]
pub(crate) fn ops<A: MemoryAlgorithm>() -> &'static Ops {
    &<A as HasOps>::OPS
}
