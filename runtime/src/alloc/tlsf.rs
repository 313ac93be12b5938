//! A two-level segregated-fit (TLSF) memory algorithm: the default one.
//!
//! O(1) allocate and free, immediate coalescing, 8 bytes of header per allocated block.
//! Free blocks are filed in size classes (first level: powers of two; second level: 16
//! linear classes per power), found through two levels of bitmaps. A free block keeps its
//! list links after its header and its size in a footer (its last word):
//! ```text
//! free: [ size|FREE : u64 ][ next : u64 ][ prev : u64 ] ... [ size ]   <- footer
//! ```
//! The block format's [`ALGORITHM_BIT`] is `PREV_FREE`: the block before this one is free,
//! so `free` finds it through its footer. The state's two algorithm words are the
//! first-level bitmap and the number of first levels; the level table follows the segment
//! header (its size scales with the segment, see [`Tlsf::table_bytes`]).
//!
//! Crash consistency: every update keeps the physical chain of headers walkable (a header's
//! size is written only after the block it would skip over has a valid header), so a process
//! that dies mid-operation leaves at worst a leaked block; `rebuild` derives the free
//! lists, bitmaps, footers and counters again from the chain.

use super::algorithm::{aligned_pad, MemoryAlgorithm};
use super::block::{
    self, round_up, HeapState, ALGORITHM_BIT, FLAGS, FREE, GRANULE, HEADER, MARKS, MAX_BLOCK,
    MIN_BLOCK,
};
use super::heap::Heap;

/// The TLSF memory algorithm (the default): O(1) allocation and free in size classes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tlsf;

/// The block before this one is free (its footer holds its size).
const PREV_FREE: u64 = ALGORITHM_BIT;
/// The marks a used block keeps while it is resized in place.
const KEPT: u64 = PREV_FREE | MARKS;

const SL_LOG2: u32 = 4;
const SL_COUNT: usize = 1 << SL_LOG2;
/// Sizes below `1 << FL_SHIFT` live in first level 0, in linear classes of one granule.
const FL_SHIFT: u32 = SL_LOG2 + 3;
/// Largest block size class: [`MAX_BLOCK`].
const FL_MAX: u32 = MAX_BLOCK.trailing_zeros();
const FL_COUNT: usize = (FL_MAX - FL_SHIFT + 1) as usize;

/// The lists of one first level.
#[repr(C)]
struct Level {
    sl_bitmap: u32,
    _pad: u32,
    heads: [u64; SL_COUNT],
}

/// The TLSF's view of a heap: its base, state and level table. Made for one call of the
/// algorithm, under the segment lock (or on memory nobody else can reach yet).
struct Lists {
    /// For the rare uses of the heap's own methods (walks).
    heap: *mut Heap,
    /// The heap's base and state, copied so that the hot paths reach words without going
    /// through the heap (whose fields the compiler would reload after every store).
    base: *mut u8,
    state: *mut HeapState,
    /// The level table right after the state.
    table: *mut Level,
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

impl Tlsf {
    /// Most first levels a table can have.
    pub const MAX_LEVELS: usize = FL_COUNT;

    /// Bytes of a table of `levels` first levels.
    pub const fn levels_bytes(levels: usize) -> usize {
        levels * std::mem::size_of::<Level>()
    }

    /// The most first levels whose table fits in `budget` bytes (at least 1, at most all).
    pub const fn levels_within(budget: usize) -> usize {
        let n = budget / std::mem::size_of::<Level>();
        if n < 1 {
            1
        } else if n > FL_COUNT {
            FL_COUNT
        } else {
            n
        }
    }

    /// The first levels a segment of `len` bytes gets: as many as fit in an eighth of it
    /// (less the state), so a small segment stays mostly free and one of 46 KiB or more
    /// gets them all.
    pub const fn levels_for(len: usize) -> usize {
        Self::levels_within((len / 8).saturating_sub(std::mem::size_of::<HeapState>()))
    }
}

// SAFETY: every operation below keeps the block format and the chain walkable after each
// write (see the module documentation and the crash-injection sweep in `crash_tests`),
// hands out only blocks it unlinked from its free lists, and `check`/`rebuild` bound every
// offset they follow by the chain they walked.
unsafe impl MemoryAlgorithm for Tlsf {
    const NAME: &'static str = "tlsf";
    const KIND: u64 = 0;
    const KEPT_WORDS: (u64, u64) = (2, 1);

    fn table_bytes(segment_len: usize) -> usize {
        Self::levels_bytes(Self::levels_for(segment_len))
    }

    fn init(heap: &mut Heap) {
        let levels = Lists::room(heap).min(FL_COUNT);
        heap.set_algorithm_word(LEVELS, levels as u64);
        let mut t = Lists::of_mut(heap);
        let (start, end) = (t.heap().start(), t.heap().end());
        let size = end - start;
        // SAFETY: the range is the heap's, empty, and holds at least one block (`Heap::init`).
        unsafe {
            t.set_word(start, size | FREE);
            t.make_free(start, size);
            t.set_word(end, PREV_FREE);
        }
    }

    #[inline]
    fn allocate(heap: &mut Heap, size: u64) -> Option<u64> {
        Lists::of_mut(heap).alloc_block(size)
    }

    fn allocate_aligned(heap: &mut Heap, size: u64, align: u64) -> Option<u64> {
        Lists::of_mut(heap).alloc_aligned(size, align)
    }

    #[inline]
    fn deallocate(heap: &mut Heap, off: u64) {
        // SAFETY: the segment frees only used blocks of this heap, once.
        unsafe { Lists::of_mut(heap).free_block(off) }
    }

    fn free_after(heap: &Heap, off: u64) -> u64 {
        // SAFETY: the segment asks only about used blocks of this heap.
        unsafe { Lists::of(heap).free_after(off) }
    }

    fn free_before(heap: &Heap, off: u64) -> u64 {
        // SAFETY: as above.
        unsafe { Lists::of(heap).free_before(off) }
    }

    fn grow_forward(heap: &mut Heap, off: u64, new_size: u64) {
        // SAFETY: the segment grows a used block within `free_after`.
        unsafe { Lists::of_mut(heap).grow_forward(off, new_size) }
    }

    fn grow_backward(heap: &mut Heap, off: u64, delta: u64) -> u64 {
        // SAFETY: the segment grows a used block within `free_before`.
        unsafe { Lists::of_mut(heap).grow_backward(off, delta) }
    }

    fn shrink(heap: &mut Heap, off: u64, new_size: u64) -> u64 {
        // SAFETY: the segment shrinks a used block to a valid block size.
        unsafe { Lists::of_mut(heap).shrink(off, new_size) }
    }

    fn trim_end(heap: &mut Heap, min_end: u64) -> u64 {
        Lists::of_mut(heap).trim_end(min_end)
    }

    fn check_state(heap: &Heap) -> Result<(), String> {
        let levels = heap.algorithm_word(LEVELS);
        if levels == 0 || levels > FL_COUNT as u64 || levels > Lists::room(heap) as u64 {
            return Err(format!(
                "{levels} first levels do not fit the allocator table"
            ));
        }
        Ok(())
    }

    fn check(heap: &Heap) -> Result<(), String> {
        Lists::of(heap).check()
    }

    fn rebuild(heap: &mut Heap) -> Result<(), String> {
        Lists::of_mut(heap).rebuild()
    }

    fn largest_free(heap: &Heap) -> u64 {
        Lists::of(heap).largest_free()
    }

    fn size_classes(heap: &Heap) -> (usize, usize) {
        let levels = Lists::of(heap).levels();
        (levels, levels * SL_COUNT)
    }
}

/// The state's algorithm words.
const FL_BITMAP: usize = 0;
const LEVELS: usize = 1;

impl Lists {
    /// A view of `heap` that only reads (it calls no method taking `&mut self`).
    #[inline]
    fn of(heap: &Heap) -> Lists {
        Lists {
            heap: (heap as *const Heap).cast_mut(),
            base: heap.base(),
            state: heap.state_ptr(),
            table: heap.table_ptr().cast(),
        }
    }

    /// A view of `heap` that may write.
    #[inline]
    fn of_mut(heap: &mut Heap) -> Lists {
        Lists {
            base: heap.base(),
            state: heap.state_ptr(),
            table: heap.table_ptr().cast(),
            heap,
        }
    }

    /// First levels the table between the state and the first block has room for.
    fn room(heap: &Heap) -> usize {
        let table = heap.table_ptr().addr() - heap.base().addr();
        (heap.start() as usize).saturating_sub(table) / std::mem::size_of::<Level>()
    }

    #[inline]
    fn heap(&self) -> &Heap {
        // SAFETY: the heap outlives this view, made for one call of the algorithm.
        unsafe { &*self.heap }
    }

    #[inline]
    fn heap_mut(&mut self) -> &mut Heap {
        // SAFETY: as in `heap`; a view made from `&mut Heap` is the only one in use, and
        // one made from `&Heap` never calls a method taking `&mut self`.
        unsafe { &mut *self.heap }
    }

    /// Sets or clears `PREV_FREE` on block `off`, which may be a used block that another
    /// thread owns and marks meanwhile without the lock: a read-modify-write.
    #[inline]
    unsafe fn set_prev_free(&mut self, off: u64, on: bool) {
        // SAFETY: callers pass headers inside the mapping.
        unsafe { block::set_bit(self.base, off, PREV_FREE, on) }
    }

    #[inline]
    unsafe fn word(&self, off: u64) -> u64 {
        // SAFETY: callers pass offsets of headers/links/footers inside the mapping.
        unsafe { block::load(self.base, off) }
    }

    #[inline]
    unsafe fn set_word(&mut self, off: u64, v: u64) {
        // SAFETY: as in `word`; only writable segments call the writing operations.
        unsafe { block::store(self.base, off, v) }
    }

    #[inline]
    fn fl_bitmap(&self) -> u64 {
        // SAFETY: the state is valid while the view is (see `Heap` on field access).
        unsafe { (*self.state).algorithm[FL_BITMAP] }
    }

    #[inline]
    fn start(&self) -> u64 {
        // SAFETY: as in `fl_bitmap`.
        unsafe { (*self.state).start }
    }

    #[inline]
    fn end(&self) -> u64 {
        // SAFETY: as in `fl_bitmap`.
        unsafe { (*self.state).end }
    }

    #[inline]
    fn set_fl_bitmap(&mut self, v: u64) {
        // SAFETY: as in `fl_bitmap`; `&mut self` under the segment lock: the only writer.
        unsafe { (*self.state).algorithm[FL_BITMAP] = v };
    }

    /// Adds `n` to (or, negative, takes it from) the free counter.
    #[inline]
    fn add_free(&mut self, n: i64) {
        // SAFETY: as in `set_fl_bitmap`.
        unsafe { (*self.state).free_bytes = (*self.state).free_bytes.wrapping_add_signed(n) };
    }

    /// First levels in the table.
    #[inline]
    fn levels(&self) -> usize {
        // SAFETY: as in `fl_bitmap`.
        unsafe { (*self.state).algorithm[LEVELS] as usize }
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
            self.set_fl_bitmap(self.fl_bitmap() | 1 << fl);
            self.add_free(size as i64);
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
                        self.set_fl_bitmap(self.fl_bitmap() & !(1 << fl));
                    }
                }
            }
            self.add_free(-(size as i64));
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
            let fl_map = self.fl_bitmap() & (!0u64).checked_shl(fl as u32 + 1).unwrap_or(0);
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

    /// Size of the largest free block (0 when none): the last list of the highest class.
    ///
    /// A read-only mapping reads this without the lock and without the allocator check
    /// of a writable open (`SegmentCore::validate_untrusted`), so nothing read here is
    /// trusted: the bitmaps are cut to the table's classes, and the list is followed only
    /// through aligned offsets inside the block range, at most one step per possible
    /// block (a forged bitmap or link is a wrong figure, never a wild read or a hang).
    fn largest_free(&self) -> u64 {
        let levels = self.levels();
        if levels == 0 || levels > FL_COUNT {
            return 0;
        }
        let bitmap = self.fl_bitmap() & (u64::MAX >> (64 - levels));
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
        let (start, end) = (self.start(), self.end());
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

    /// Allocates a block of at least `size` bytes (a value from [`block_size_for`]); returns
    /// its offset. The payload starts `HEADER` bytes later.
    #[inline]
    fn alloc_block(&mut self, size: u64) -> Option<u64> {
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
            self.add_free(-(want as i64));
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
    unsafe fn free_block(&mut self, off: u64) {
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
                    self.add_free(size as i64);
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
                    self.add_free(size as i64);
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

    /// Allocates a block of `size` bytes whose payload address is a multiple of `align`
    /// (a power of two above [`GRANULE`]). Tries the size classes first; when no class can
    /// promise room for the worst-case padding (very large alignments), scans every free
    /// block for one that can hold an aligned payload.
    fn alloc_aligned(&mut self, size: u64, align: u64) -> Option<u64> {
        let padded = size
            .checked_add(align)
            .and_then(|s| s.checked_add(MIN_BLOCK as u64))?;
        if padded < MAX_BLOCK as u64 {
            let (fl, sl) = mapping_search(padded);
            if let Some(off) = self.find_class(fl, sl) {
                // SAFETY: `off` heads a free list.
                let have = unsafe { self.size_of(off) };
                if let Some(pad) = aligned_pad(self.heap(), off, have, size, align) {
                    return Some(self.carve_aligned(off, have, pad, size));
                }
            }
        }
        let (off, have, pad) = self.heap().blocks().find_map(|(b, h)| {
            let pad = aligned_pad(self.heap(), b.offset, b.size, size, align);
            pad.filter(|_| h & FREE != 0)
                .map(|pad| (b.offset, b.size, pad))
        })?;
        Some(self.carve_aligned(off, have, pad, size))
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
    unsafe fn free_after(&self, off: u64) -> u64 {
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
    unsafe fn free_before(&self, off: u64) -> u64 {
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
    unsafe fn grow_forward(&mut self, off: u64, new_size: u64) {
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
    unsafe fn grow_backward(&mut self, off: u64, delta: u64) -> u64 {
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
    unsafe fn shrink(&mut self, off: u64, new_size: u64) -> u64 {
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

    /// Checks every invariant: a walkable chain ending at the sentinel, flags, footers,
    /// no adjacent free blocks, every list head agreeing with its bitmap bit (a clear bit
    /// with a non-zero head is refused too: nothing may be left that a later write could
    /// follow), lists and bitmaps matching the blocks, the free counter. Every offset it
    /// follows is bounds-checked first, so it is safe on untrusted bytes.
    fn check(&self) -> Result<(), String> {
        let (start, end, free_bytes) = (
            self.heap().start(),
            self.heap().end(),
            self.heap().free_bytes(),
        );
        let (mut off, mut prev_free, mut free_sum, mut free_count) = (start, false, 0u64, 0u64);
        // The free blocks of the chain, in ascending order: a listed block must be one of
        // them (a forged link may aim at payload bytes that merely look like a free block).
        let mut free_blocks = Vec::new();
        while off < end {
            // SAFETY: `off` is inside the range (loop condition) and granule aligned.
            let h = unsafe { self.word(off) };
            let size = h & !FLAGS;
            if size < MIN_BLOCK as u64 || size % GRANULE as u64 != 0 || size > end - off {
                return Err(format!("block at {off} has invalid size {size}"));
            }
            if (h & PREV_FREE != 0) != prev_free {
                return Err(format!("block at {off}: previous-free flag is wrong"));
            }
            let free = h & FREE != 0;
            if free {
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
        if off != end {
            return Err(format!(
                "block chain ends at {off}, not at the sentinel {}",
                end
            ));
        }
        // SAFETY: the sentinel's header lies inside the mapping.
        let sentinel = unsafe { self.word(end) };
        if sentinel & !PREV_FREE != 0 || (sentinel & PREV_FREE != 0) != prev_free {
            return Err("end sentinel is damaged".into());
        }
        if free_sum != free_bytes {
            return Err(format!(
                "free counter says {} bytes, blocks hold {free_sum}",
                free_bytes
            ));
        }
        let levels = self.levels();
        if levels == 0 || levels > FL_COUNT || self.fl_bitmap() >> levels != 0 {
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
            if (self.fl_bitmap() & (1 << fl) != 0) != (level.sl_bitmap != 0) {
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
    fn rebuild(&mut self) -> Result<(), String> {
        let (start, end) = (self.start(), self.end());
        let levels = self.levels();
        if levels == 0 || levels > FL_COUNT {
            return Err(format!("{levels} first levels in the allocator table"));
        }
        // SAFETY: the table holds `levels` levels (constructor contract).
        unsafe { self.table.write_bytes(0, levels) };
        self.set_fl_bitmap(0);
        self.heap_mut().set_free_bytes(0);
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

    /// If the last block is free, cuts it off, keeping only what is needed for the range to
    /// end at `min_end` or later; returns the new end of the range (the sentinel plus its
    /// header). The caller then shrinks the mapping to that end.
    fn trim_end(&mut self, min_end: u64) -> u64 {
        let end = self.end();
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
            self.heap_mut().set_end(sentinel);
            if keep != 0 {
                self.set_word(last, keep | FREE);
                self.make_free(last, keep);
            }
            sentinel + HEADER as u64
        }
    }
}

/// Where fields of the state lie, for tests that forge corrupt segments.
#[cfg(test)]
pub(crate) mod layout {
    use crate::alloc::block::HeapState;
    /// Offset of the first-level bitmap, and of level 0's second-level bitmap and list
    /// heads (from the state's start: the table follows the state).
    pub const FL_BITMAP: usize = HeapState::ALGORITHM_OFFSET;
    const TABLE: usize = std::mem::size_of::<HeapState>();
    pub const SL_BITMAP: usize = TABLE + std::mem::offset_of!(super::Level, sl_bitmap);
    pub const HEADS: usize = TABLE + std::mem::offset_of!(super::Level, heads);
    /// Bytes of one level: level `fl`'s fields lie `fl * LEVEL` after level 0's.
    pub const LEVEL: usize = std::mem::size_of::<super::Level>();
    /// Lists per level.
    pub const SL_COUNT: usize = super::SL_COUNT;
    /// Offset of the end-sentinel offset.
    pub const END: usize = std::mem::offset_of!(HeapState, end);
}
