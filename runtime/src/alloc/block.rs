//! The block format every memory algorithm keeps: what the rest of the segment (thread
//! caches, object entries, containers, recovery, the inspector) relies on, whichever
//! algorithm manages the free space.
//!
//! The block area `[start, end]` is a chain of blocks, each starting with a header word
//! (offsets are multiples of [`GRANULE`]):
//! ```text
//! [ size | flags : u64 ][ payload ...................................... ]
//! ```
//! `size` counts the header and is a multiple of [`GRANULE`], at least [`MIN_BLOCK`]; the
//! next block starts `size` bytes later, and the range ends in a zero-sized used sentinel
//! at `end`, so "the next block" always exists and a walk from `start` needs nothing but
//! headers. Flags:
//! - [`FREE`]: the algorithm's; a free block's bytes after the header are the algorithm's.
//! - [`ALGORITHM_BIT`]: the algorithm's own (TLSF: "the block before me is free"). The
//!   block layer keeps it on the first block when it splits or widens a used block.
//! - [`ENTRY`], [`INTERNAL`]: marks the owner of a used block sets and clears without the
//!   segment lock ([`mark_unlocked`]): the block holds an object entry, or the segment's
//!   own structures. Free blocks never carry them.
//!
//! Header words are written with relaxed atomic stores and read back atomically where a
//! reader may race the lock holder (a thread cache validating a pointer it is given).

use std::sync::atomic::{AtomicU64, Ordering};

/// Allocation granule and the alignment of every payload.
pub const GRANULE: usize = 8;
/// Bytes of bookkeeping in front of each allocated payload.
pub const HEADER: usize = 8;
/// The smallest block: room for a header and three words of an algorithm's free-block
/// bookkeeping (TLSF: two list links and a footer).
pub const MIN_BLOCK: usize = 32;

/// A free block.
pub const FREE: u64 = 1;
/// A flag the memory algorithm may use as it likes.
pub const ALGORITHM_BIT: u64 = 2;
/// A used block holding an object entry.
pub const ENTRY: u64 = 4;
/// A used block of the segment's own structures.
pub const INTERNAL: u64 = 1 << 63;
/// The marks of used blocks (see the module documentation).
pub const MARKS: u64 = ENTRY | INTERNAL;
/// Every bit of a header word that is not the size.
pub const FLAGS: u64 = 7 | INTERNAL;
/// The largest block: sizes stay below 2^48, clear of the flag bits.
pub const MAX_BLOCK: usize = 1 << 48;

/// Where a block is and how big it is (offsets from the segment base).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// Offset of the block's header from the segment base.
    pub offset: u64,
    /// Bytes of the block, header included.
    pub size: u64,
}

/// The words of the segment header that describe the block area, followed in memory by
/// the algorithm's table (see [`crate::alloc::MemoryAlgorithm::table_bytes`]). The layout
/// is part of the segment format.
#[repr(C)]
pub struct HeapState {
    /// Two words the algorithm keeps as it likes (TLSF: its first-level bitmap and level
    /// count).
    pub(crate) algorithm: [u64; 2],
    /// Offset of the first block.
    pub(crate) start: u64,
    /// Offset of the end sentinel (a zero-sized used block).
    pub(crate) end: u64,
    /// Bytes in free blocks, headers included: `end - start - free_bytes` is in use.
    pub(crate) free_bytes: u64,
}

impl HeapState {
    /// Where the free-bytes counter lies in the state (for the inspector's header read).
    pub const FREE_BYTES_OFFSET: usize = std::mem::offset_of!(HeapState, free_bytes);
    /// Where the algorithm's words lie in the state.
    pub const ALGORITHM_OFFSET: usize = std::mem::offset_of!(HeapState, algorithm);
}

#[inline]
pub(crate) fn round_up(n: u64, to: u64) -> u64 {
    (n + to - 1) & !(to - 1)
}

/// Block size serving a payload of `bytes`, or None when no block could be that large.
#[inline]
pub fn block_size_for(bytes: usize) -> Option<u64> {
    if bytes > MAX_BLOCK - HEADER - GRANULE {
        return None;
    }
    Some(round_up((bytes + HEADER) as u64, GRANULE as u64).max(MIN_BLOCK as u64))
}

/// The block size a header word holds (without its flags).
#[inline]
pub fn size_in(header: u64) -> u64 {
    header & !FLAGS
}

/// Header word of the used block whose payload is at `payload_off` in the segment at `base`, read
/// without the lock (for the thread cache and lookups); None unless the header looks like a
/// used block that ends before `limit` (a cheap guard against double and foreign frees).
/// Reads no allocator state, which the lock holder may be changing. `writable`: whether the
/// mapping may be written, and so may have a lock holder writing headers meanwhile (then
/// the header is read atomically; a read-only mapping, whose bytes nobody writes, reads it
/// plainly, since an atomic may not be formed over them).
///
/// # Safety
/// The segment at `base` is mapped (writable when `writable`) and `limit` is at most its
/// size.
#[inline]
pub unsafe fn used_header_unlocked(
    base: *mut u8,
    payload_off: u64,
    first_block: u64,
    limit: u64,
    writable: bool,
) -> Option<u64> {
    if payload_off % GRANULE as u64 != 0
        || payload_off < first_block + HEADER as u64
        || payload_off >= limit
    {
        return None;
    }
    let off = payload_off - HEADER as u64;
    // SAFETY: `off` is an aligned header position inside the mapping; a writable mapping's
    // header words are written atomically, a read-only one's are never written.
    let h = unsafe {
        let p = base.add(off as usize).cast::<u64>();
        if writable {
            AtomicU64::from_ptr(p).load(Ordering::Relaxed)
        } else {
            p.read()
        }
    };
    let size = size_in(h);
    (h & FREE == 0 && size >= MIN_BLOCK as u64 && size <= limit - off).then_some(h)
}

/// The word at `off` from `base`.
///
/// # Safety
/// `off` is an aligned word inside the mapping at `base`.
#[inline]
pub(crate) unsafe fn load(base: *mut u8, off: u64) -> u64 {
    // SAFETY: forwarded contract; the base is at least granule aligned.
    unsafe { base.add(off as usize).cast::<u64>().read() }
}

/// Writes the word at `off` from `base` with a relaxed atomic store (a plain `mov` on x86):
/// a thread-cache operation may read a used block's header without the lock while the lock
/// holder flips that header's [`ALGORITHM_BIT`]. Only writable segments ever write.
///
/// # Safety
/// `off` is an aligned word inside the writable mapping at `base`.
#[inline]
pub(crate) unsafe fn store(base: *mut u8, off: u64, v: u64) {
    crate::robust::crash::point("allocator: a write");
    // SAFETY: forwarded contract.
    unsafe { AtomicU64::from_ptr(base.add(off as usize).cast()).store(v, Ordering::Relaxed) }
}

/// Sets or clears `bit` in the header at `off` by a read-modify-write, keeping the marks
/// the block's owner may be setting meanwhile without the lock.
///
/// # Safety
/// As for [`store`].
#[inline]
pub(crate) unsafe fn set_bit(base: *mut u8, off: u64, bit: u64, on: bool) {
    crate::robust::crash::point("allocator: a write");
    // SAFETY: forwarded contract.
    let w = unsafe { AtomicU64::from_ptr(base.add(off as usize).cast()) };
    if on {
        w.fetch_or(bit, Ordering::Relaxed);
    } else {
        w.fetch_and(!bit, Ordering::Relaxed);
    }
}

/// Sets or clears `mark` (`ENTRY` or `INTERNAL`) on the used block whose payload is at
/// `payload_off`, without the segment lock: an atomic read-modify-write, as every lock
/// holder's change to a used block's header it does not own (its [`ALGORITHM_BIT`]) is
/// one too, so neither is lost.
///
/// # Safety
/// `payload_off` is the payload of a used block of the writable segment at `base` that the
/// caller owns (allocated and not freed).
#[inline]
pub unsafe fn mark_unlocked(base: *mut u8, payload_off: u64, mark: u64, on: bool) {
    // SAFETY: the block's header is an aligned word of the mapping (contract).
    let w = unsafe { AtomicU64::from_ptr(base.add((payload_off - HEADER as u64) as usize).cast()) };
    if on {
        w.fetch_or(mark, Ordering::Relaxed);
    } else {
        w.fetch_and(!mark, Ordering::Relaxed);
    }
}
