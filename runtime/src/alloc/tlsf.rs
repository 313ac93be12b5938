//! A two-level segregated-fit (TLSF) allocator over a byte range of a segment.
//!
//! Everything it stores is an offset from the segment base, so the segment means the same
//! wherever it is mapped. O(1) allocate and free, immediate coalescing, 8 bytes of header per
//! allocated block.
//!
//! Block layout (offsets are multiples of [`GRANULE`]):
//! ```text
//! used: [ size|flags : u64 ][ payload ............................ ]
//! free: [ size|flags : u64 ][ next : u64 ][ prev : u64 ] ... [ size ]   <- footer, last word
//! ```
//! `PREV_FREE` in a header lets `free` find the previous block through its footer. The range
//! ends in a zero-sized used sentinel, so "the next block" always exists. `ENTRY` marks a
//! used block that holds an object entry (set and cleared by its owner, see
//! [`mark_unlocked`]): a link read from the segment is followed only to such a
//! block, so other blocks' bytes (padding included) are never read as an entry header.
//! Every path that rewrites a used header keeps it; free and handed-out blocks never
//! carry it. `INTERNAL` (the header's top bit: sizes stay below 2^48) marks a used block
//! of the segment's own structures (index and registry tables, type records, retired
//! blocks, the thread-cache table) the same way, so that no container ever takes one for
//! a block of its own (see `segment::owned`).
//!
//! Crash consistency: every update keeps the physical chain of headers walkable (a header's
//! size is written only after the block it would skip over has a valid header), so a process
//! that dies mid-operation leaves at worst a leaked block; [`Tlsf::rebuild`] derives the free
//! lists, bitmaps, footers and counters again from the chain.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// The name a segment's memory algorithm reports.
pub const NAME: &str = "tlsf";

/// The memory algorithm's own view of a segment (Boost's `get_memory_algorithm`), measured
/// in one go: under the segment lock for writable mappings, as a snapshot for read-only ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AlgorithmStats {
    /// Bytes of the block area the algorithm manages: the segment minus its header and the
    /// algorithm's tables.
    pub managed: usize,
    /// Bytes in the algorithm's free lists, block headers included. Blocks held in thread
    /// caches are in use as far as the algorithm knows; the segment's `free_memory` counts
    /// them as free.
    pub free: usize,
    /// Usable bytes of the largest free block: the largest request that can succeed now
    /// without emptying the thread caches (0 when nothing is free).
    pub largest_free: usize,
    /// First-level size classes (powers of two) in the algorithm's table.
    pub levels: usize,
    /// Free lists in all: every level is split into linear second-level classes.
    pub size_classes: usize,
}

/// Allocation granule and the alignment of every payload.
pub const GRANULE: usize = 8;
/// Bytes of bookkeeping in front of each allocated payload.
pub const HEADER: usize = 8;
/// The smallest block: header, two free-list links and a footer.
pub const MIN_BLOCK: usize = 32;

/// A free block.
pub const FREE: u64 = 1;
const PREV_FREE: u64 = 2;
/// A used block holding an object entry.
pub const ENTRY: u64 = 4;
/// A used block of the segment's own structures.
pub const INTERNAL: u64 = 1 << 63;
/// The marks a used block keeps while it is resized in place.
const KEPT: u64 = PREV_FREE | ENTRY | INTERNAL;
const FLAGS: u64 = 7 | INTERNAL;

const SL_LOG2: u32 = 4;
const SL_COUNT: usize = 1 << SL_LOG2;
/// Sizes below `1 << FL_SHIFT` live in first level 0, in linear classes of one granule.
const FL_SHIFT: u32 = SL_LOG2 + 3;
/// Largest block size class: 2^48 bytes.
const FL_MAX: u32 = 48;
const FL_COUNT: usize = (FL_MAX - FL_SHIFT + 1) as usize;
/// Largest request the size classes can represent.
pub const MAX_BLOCK: usize = 1 << FL_MAX;

/// The allocator's state; it lives inside the segment, next to the blocks it manages, and is
/// followed directly by a table of `levels` levels (see [`Tlsf::table_bytes`]).
#[repr(C)]
pub struct TlsfState {
    fl_bitmap: u64,
    /// First levels in the table: a small segment keeps a short table, and blocks above its
    /// last level are all filed in that level's last list (searched first-fit).
    levels: u64,
    /// Offset of the first block.
    start: u64,
    /// Offset of the end sentinel (a zero-sized used block).
    end: u64,
    /// Bytes in free blocks, headers included: `size - free_bytes` is what is in use.
    free_bytes: u64,
}

impl TlsfState {
    /// Where the free-bytes counter lies in the state (for the inspector's header read).
    pub const FREE_BYTES_OFFSET: usize = std::mem::offset_of!(TlsfState, free_bytes);
}

/// The lists of one first level.
#[repr(C)]
struct Level {
    sl_bitmap: u32,
    _pad: u32,
    heads: [u64; SL_COUNT],
}

/// A view of one segment's allocator: the segment base plus its state. All methods must be
/// called with the segment lock held (or on a segment nobody else can reach yet).
pub struct Tlsf {
    base: *mut u8,
    state: *mut TlsfState,
    /// The level table right after the state.
    table: *mut Level,
}

/// Where a block is and how big it is (offsets from the segment base).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub offset: u64,
    pub size: u64,
}

#[inline]
fn round_up(n: u64, to: u64) -> u64 {
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

/// Header word of the used block whose payload is at `payload_off` in the segment at `base`, read
/// without the lock (for the thread cache and lookups; see `Tlsf::set_word`); None unless
/// the header looks like a used block that ends before `limit` (a cheap guard against
/// double and foreign frees). Reads no allocator state, which the lock holder may be
/// changing. `writable`: whether the mapping may be written, and so may have a lock holder
/// writing headers meanwhile (then the header is read atomically; a read-only mapping, whose
/// bytes nobody writes, reads it plainly, since an atomic may not be formed over them).
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
    let size = h & !FLAGS;
    (h & FREE == 0 && size >= MIN_BLOCK as u64 && size <= limit - off).then_some(h)
}

/// The block size a header word holds (without its flags).
#[inline]
pub fn size_in(header: u64) -> u64 {
    header & !FLAGS
}

/// Sets or clears `mark` (`ENTRY` or `INTERNAL`) on the used block whose payload is at
/// `payload_off`, without the segment lock: an atomic read-modify-write, as every lock
/// holder's change to a used block's header it does not own (its `PREV_FREE` bit) is one
/// too, so neither is lost.
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

/// The natural (first level, second level) class of a block of `size`.
#[inline]
fn class_of(size: u64) -> (usize, usize) {
    if size < (1 << FL_SHIFT) {
        (0, (size / GRANULE as u64) as usize)
    } else {
        let msb = 63 - size.leading_zeros();
        let sl = ((size >> (msb - SL_LOG2)) as usize) & (SL_COUNT - 1);
        ((msb - FL_SHIFT + 1) as usize, sl)
    }
}

/// The first class whose every block is at least `size` bytes (its first level may be past
/// the table; the callers check).
#[inline]
fn mapping_search(size: u64) -> (usize, usize) {
    if size < (1 << FL_SHIFT) {
        class_of(size)
    } else {
        let msb = 63 - size.leading_zeros();
        class_of(size + (1 << (msb - SL_LOG2)) - 1)
    }
}

/// Where fields of the state lie, for tests that forge corrupt segments.
#[cfg(test)]
pub(crate) mod layout {
    /// Offset of the first-level bitmap, and of level 0's second-level bitmap and list
    /// heads (from the state's start: the table follows the state).
    pub const FL_BITMAP: usize = std::mem::offset_of!(super::TlsfState, fl_bitmap);
    const TABLE: usize = std::mem::size_of::<super::TlsfState>();
    pub const SL_BITMAP: usize = TABLE + std::mem::offset_of!(super::Level, sl_bitmap);
    pub const HEADS: usize = TABLE + std::mem::offset_of!(super::Level, heads);
    /// Bytes of one level: level `fl`'s fields lie `fl * LEVEL` after level 0's.
    pub const LEVEL: usize = std::mem::size_of::<super::Level>();
    /// Lists per level.
    pub const SL_COUNT: usize = super::SL_COUNT;
    /// Offset of the end-sentinel offset.
    pub const END: usize = std::mem::offset_of!(super::TlsfState, end);
}

impl Tlsf {
    /// Most first levels a table can have.
    pub const MAX_LEVELS: usize = FL_COUNT;

    /// Bytes of the state and its table of `levels` first levels.
    pub const fn table_bytes(levels: usize) -> usize {
        std::mem::size_of::<TlsfState>() + levels * std::mem::size_of::<Level>()
    }

    /// The most first levels whose state and table fit in `budget` bytes (at least 1, at
    /// most all).
    pub const fn levels_within(budget: usize) -> usize {
        let n =
            budget.saturating_sub(std::mem::size_of::<TlsfState>()) / std::mem::size_of::<Level>();
        if n < 1 {
            1
        } else if n > FL_COUNT {
            FL_COUNT
        } else {
            n
        }
    }

    /// # Safety
    /// `state` points to a `TlsfState`, followed by its level table, inside the mapping that
    /// starts at `base`; the offsets it holds (once initialised) stay within that mapping,
    /// and its level count (once initialised or validated) is at most the table's room.
    #[inline]
    pub unsafe fn new(base: *mut u8, state: *mut TlsfState) -> Self {
        Tlsf {
            base,
            state,
            // SAFETY: the table follows the state in the same allocation (contract).
            table: unsafe { state.add(1) }.cast(),
        }
    }

    /// Formats `[start, end)` as one free block followed by the end sentinel, with a table of
    /// `levels` first levels (1 to [`Self::MAX_LEVELS`]).
    ///
    /// # Safety
    /// The range lies in the mapping, is granule aligned and nobody else uses it; the table
    /// of `levels` levels fits between the state and `start`.
    pub unsafe fn init(&mut self, start: u64, end: u64, levels: usize) {
        debug_assert!(start % GRANULE as u64 == 0 && end % GRANULE as u64 == 0);
        debug_assert!((1..=FL_COUNT).contains(&levels));
        // SAFETY: `state` and its table are valid and exclusively ours per this function's
        // contract; the words written lie inside the range.
        unsafe {
            self.state.write_bytes(0, 1);
            self.table.write_bytes(0, levels);
            let sentinel = end - HEADER as u64;
            let st = self.st_mut();
            st.levels = levels as u64;
            st.start = start;
            st.end = sentinel;
            self.set_word(sentinel, 0);
            let size = sentinel - start;
            if size >= MIN_BLOCK as u64 {
                self.set_word(start, size | FREE);
                self.make_free(start, size);
                self.set_word(sentinel, PREV_FREE);
            } else {
                // Too small for any block: the start is the sentinel.
                self.st_mut().end = start;
                self.set_word(start, 0);
            }
        }
    }

    // ----- raw words -------------------------------------------------------------------

    /// Sets or clears `PREV_FREE` on block `off`, which may be a used block that another
    /// thread owns and marks (`ENTRY`) meanwhile without the lock: a read-modify-write.
    #[inline]
    unsafe fn set_prev_free(&mut self, off: u64, on: bool) {
        crate::robust::crash::point("allocator: a write");
        // SAFETY: as in `set_word`.
        let w = unsafe { AtomicU64::from_ptr(self.base.add(off as usize).cast()) };
        if on {
            w.fetch_or(PREV_FREE, Ordering::Relaxed);
        } else {
            w.fetch_and(!PREV_FREE, Ordering::Relaxed);
        }
    }

    #[inline]
    unsafe fn word(&self, off: u64) -> u64 {
        // SAFETY: callers pass offsets of headers/links/footers inside the mapping; they
        // are granule aligned and the base is at least granule aligned.
        unsafe { self.base.add(off as usize).cast::<u64>().read() }
    }

    /// Writes are relaxed atomic stores (a plain `mov` on x86): a thread-cache operation
    /// may read a used block's header without the lock while the lock holder flips that
    /// header's `PREV_FREE` bit. Only writable segments ever write.
    #[inline]
    unsafe fn set_word(&mut self, off: u64, v: u64) {
        crate::robust::crash::point("allocator: a write");
        // SAFETY: as in `word`; the word is aligned and lies in writable memory.
        unsafe {
            AtomicU64::from_ptr(self.base.add(off as usize).cast()).store(v, Ordering::Relaxed)
        }
    }

    /// Makes used block `off` span `size` bytes, swallowing the used blocks right after it
    /// (their headers become payload).
    ///
    /// # Safety
    /// `[off, off + size)` is exactly a run of used blocks starting at `off` that nobody
    /// holds any more.
    pub unsafe fn widen_used(&mut self, off: u64, size: u64) {
        // SAFETY: `off` is a used block header (caller); only its size changes.
        unsafe {
            let bits = self.word(off) & KEPT;
            self.set_word(off, size | bits);
        }
    }

    /// Size of block `off` if it is a used block inside the range.
    pub fn used_block_size(&self, off: u64) -> Option<u64> {
        let off = self.used_block_at(off.checked_add(HEADER as u64)?)?;
        // SAFETY: `off` is a block (checked).
        Some(unsafe { self.size_of(off) })
    }

    /// Size of block `off` if it is a used block inside the range marked `INTERNAL`.
    pub fn internal_block_size(&self, off: u64) -> Option<u64> {
        let size = self.used_block_size(off)?;
        // SAFETY: `off` is a used block (checked); its header is a word of the segment.
        (unsafe { self.word(off) } & (ENTRY | INTERNAL) == INTERNAL).then_some(size)
    }

    /// Size of block `off` if it is a used block inside the range that carries no mark
    /// (what a thread cache may hold: a marked block is never cached).
    pub fn plain_block_size(&self, off: u64) -> Option<u64> {
        let size = self.used_block_size(off)?;
        // SAFETY: `off` is a used block (checked); its header is a word of the segment.
        (unsafe { self.word(off) } & (ENTRY | INTERNAL) == 0).then_some(size)
    }

    #[inline]
    fn st(&self) -> &TlsfState {
        // SAFETY: the state is valid (constructor contract); the segment lock held by the
        // caller keeps writers away while the reference lives.
        unsafe { &*self.state }
    }

    #[inline]
    fn st_mut(&mut self) -> &mut TlsfState {
        // SAFETY: as in `st`; `&mut self` makes this the only reference through this view,
        // and the segment lock the only view in use.
        unsafe { &mut *self.state }
    }

    /// First levels in the table.
    #[inline]
    pub fn levels(&self) -> usize {
        self.st().levels as usize
    }

    /// The class a free block of `size` is filed under: its natural class, or the last list
    /// of the table for blocks above the table's levels.
    #[inline]
    fn mapping_insert(&self, size: u64) -> (usize, usize) {
        let (fl, sl) = class_of(size);
        let levels = self.levels();
        if fl < levels {
            (fl, sl)
        } else {
            (levels - 1, SL_COUNT - 1)
        }
    }

    #[inline]
    fn level(&self, fl: usize) -> &Level {
        debug_assert!(fl < self.levels());
        // SAFETY: `fl` is below the level count (classes are clamped to it, and an open
        // checks the bitmaps against it), so the level lies in the table.
        unsafe { &*self.table.add(fl) }
    }

    #[inline]
    fn level_mut(&mut self, fl: usize) -> &mut Level {
        debug_assert!(fl < self.levels());
        // SAFETY: as in `level`; `&mut self` and the segment lock make this the only
        // reference.
        unsafe { &mut *self.table.add(fl) }
    }

    #[inline]
    unsafe fn size_of(&self, off: u64) -> u64 {
        // SAFETY: forwarded contract of `word`.
        unsafe { self.word(off) & !FLAGS }
    }

    // ----- free lists ------------------------------------------------------------------

    /// Writes the footer of free block `off` and files it in its class.
    unsafe fn make_free(&mut self, off: u64, size: u64) {
        // SAFETY: `off` is a free block of `size` bytes inside the range.
        unsafe {
            self.set_word(off + size - GRANULE as u64, size);
            let (fl, sl) = self.mapping_insert(size);
            // A head is only read when its bit says the list is non-empty: the bit is what
            // every other use of a list goes by, so a stale head must never be followed.
            let level = self.level(fl);
            let head = if level.sl_bitmap & (1 << sl) != 0 {
                level.heads[sl]
            } else {
                0
            };
            self.set_word(off + 8, head);
            self.set_word(off + 16, 0);
            if head != 0 {
                self.set_word(head + 16, off);
            }
            let level = self.level_mut(fl);
            level.heads[sl] = off;
            level.sl_bitmap |= 1 << sl;
            let st = self.st_mut();
            st.fl_bitmap |= 1 << fl;
            st.free_bytes += size;
        }
    }

    /// Takes free block `off` of `size` out of its class list.
    unsafe fn unlink(&mut self, off: u64, size: u64) {
        // SAFETY: `off` is a listed free block; its links point at listed blocks or are 0.
        unsafe {
            let next = self.word(off + 8);
            let prev = self.word(off + 16);
            if next != 0 {
                self.set_word(next + 16, prev);
            }
            if prev != 0 {
                self.set_word(prev + 8, next);
            } else {
                let (fl, sl) = self.mapping_insert(size);
                let level = self.level_mut(fl);
                level.heads[sl] = next;
                if next == 0 {
                    level.sl_bitmap &= !(1 << sl);
                    if level.sl_bitmap == 0 {
                        self.st_mut().fl_bitmap &= !(1 << fl);
                    }
                }
            }
            self.st_mut().free_bytes -= size;
        }
    }

    /// Puts free block `new` in the list place of free block `old`, both of the same class:
    /// the common split and merge cases then skip the bitmap and head updates.
    #[inline]
    unsafe fn relink(&mut self, old: u64, new: u64, class: (usize, usize)) {
        // SAFETY: `old` is a listed free block and `new` a block whose link words are ours.
        unsafe {
            let next = self.word(old + 8);
            let prev = self.word(old + 16);
            self.set_word(new + 8, next);
            self.set_word(new + 16, prev);
            if next != 0 {
                self.set_word(next + 16, new);
            }
            if prev != 0 {
                self.set_word(prev + 8, new);
            } else {
                self.level_mut(class.0).heads[class.1] = new;
            }
        }
    }

    /// Head of the first non-empty class at or above `(fl, sl)`; None also when `fl` is past
    /// the table (then only a first-fit search of the last list can serve).
    #[inline]
    fn find_class(&self, fl: usize, sl: usize) -> Option<u64> {
        if fl >= self.levels() {
            return None;
        }
        let mut sl_map = self.level(fl).sl_bitmap & (!0u32 << sl);
        let fl = if sl_map == 0 {
            let fl_map = self.st().fl_bitmap & (!0u64).checked_shl(fl as u32 + 1).unwrap_or(0);
            if fl_map == 0 {
                return None;
            }
            let fl = fl_map.trailing_zeros() as usize;
            sl_map = self.level(fl).sl_bitmap;
            fl
        } else {
            fl
        };
        Some(self.level(fl).heads[sl_map.trailing_zeros() as usize])
    }

    // ----- allocation ------------------------------------------------------------------

    /// Bytes in free blocks (headers included).
    #[inline]
    pub fn free_bytes(&self) -> u64 {
        self.st().free_bytes
    }

    /// The algorithm's own view of its range, read in one go.
    pub fn stats(&self) -> AlgorithmStats {
        let levels = self.levels();
        AlgorithmStats {
            managed: (self.end() - self.start()) as usize,
            free: self.free_bytes() as usize,
            largest_free: self.largest_free().saturating_sub(HEADER as u64) as usize,
            levels,
            size_classes: levels * SL_COUNT,
        }
    }

    /// Size of the largest free block (0 when none): the last list of the highest class.
    ///
    /// A read-only mapping reads this without the lock and without the allocator check
    /// of a writable open (`SegmentCore::validate_untrusted`), so nothing read here is
    /// trusted: the bitmaps are cut to the table's classes, and the list is followed only
    /// through aligned offsets inside the block range, at most one step per possible
    /// block (a forged bitmap or link is a wrong figure, never a wild read or a hang).
    pub fn largest_free(&self) -> u64 {
        let st = self.st();
        let levels = self.levels();
        if levels == 0 || levels > FL_COUNT {
            return 0;
        }
        let bitmap = st.fl_bitmap & (u64::MAX >> (64 - levels));
        if bitmap == 0 {
            return 0;
        }
        let fl = 63 - bitmap.leading_zeros() as usize;
        let level = self.level(fl);
        let sl_bitmap = level.sl_bitmap & ((1u32 << SL_COUNT) - 1);
        if sl_bitmap == 0 {
            return 0;
        }
        let sl = 31 - sl_bitmap.leading_zeros() as usize;
        let (start, end) = (st.start, st.end);
        let (mut cur, mut max) = (level.heads[sl], 0);
        let mut steps = end.saturating_sub(start) / MIN_BLOCK as u64 + 1;
        while cur != 0 && steps > 0 {
            if cur < start || cur >= end || cur % GRANULE as u64 != 0 {
                break;
            }
            // SAFETY: `cur` is an aligned offset below the end sentinel, whose header lies
            // inside the mapping (`SegmentCore::check_bounds`): the header at `cur` and the
            // link at `cur + 8` are inside it too.
            unsafe {
                max = max.max(self.size_of(cur));
                cur = self.word(cur + 8);
            }
            steps -= 1;
        }
        max
    }

    /// Offset of the first block.
    pub fn start(&self) -> u64 {
        self.st().start
    }

    /// Splits used block `off` into consecutive used blocks of the sizes in `blocks` (their
    /// sum fits in it); the last one keeps any slack. Calls `f` with each payload in order.
    ///
    /// # Safety
    /// `off` is a used block, not handed out, of at least the sum of `blocks`.
    pub unsafe fn split_used(&mut self, off: u64, blocks: &[u64], mut f: impl FnMut(NonNull<u8>)) {
        // SAFETY: every header written lies inside the used block `off` (caller).
        unsafe {
            let end = off + self.size_of(off);
            let prev_bit = self.word(off) & KEPT;
            // Back to front: the first header, which still spans everything, is rewritten
            // last, so the chain stays walkable if we die half-way.
            let (mut start, mut next) = (off + blocks.iter().sum::<u64>(), end);
            for (i, &b) in blocks.iter().enumerate().rev() {
                start -= b;
                let bits = if i == 0 { prev_bit } else { 0 };
                self.set_word(start, (next - start) | bits);
                next = start;
            }
        }
        let mut at = off;
        for &b in blocks {
            f(self.payload(at));
            at += b;
        }
    }

    /// Offset one past the last usable byte (the sentinel's offset).
    pub fn end(&self) -> u64 {
        self.st().end
    }

    /// Allocates a block of at least `size` bytes (a value from [`block_size_for`]); returns
    /// its offset. The payload starts `HEADER` bytes later.
    #[inline]
    pub fn alloc_block(&mut self, size: u64) -> Option<u64> {
        let (fl, sl) = mapping_search(size);
        let off = match self.find_class(fl, sl) {
            Some(off) => off,
            None => self.first_fit_in_class(size)?,
        };
        // SAFETY: `off` is a free block inside the range (listed).
        unsafe {
            let have = self.size_of(off);
            let class = self.mapping_insert(have);
            if have - size >= MIN_BLOCK as u64 && self.mapping_insert(have - size) == class {
                self.split_in_place(off, have, size, class);
            } else {
                self.unlink(off, have);
                self.take(off, have, size);
            }
        }
        Some(off)
    }

    /// Allocates the front `want` bytes of listed free block `off`, whose remainder stays
    /// in the same class and so simply takes its place in the list.
    #[inline]
    unsafe fn split_in_place(&mut self, off: u64, have: u64, want: u64, class: (usize, usize)) {
        // SAFETY: `off` is a listed free block of `have` bytes; the remainder can stand alone.
        unsafe {
            let prev_bit = self.word(off) & PREV_FREE;
            let rest = off + want;
            let rest_size = have - want;
            // The remainder's header first: the chain stays walkable if we die here.
            self.set_word(rest, rest_size | FREE);
            self.relink(off, rest, class);
            self.set_word(off + have - 8, rest_size);
            self.set_word(off, want | prev_bit);
            self.st_mut().free_bytes -= want;
            self.set_word(off + 8, 0);
            self.set_word(off + 16, 0);
        }
    }

    /// The class search skips the class `size` itself falls in, whose blocks may be smaller
    /// (and the table's last list holds every larger block too). When nothing larger is
    /// free, one of them may still fit: look through that one list.
    #[cold]
    fn first_fit_in_class(&self, size: u64) -> Option<u64> {
        let (fl, sl) = self.mapping_insert(size);
        let level = self.level(fl);
        // Only classes the bitmaps mark are trusted (an open validates just those).
        if level.sl_bitmap & (1 << sl) == 0 {
            return None;
        }
        let mut cur = level.heads[sl];
        while cur != 0 {
            // SAFETY: list members are free blocks inside the range.
            unsafe {
                if self.size_of(cur) >= size {
                    return Some(cur);
                }
                cur = self.word(cur + 8);
            }
        }
        None
    }

    /// Marks the (unlinked) free block `off` of `have` bytes used, keeping the first `want`
    /// bytes and returning the rest to the free lists when it can stand as a block.
    #[inline]
    unsafe fn take(&mut self, off: u64, have: u64, want: u64) {
        // SAFETY: `off` is an unlinked free block of `have` bytes; `want <= have`.
        unsafe {
            let prev_bit = self.word(off) & PREV_FREE;
            if have - want >= MIN_BLOCK as u64 {
                let rest = off + want;
                // The remainder's header first: the chain stays walkable if we die here.
                self.set_word(rest, (have - want) | FREE);
                self.set_word(off, want | prev_bit);
                self.make_free(rest, have - want);
            } else {
                self.set_word(off, have | prev_bit);
                self.set_prev_free(off + have, false);
                // The old footer is now payload; clear it so zeroed memory stays zeroed.
                self.set_word(off + have - 8, 0);
            }
            // Free-list links are payload now; clear them for the same reason.
            self.set_word(off + 8, 0);
            self.set_word(off + 16, 0);
        }
    }

    /// Returns block `off` (used) to the free lists, merging it with free neighbours.
    ///
    /// # Safety
    /// `off` is a used block of this allocator that nobody will touch again.
    #[inline]
    pub unsafe fn free_block(&mut self, off: u64) {
        // SAFETY: per the contract, `off` is a used block; neighbours are found through
        // headers/footers the allocator maintains.
        unsafe {
            let h = self.word(off);
            let mut start = off;
            let mut size = h & !FLAGS;
            let next = off + size;
            let nh = self.word(next);
            if nh & FREE == 0 && h & PREV_FREE != 0 {
                // Merging with the free block before it only: when the merged block stays
                // in that block's class it keeps its list place; only its size changes.
                let psize = self.word(off - 8);
                let prev = off - psize;
                if self.mapping_insert(psize + size) == self.mapping_insert(psize) {
                    self.set_word(prev, (psize + size) | FREE);
                    self.set_word(next - 8, psize + size);
                    self.set_prev_free(next, true);
                    self.st_mut().free_bytes += size;
                    return;
                }
            }
            if nh & FREE != 0 && h & PREV_FREE == 0 {
                // Merging with the free block after it only: when the merged block stays in
                // that block's class it takes its list place.
                let nsize = nh & !FLAGS;
                let class = self.mapping_insert(nsize);
                if self.mapping_insert(size + nsize) == class {
                    self.set_word(off, (size + nsize) | FREE);
                    self.relink(next, off, class);
                    self.set_word(off + size + nsize - 8, size + nsize);
                    self.st_mut().free_bytes += size;
                    return;
                }
            }
            if nh & FREE != 0 {
                let nsize = nh & !FLAGS;
                self.unlink(next, nsize);
                size += nsize;
                // Marked free already: a process dying right here must not turn the merged
                // neighbour into part of a used block.
                self.set_word(start, size | FREE | (h & PREV_FREE));
            }
            if h & PREV_FREE != 0 {
                let psize = self.word(off - 8);
                start = off - psize;
                self.unlink(start, psize);
                size += psize;
            }
            self.set_word(start, size | FREE);
            self.make_free(start, size);
            self.set_prev_free(start + size, true);
        }
    }

    /// Offset of the block whose payload is at `payload_off`, after checking that it is a
    /// used block inside the range (a cheap guard against double and foreign frees).
    #[inline]
    pub fn used_block_at(&self, payload_off: u64) -> Option<u64> {
        let st = self.st();
        if payload_off % GRANULE as u64 != 0
            || payload_off < st.start + HEADER as u64
            || payload_off >= st.end
        {
            return None;
        }
        let off = payload_off - HEADER as u64;
        // SAFETY: `off` was just checked to lie inside the block range.
        let h = unsafe { self.word(off) };
        let size = h & !FLAGS;
        (h & FREE == 0
            && size >= MIN_BLOCK as u64
            && size % GRANULE as u64 == 0
            && size <= st.end - off)
            .then_some(off)
    }

    /// The chain of block headers from the first block: each block's offset and header
    /// word, up to the end or the first header that is not consistent. Reads no word that
    /// is not a header (a payload word may never have been initialised).
    fn chain(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let st = self.st();
        let mut off = st.start;
        std::iter::from_fn(move || {
            if off >= st.end {
                return None;
            }
            // SAFETY: `off` is a header of the chain inside the range (the first block, or
            // the end of a block whose size was checked below).
            let h = unsafe { self.word(off) };
            let size = h & !FLAGS;
            if size < MIN_BLOCK as u64 || size % GRANULE as u64 != 0 || size > st.end - off {
                off = st.end;
                return None;
            }
            let block = (off, h);
            off += size;
            Some(block)
        })
    }

    /// Calls `f(block, is_free, marks)` for every block of the chain in address order (marks
    /// `ENTRY`, `INTERNAL` of used blocks), stopping at the first header that does not
    /// check out, as [`Self::for_each_used`] does.
    pub fn for_each_in_chain(&self, mut f: impl FnMut(Block, bool, u64)) {
        for (offset, h) in self.chain() {
            let block = Block {
                offset,
                size: h & !FLAGS,
            };
            f(block, h & FREE != 0, h & (ENTRY | INTERNAL));
        }
    }

    /// Calls `f(block, marks)` for every used block of the chain in address order, with
    /// its marks (`ENTRY`, `INTERNAL`).
    pub fn for_each_used(&self, mut f: impl FnMut(Block, u64)) {
        for (offset, h) in self.chain().filter(|&(_, h)| h & FREE == 0) {
            f(
                Block {
                    offset,
                    size: h & !FLAGS,
                },
                h & (ENTRY | INTERNAL),
            );
        }
    }

    /// Size of the used block whose payload is at `payload_off`, found by walking the chain
    /// of headers from the first block. Unlike [`Self::used_block_at`] it reads no word that
    /// is not a header: for a pointer into the middle of a block, the word before it is
    /// payload, which may never have been initialised. O(blocks before it).
    pub fn used_block_walked(&self, payload_off: u64) -> Option<u64> {
        let target = payload_off.checked_sub(HEADER as u64)?;
        let (_, h) = self
            .chain()
            .take_while(|&(off, _)| off <= target)
            .find(|&(off, _)| off == target)?;
        (h & FREE == 0).then_some(h & !FLAGS)
    }

    /// Size in bytes of block `off` (header included).
    ///
    /// # Safety
    /// `off` is a block of this allocator.
    #[inline]
    pub unsafe fn block_size(&self, off: u64) -> u64 {
        // SAFETY: forwarded contract.
        unsafe { self.size_of(off) }
    }

    /// Allocates a block of `size` bytes whose payload address is a multiple of `align`
    /// (a power of two above [`GRANULE`]). Tries the size classes first; when no class can
    /// promise room for the worst-case padding (very large alignments), scans every free
    /// block for one that can hold an aligned payload.
    pub fn alloc_aligned(&mut self, size: u64, align: u64) -> Option<u64> {
        let padded = size
            .checked_add(align)
            .and_then(|s| s.checked_add(MIN_BLOCK as u64))?;
        if padded < MAX_BLOCK as u64 {
            let (fl, sl) = mapping_search(padded);
            if let Some(off) = self.find_class(fl, sl) {
                // SAFETY: `off` heads a free list.
                let have = unsafe { self.size_of(off) };
                if let Some(pad) = self.aligned_pad(off, have, size, align) {
                    return Some(self.carve_aligned(off, have, pad, size));
                }
            }
        }
        let mut found = None;
        self.for_each_block(|b, free| {
            if free && found.is_none() {
                if let Some(pad) = self.aligned_pad(b.offset, b.size, size, align) {
                    found = Some((b.offset, b.size, pad));
                }
            }
        });
        let (off, have, pad) = found?;
        Some(self.carve_aligned(off, have, pad, size))
    }

    /// Bytes to skip at the front of free block `off` so that its payload is aligned, when
    /// the skipped part can stand as a free block of its own and `size` bytes still fit.
    fn aligned_pad(&self, off: u64, have: u64, size: u64, align: u64) -> Option<u64> {
        let payload = self.base.addr() as u64 + off + HEADER as u64;
        let mut pad = round_up(payload, align) - payload;
        while pad != 0 && pad < MIN_BLOCK as u64 {
            pad += align;
        }
        (pad.checked_add(size)? <= have).then_some(pad)
    }

    fn carve_aligned(&mut self, off: u64, have: u64, pad: u64, size: u64) -> u64 {
        // SAFETY: `off` is a free block of `have` bytes with `pad + size <= have`, and the
        // leading `pad` bytes (0 or >= MIN_BLOCK) can stand as a free block.
        unsafe {
            let prev_bit = self.word(off) & PREV_FREE;
            self.unlink(off, have);
            if pad == 0 {
                self.take(off, have, size);
                return off;
            }
            let at = off + pad;
            // Free until `take` claims it: a crash here must not leave the remainder used.
            self.set_word(at, (have - pad) | FREE | PREV_FREE);
            self.set_word(off, pad | FREE | prev_bit);
            self.make_free(off, pad);
            self.take(at, have - pad, size);
            at
        }
    }

    // ----- in-place resizing (allocation_command) ----------------------------------------

    /// Size of the free block right after `off`, 0 when it is not free.
    ///
    /// # Safety
    /// `off` is a used block of this allocator.
    pub unsafe fn free_after(&self, off: u64) -> u64 {
        // SAFETY: `off` is a used block (contract); the block after it always exists
        // (sentinel).
        unsafe {
            let next = off + self.size_of(off);
            let nh = self.word(next);
            if nh & FREE != 0 {
                nh & !FLAGS
            } else {
                0
            }
        }
    }

    /// Size of the free block right before `off`, 0 when it is not free.
    ///
    /// # Safety
    /// `off` is a used block of this allocator.
    pub unsafe fn free_before(&self, off: u64) -> u64 {
        // SAFETY: `off` is a used block (contract); PREV_FREE guarantees a footer just
        // before it.
        unsafe {
            if self.word(off) & PREV_FREE != 0 {
                self.word(off - 8)
            } else {
                0
            }
        }
    }

    /// Grows used block `off` forward to `new_size` by taking the front of the free block
    /// after it.
    ///
    /// # Safety
    /// `off` is a used block of this allocator and granule-aligned `new_size` is at most
    /// its size plus [`Self::free_after`].
    pub unsafe fn grow_forward(&mut self, off: u64, new_size: u64) {
        // SAFETY: `off` is used and followed by a free block large enough (contract).
        unsafe {
            let h = self.word(off);
            let size = h & !FLAGS;
            if new_size <= size {
                return;
            }
            let next = off + size;
            let nsize = self.size_of(next);
            let total = size + nsize;
            let tail = total - new_size;
            // Every step leaves a walkable chain in which the neighbour's bytes are free or
            // belong to a complete block, so a crash leaks nothing beyond the request.
            if tail >= MIN_BLOCK as u64 {
                // Unlink first: the tail header may land on the neighbour's link words.
                self.unlink(next, nsize);
                self.set_word(off + new_size, tail | FREE);
                self.set_word(off, new_size | (h & KEPT));
                self.make_free(off + new_size, tail);
            } else {
                self.unlink(next, nsize);
                self.set_word(off, total | (h & KEPT));
                self.set_prev_free(off + total, false);
            }
        }
    }

    /// Moves the start of used block `off` back by `delta` bytes (a granule multiple) into
    /// the free block before it; returns the new offset. Payload bytes are not moved, so
    /// the block no longer starts where an entry was: it loses `ENTRY`.
    ///
    /// # Safety
    /// `off` is a used block of this allocator, [`Self::free_before`] is at least `delta`,
    /// and what remains of that free block is either nothing or at least [`MIN_BLOCK`].
    pub unsafe fn grow_backward(&mut self, off: u64, delta: u64) -> u64 {
        // SAFETY: per the contract `free_before(off) >= delta` and the remainder is 0 or
        // a valid block.
        unsafe {
            let h = self.word(off);
            let size = h & !FLAGS;
            let psize = self.word(off - 8);
            let prev = off - psize;
            let pprev_bit = self.word(prev) & PREV_FREE;
            self.unlink(prev, psize);
            let new_off = off - delta;
            let left = psize - delta;
            if left == 0 {
                self.set_word(new_off, (size + delta) | pprev_bit);
            } else {
                self.set_word(new_off, (size + delta) | PREV_FREE);
                self.set_word(prev, left | FREE | pprev_bit);
                self.make_free(prev, left);
            }
            new_off
        }
    }

    /// Shrinks used block `off` to `new_size` bytes (>= MIN_BLOCK), returning the tail to
    /// the free lists when it can stand alone or join a free neighbour. Returns the size
    /// the block really has afterwards.
    ///
    /// # Safety
    /// `off` is a used block of this allocator; `new_size` is granule aligned and at least
    /// [`MIN_BLOCK`].
    pub unsafe fn shrink(&mut self, off: u64, new_size: u64) -> u64 {
        // SAFETY: per the contract, `off` is a used block and `new_size` a valid size.
        unsafe {
            let h = self.word(off);
            let size = h & !FLAGS;
            if new_size >= size {
                return size;
            }
            let tail = size - new_size;
            let next = off + size;
            let next_free = self.word(next) & FREE != 0;
            if tail < MIN_BLOCK as u64 && !next_free {
                return size;
            }
            let rest = off + new_size;
            let prev_bit = h & KEPT;
            if next_free {
                // The tail joins the free block after it; its header is written (inside
                // our own bytes) before our header gives those bytes up.
                let nsize = self.size_of(next);
                self.set_word(rest, (tail + nsize) | FREE);
                self.unlink(next, nsize);
                self.set_word(off, new_size | prev_bit);
                self.make_free(rest, tail + nsize);
            } else {
                self.set_word(rest, tail | FREE);
                self.set_word(off, new_size | prev_bit);
                self.make_free(rest, tail);
                self.set_prev_free(next, true);
            }
            new_size
        }
    }

    // ----- inspection and recovery -----------------------------------------------------

    /// Calls `f(block, is_free)` for every block in address order.
    pub fn for_each_block(&self, mut f: impl FnMut(Block, bool)) {
        let st = self.st();
        let mut off = st.start;
        while off < st.end {
            // SAFETY: the chain is consistent (checked by `check` where it matters); each
            // step lands on a header inside the range.
            let h = unsafe { self.word(off) };
            let size = h & !FLAGS;
            if size == 0 || size % GRANULE as u64 != 0 || size > st.end - off {
                return;
            }
            f(Block { offset: off, size }, h & FREE != 0);
            off += size;
        }
    }

    /// Checks every invariant: a walkable chain ending at the sentinel, flags, footers,
    /// no adjacent free blocks, every list head agreeing with its bitmap bit (a clear bit
    /// with a non-zero head is refused too: nothing may be left that a later write could
    /// follow), lists and bitmaps matching the blocks, the free counter. Every offset it
    /// follows is bounds-checked first, so it is safe on untrusted bytes.
    pub fn check(&self) -> Result<(), String> {
        let st = self.st();
        let (mut off, mut prev_free, mut free_sum, mut free_count) = (st.start, false, 0u64, 0u64);
        // The free blocks of the chain, in ascending order: a listed block must be one of
        // them (a forged link may aim at payload bytes that merely look like a free block).
        let mut free_blocks = Vec::new();
        while off < st.end {
            // SAFETY: `off` is inside the range (loop condition) and granule aligned.
            let h = unsafe { self.word(off) };
            let size = h & !FLAGS;
            if size < MIN_BLOCK as u64 || size % GRANULE as u64 != 0 || size > st.end - off {
                return Err(format!("block at {off} has invalid size {size}"));
            }
            if (h & PREV_FREE != 0) != prev_free {
                return Err(format!("block at {off}: previous-free flag is wrong"));
            }
            let free = h & FREE != 0;
            if h & (ENTRY | INTERNAL) == ENTRY | INTERNAL {
                return Err(format!(
                    "block at {off} is marked as an entry and as internal"
                ));
            }
            if free {
                if h & (ENTRY | INTERNAL) != 0 {
                    return Err(format!("free block at {off} carries a used block's mark"));
                }
                if prev_free {
                    return Err(format!("free block at {off} follows a free block"));
                }
                // SAFETY: footer of a block inside the range.
                if unsafe { self.word(off + size - 8) } != size {
                    return Err(format!("free block at {off} has a wrong footer"));
                }
                free_sum += size;
                free_count += 1;
                free_blocks.push(off);
            }
            prev_free = free;
            off += size;
        }
        if off != st.end {
            return Err(format!(
                "block chain ends at {off}, not at the sentinel {}",
                st.end
            ));
        }
        // SAFETY: the sentinel's header lies inside the mapping.
        let sentinel = unsafe { self.word(st.end) };
        if sentinel & !PREV_FREE != 0 || (sentinel & PREV_FREE != 0) != prev_free {
            return Err("end sentinel is damaged".into());
        }
        if free_sum != st.free_bytes {
            return Err(format!(
                "free counter says {} bytes, blocks hold {free_sum}",
                st.free_bytes
            ));
        }
        let levels = self.levels();
        if levels == 0 || levels > FL_COUNT || st.fl_bitmap >> levels != 0 {
            return Err("bitmaps name size classes that do not exist".into());
        }
        let mut listed = 0u64;
        for fl in 0..levels {
            let level = self.level(fl);
            if level.sl_bitmap >> SL_COUNT != 0 {
                return Err("bitmaps name size classes that do not exist".into());
            }
            let mut classes = (1u32 << SL_COUNT) - 1;
            while classes != 0 {
                let sl = classes.trailing_zeros() as usize;
                classes &= classes - 1;
                let (mut cur, mut back) = (level.heads[sl], 0u64);
                let bit = level.sl_bitmap & (1 << sl) != 0;
                if bit != (cur != 0) {
                    return Err(format!("bitmap disagrees with list ({fl},{sl})"));
                }
                while cur != 0 {
                    if free_blocks.binary_search(&cur).is_err() || listed > free_count {
                        return Err(format!("list ({fl},{sl}) leaves the block range"));
                    }
                    // SAFETY: `cur` is a free block of the chain (checked just above).
                    let h = unsafe { self.word(cur) };
                    if self.mapping_insert(h & !FLAGS) != (fl, sl) {
                        return Err(format!("list ({fl},{sl}) holds a wrong block at {cur}"));
                    }
                    // SAFETY: links of a free block inside the range.
                    if unsafe { self.word(cur + 16) } != back {
                        return Err(format!("broken back link at {cur}"));
                    }
                    listed += 1;
                    back = cur;
                    // SAFETY: as above.
                    cur = unsafe { self.word(cur + 8) };
                }
            }
            if (st.fl_bitmap & (1 << fl) != 0) != (level.sl_bitmap != 0) {
                return Err(format!("first-level bitmap disagrees at {fl}"));
            }
        }
        if listed != free_count {
            return Err(format!("{free_count} free blocks but {listed} listed"));
        }
        Ok(())
    }

    /// Rebuilds lists, bitmaps, footers, flags and the free counter from the chain of
    /// headers, merging adjacent free blocks. Used after a process died holding the lock.
    pub fn rebuild(&mut self) -> Result<(), String> {
        let (start, end) = (self.st().start, self.st().end);
        let levels = self.levels();
        if levels == 0 || levels > FL_COUNT {
            return Err(format!("{levels} first levels in the allocator table"));
        }
        // SAFETY: the table holds `levels` levels (constructor contract).
        unsafe { self.table.write_bytes(0, levels) };
        let st = self.st_mut();
        st.fl_bitmap = 0;
        st.free_bytes = 0;
        let mut off = start;
        let mut run: Option<(u64, u64)> = None; // pending free run (start, size)
        let mut prev_free = false;
        while off < end {
            // SAFETY: `off` is inside the range (loop condition).
            let h = unsafe { self.word(off) };
            let size = h & !FLAGS;
            if size < MIN_BLOCK as u64 || size % GRANULE as u64 != 0 || size > end - off {
                return Err(format!("block at {off} has invalid size {size}"));
            }
            if h & FREE != 0 {
                run = Some(match run {
                    Some((s, n)) => (s, n + size),
                    None => (off, size),
                });
            } else {
                if let Some((s, n)) = run.take() {
                    // SAFETY: `[s, s+n)` is a run of free blocks inside the range.
                    unsafe { self.set_word(s, n | FREE) };
                    // SAFETY: same run.
                    unsafe { self.make_free(s, n) };
                    prev_free = true;
                }
                // Only the bit that is wrong changes, in place: another thread may be marking
                // this block (`ENTRY`) meanwhile, and a used block keeps that mark.
                if (h & PREV_FREE != 0) != prev_free {
                    // SAFETY: `off` is a block header inside the range.
                    unsafe { self.set_prev_free(off, prev_free) };
                }
                prev_free = false;
            }
            off += size;
        }
        if off != end {
            return Err(format!(
                "block chain ends at {off}, not at the sentinel {end}"
            ));
        }
        if let Some((s, n)) = run {
            // SAFETY: as above.
            unsafe {
                self.set_word(s, n | FREE);
                self.make_free(s, n);
            }
            prev_free = true;
        }
        // SAFETY: the sentinel lies inside the mapping.
        unsafe { self.set_word(end, if prev_free { PREV_FREE } else { 0 }) };
        Ok(())
    }

    /// Zeroes the payload of every free block, except the words the allocator keeps there
    /// (links and footer), which `take` clears when the block is handed out.
    pub fn zero_free(&mut self) {
        let mut ranges = Vec::new();
        self.for_each_block(|b, free| {
            if free {
                ranges.push(b);
            }
        });
        for b in ranges {
            let from = b.offset + 24;
            let to = b.offset + b.size - 8;
            if to > from {
                // SAFETY: `[from, to)` lies inside a free block, between its links and
                // footer; nobody holds a reference into free memory.
                unsafe {
                    self.base
                        .add(from as usize)
                        .write_bytes(0, (to - from) as usize)
                };
            }
        }
    }

    /// Extends the managed range to end at `new_end` (the segment grew). The new bytes
    /// become free, merged with a free last block.
    ///
    /// # Safety
    /// The mapping now reaches `new_end`, which is granule aligned and past the sentinel.
    pub unsafe fn extend(&mut self, new_end: u64) {
        // SAFETY: per contract the bytes up to `new_end` are mapped and unused.
        unsafe {
            let old_sentinel = self.st().end;
            let sentinel_bits = self.word(old_sentinel);
            let new_sentinel = new_end - HEADER as u64;
            let grown = new_sentinel - old_sentinel;
            if grown == 0 || (grown < MIN_BLOCK as u64 && sentinel_bits & PREV_FREE == 0) {
                // Nothing, or a sliver that could not stand as a block: the allocator keeps
                // its end, and a later grow takes these bytes along.
                return;
            }
            self.st_mut().end = new_sentinel;
            self.set_word(new_sentinel, 0);
            // The old sentinel becomes a used block of `grown` bytes; freeing it merges it.
            self.set_word(old_sentinel, grown | (sentinel_bits & PREV_FREE));
            self.free_block(old_sentinel);
        }
    }

    /// If the last block is free, cuts it off, keeping only what is needed for the range to
    /// end at `min_end` or later; returns the new end of the range (the sentinel plus its
    /// header). The caller then shrinks the mapping to that end.
    pub fn trim_end(&mut self, min_end: u64) -> u64 {
        let end = self.st().end;
        // SAFETY: the sentinel lies inside the mapping; PREV_FREE means a footer before it.
        unsafe {
            if self.word(end) & PREV_FREE == 0 {
                return end + HEADER as u64;
            }
            let size = self.word(end - 8);
            let last = end - size;
            let min_end = round_up(min_end, GRANULE as u64);
            // What must stay of the last block: nothing, or a whole block reaching min_end.
            let keep = match (min_end - HEADER as u64).saturating_sub(last) {
                0 => 0,
                k => k.max(MIN_BLOCK as u64),
            };
            if keep + MIN_BLOCK as u64 > size {
                return end + HEADER as u64;
            }
            self.unlink(last, size);
            let sentinel = last + keep;
            self.set_word(sentinel, if keep == 0 { 0 } else { PREV_FREE });
            self.st_mut().end = sentinel;
            if keep != 0 {
                self.set_word(last, keep | FREE);
                self.make_free(last, keep);
            }
            sentinel + HEADER as u64
        }
    }

    /// Payload pointer of block `off`.
    #[inline]
    pub fn payload(&self, off: u64) -> NonNull<u8> {
        // SAFETY: block offsets are inside the mapping, whose base is non-null.
        unsafe { NonNull::new_unchecked(self.base.add(off as usize + HEADER)) }
    }
}

#[cfg(test)]
pub(crate) mod crash_tests;
#[cfg(test)]
mod tests;
