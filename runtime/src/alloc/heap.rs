//! [`Heap`]: one segment's block area as its memory algorithm and the segment see it. The
//! block format ([`super::block`]) is handled here, once for every algorithm: chain walks,
//! pointer validation, splitting and widening used blocks. What depends on how free space
//! is found (allocate, free, resize in place, check, rebuild) is the algorithm's, called
//! through its table of functions ([`Ops`]).

use std::ptr::NonNull;

use super::algorithm::Ops;
use super::block::{
    self, round_up, Block, HeapState, ALGORITHM_BIT, FREE, GRANULE, HEADER, INTERNAL, MARKS,
    MIN_BLOCK,
};
use super::AlgorithmStats;

/// A segment's block area, handed to a [`MemoryAlgorithm`](super::MemoryAlgorithm) under the
/// segment lock (or on memory nobody else can reach yet).
///
/// Its word accessors check their offsets (aligned, inside the block area or the
/// algorithm's table) and panic on a wrong one, as slice indexing does: an algorithm can
/// corrupt the segment's bytes, never memory outside it. Header words are written with
/// relaxed atomic stores, as lockless readers of used blocks' headers expect.
pub struct Heap {
    base: *mut u8,
    state: *mut HeapState,
    /// Bytes mapped from `base`: no word at or past it is read or written.
    limit: u64,
    ops: &'static Ops,
}

impl Heap {
    /// # Safety
    /// `state` points to a [`HeapState`] inside the mapping of `limit` bytes at `base`,
    /// followed by the algorithm's table up to `start`; nobody else uses the state and the
    /// free blocks while the view is used (the segment lock, or memory not yet shared).
    #[inline]
    pub(crate) unsafe fn new(
        base: *mut u8,
        state: *mut HeapState,
        limit: u64,
        ops: &'static Ops,
    ) -> Self {
        Heap {
            base,
            state,
            limit,
            ops,
        }
    }

    /// Formats `[start, end)` as an empty block area (`end - HEADER` becomes the sentinel)
    /// and lets the algorithm make its free space of it.
    ///
    /// # Safety
    /// The range lies in the mapping after the algorithm's table, is granule aligned, and
    /// nobody else uses it.
    pub(crate) unsafe fn init(&mut self, start: u64, end: u64) {
        debug_assert!(start % GRANULE as u64 == 0 && end % GRANULE as u64 == 0);
        let table = self.table_range();
        // SAFETY: the state and the table before `start` are ours (contract).
        unsafe {
            self.state.write_bytes(0, 1);
            self.base
                .add(table.0 as usize)
                .write_bytes(0, (start - table.0) as usize);
        }
        let sentinel = end - HEADER as u64;
        // Too small for any block: the start is the sentinel.
        let sentinel = if sentinel - start < MIN_BLOCK as u64 {
            start
        } else {
            sentinel
        };
        // SAFETY: the state is valid and ours (constructor contract); its fields are
        // reached through the pointer, never through a reference to the whole state, which
        // would also cover `start`, read without the lock (`SegmentCore::first_block`).
        unsafe {
            (*self.state).start = start;
            (*self.state).end = sentinel;
        }
        // SAFETY: the sentinel lies in the range (contract).
        unsafe { self.raw_set_word(sentinel, 0) };
        if sentinel > start {
            (self.ops.init)(self);
        }
    }

    // ----- raw access (the crate's algorithms, after their own checks) ----------------

    #[inline]
    pub(crate) fn base(&self) -> *mut u8 {
        self.base
    }

    /// The algorithm's table: its first byte right after the state.
    #[inline]
    pub(crate) fn table_ptr(&self) -> *mut u8 {
        // SAFETY: the table follows the state in the same mapping (constructor contract).
        unsafe { self.state.add(1).cast() }
    }

    /// The table's offsets from the base: after the state, up to the first block.
    fn table_range(&self) -> (u64, u64) {
        let from = self.table_ptr().addr().wrapping_sub(self.base.addr()) as u64;
        (from, self.start().max(from))
    }

    /// The state, for algorithms of the crate that reach its fields through the pointer.
    #[inline]
    pub(crate) fn state_ptr(&self) -> *mut HeapState {
        self.state
    }

    /// # Safety
    /// `off` is an aligned word inside the mapping.
    #[inline]
    pub(crate) unsafe fn raw_word(&self, off: u64) -> u64 {
        // SAFETY: forwarded contract.
        unsafe { block::load(self.base, off) }
    }

    /// See [`block::store`].
    ///
    /// # Safety
    /// `off` is an aligned word inside the writable mapping.
    #[inline]
    pub(crate) unsafe fn raw_set_word(&mut self, off: u64, v: u64) {
        // SAFETY: forwarded contract.
        unsafe { block::store(self.base, off, v) }
    }

    /// Sets or clears [`ALGORITHM_BIT`] on block `off`, which may be a used block that
    /// another thread owns and marks meanwhile without the lock: a read-modify-write.
    ///
    /// # Safety
    /// As for [`Self::raw_set_word`].
    #[inline]
    pub(crate) unsafe fn raw_set_algorithm_bit(&mut self, off: u64, on: bool) {
        // SAFETY: forwarded contract.
        unsafe { block::set_bit(self.base, off, ALGORITHM_BIT, on) }
    }

    // ----- checked access (for any algorithm) -------------------------------------------

    /// Offset of the first block.
    #[inline]
    pub fn start(&self) -> u64 {
        // SAFETY: the state is valid (constructor contract); see `init` on field access.
        unsafe { (*self.state).start }
    }

    /// Offset of the end sentinel: one past the last byte a block may use.
    #[inline]
    pub fn end(&self) -> u64 {
        // SAFETY: as in `start`; only the lock holder writes it.
        unsafe { (*self.state).end }
    }

    /// Bytes in free blocks, headers included. The algorithm keeps it exact: the segment's
    /// free-memory figures, the inspector and the checks read it.
    #[inline]
    pub fn free_bytes(&self) -> u64 {
        // SAFETY: as in `end`.
        unsafe { (*self.state).free_bytes }
    }

    /// Sets the free-bytes counter.
    #[inline]
    pub fn set_free_bytes(&mut self, bytes: u64) {
        // SAFETY: as in `start`; `&mut self` under the segment lock: the only writer.
        unsafe { (*self.state).free_bytes = bytes };
    }

    /// Moves the end sentinel to `end` (growing or trimming the area). The caller writes
    /// the sentinel's header there.
    ///
    /// # Panics
    /// When `end` is not an aligned offset between the start and the mapping's end.
    pub fn set_end(&mut self, end: u64) {
        self.check_word(end, "the end");
        // SAFETY: as in `set_free_bytes`.
        unsafe { (*self.state).end = end };
    }

    /// One of the two words of the state the algorithm keeps as it likes (`i` is 0 or 1).
    pub fn algorithm_word(&self, i: usize) -> u64 {
        // SAFETY: as in `end`; the index is bounds-checked (built-in array indexing).
        unsafe { (*self.state).algorithm[i] }
    }

    /// Sets one of the algorithm's two state words.
    pub fn set_algorithm_word(&mut self, i: usize, v: u64) {
        // SAFETY: as in `set_free_bytes`; the index is bounds-checked.
        unsafe { (*self.state).algorithm[i] = v };
    }

    /// Word `i` of the algorithm's table (the bytes it asked for with
    /// [`table_bytes`](super::MemoryAlgorithm::table_bytes)).
    ///
    /// # Panics
    /// When the word lies past the table.
    pub fn table_word(&self, i: usize) -> u64 {
        let off = self.table_word_offset(i);
        // SAFETY: `off` is an aligned word of the table (checked).
        unsafe { self.raw_word(off) }
    }

    /// Sets word `i` of the algorithm's table.
    ///
    /// # Panics
    /// When the word lies past the table.
    pub fn set_table_word(&mut self, i: usize, v: u64) {
        let off = self.table_word_offset(i);
        // SAFETY: `off` is an aligned word of the table (checked).
        unsafe { self.raw_set_word(off, v) };
    }

    fn table_word_offset(&self, i: usize) -> u64 {
        let (from, to) = self.table_range();
        let off = (i as u64)
            .checked_mul(8)
            .and_then(|o| o.checked_add(from))
            .filter(|&o| o + 8 <= to);
        off.unwrap_or_else(|| panic!("table word {i} lies past the algorithm's table"))
    }

    fn check_word(&self, off: u64, what: &str) {
        let ok =
            off % GRANULE as u64 == 0 && off >= self.start() && off <= self.limit - HEADER as u64;
        assert!(
            ok,
            "{what} ({off}) is not an aligned word of the block area"
        );
    }

    /// The word at `off` (a header, or a word of a free block's bookkeeping).
    ///
    /// # Panics
    /// When `off` is not an aligned offset in the block area.
    pub fn word(&self, off: u64) -> u64 {
        self.check_word(off, "the word");
        // SAFETY: `off` is an aligned word of the mapping (checked).
        unsafe { self.raw_word(off) }
    }

    /// Writes the word at `off`: a block header, or a word of a free block. A used
    /// block's header is the algorithm's to write only while the block is not handed out
    /// (or is being resized for its owner), and keeps the block's marks ([`MARKS`]); use
    /// [`Self::set_algorithm_bit`] for a used block's [`ALGORITHM_BIT`].
    ///
    /// # Panics
    /// When `off` is not an aligned offset in the block area.
    pub fn set_word(&mut self, off: u64, v: u64) {
        self.check_word(off, "the word");
        // SAFETY: `off` is an aligned word of the mapping (checked).
        unsafe { self.raw_set_word(off, v) };
    }

    /// Sets or clears [`ALGORITHM_BIT`] in the header at `off` atomically, keeping the marks
    /// its owner may be setting meanwhile.
    ///
    /// # Panics
    /// When `off` is not an aligned offset in the block area.
    pub fn set_algorithm_bit(&mut self, off: u64, on: bool) {
        self.check_word(off, "the header");
        // SAFETY: `off` is an aligned word of the mapping (checked).
        unsafe { self.raw_set_algorithm_bit(off, on) };
    }

    /// Every block in address order, from the first to the sentinel, stopping at the first
    /// header that is not consistent (a size below [`MIN_BLOCK`], unaligned, or past the
    /// end). Reads no word that is not a header.
    pub fn blocks(&self) -> impl Iterator<Item = (Block, u64)> + '_ {
        let (mut off, end) = (self.start(), self.end());
        std::iter::from_fn(move || {
            if off >= end {
                return None;
            }
            // SAFETY: `off` is a header of the chain inside the range (the first block, or
            // the end of a block whose size was checked below).
            let h = unsafe { self.raw_word(off) };
            let size = h & !super::block::FLAGS;
            if size < MIN_BLOCK as u64 || size % GRANULE as u64 != 0 || size > end - off {
                off = end;
                return None;
            }
            let block = Block { offset: off, size };
            off += size;
            Some((block, h))
        })
    }

    // ----- the block layer ----------------------------------------------------------------

    /// Makes used block `off` span `size` bytes, swallowing the used blocks right after it
    /// (their headers become payload).
    ///
    /// # Safety
    /// `[off, off + size)` is exactly a run of used blocks starting at `off` that nobody
    /// holds any more.
    pub(crate) unsafe fn widen_used(&mut self, off: u64, size: u64) {
        // SAFETY: `off` is a used block header (caller); only its size changes.
        unsafe {
            let bits = self.raw_word(off) & (ALGORITHM_BIT | MARKS);
            self.raw_set_word(off, size | bits);
        }
    }

    /// Size of block `off` if it is a used block inside the range.
    pub(crate) fn used_block_size(&self, off: u64) -> Option<u64> {
        let off = self.used_block_at(off.checked_add(HEADER as u64)?)?;
        // SAFETY: `off` is a block (checked).
        Some(unsafe { self.block_size(off) })
    }

    /// Size of block `off` if it is a used block inside the range marked `INTERNAL`.
    pub(crate) fn internal_block_size(&self, off: u64) -> Option<u64> {
        let size = self.used_block_size(off)?;
        // SAFETY: `off` is a used block (checked); its header is a word of the segment.
        (unsafe { self.raw_word(off) } & MARKS == INTERNAL).then_some(size)
    }

    /// Size of block `off` if it is a used block inside the range that carries no mark
    /// (what a thread cache may hold: a marked block is never cached).
    #[inline]
    pub(crate) fn plain_block_size(&self, off: u64) -> Option<u64> {
        self.plain_blocks().size_of(off)
    }

    /// [`Self::plain_block_size`] for many blocks: the range read once.
    #[inline]
    pub(crate) fn plain_blocks(&self) -> PlainBlocks {
        PlainBlocks {
            base: self.base,
            start: self.start(),
            end: self.end(),
        }
    }

    /// Splits used block `off` into consecutive used blocks of the sizes in `blocks` (their
    /// sum fits in it); the last one keeps any slack. Calls `f` with each payload in order.
    ///
    /// # Safety
    /// `off` is a used block, not handed out, of at least the sum of `blocks`.
    pub(crate) unsafe fn split_used(
        &mut self,
        off: u64,
        blocks: &[u64],
        mut f: impl FnMut(NonNull<u8>),
    ) {
        // SAFETY: every header written lies inside the used block `off` (caller).
        unsafe {
            let end = off + self.block_size(off);
            let kept = self.raw_word(off) & (ALGORITHM_BIT | MARKS);
            // Back to front: the first header, which still spans everything, is rewritten
            // last, so the chain stays walkable if we die half-way.
            let (mut start, mut next) = (off + blocks.iter().sum::<u64>(), end);
            for (i, &b) in blocks.iter().enumerate().rev() {
                start -= b;
                self.raw_set_word(start, (next - start) | if i == 0 { kept } else { 0 });
                next = start;
            }
        }
        let mut at = off;
        for &b in blocks {
            f(self.payload(at));
            at += b;
        }
    }

    /// Offset of the block whose payload is at `payload_off`, after checking that it is a
    /// used block inside the range (a cheap guard against double and foreign frees).
    #[inline]
    pub(crate) fn used_block_at(&self, payload_off: u64) -> Option<u64> {
        let off = payload_off.checked_sub(HEADER as u64)?;
        self.plain_blocks().sized(off, FREE).map(|_| off)
    }

    /// Calls `f(block, is_free, marks)` for every block of the chain in address order,
    /// stopping at the first header that does not check out.
    pub(crate) fn for_each_in_chain(&self, mut f: impl FnMut(Block, bool, u64)) {
        for (block, h) in self.blocks() {
            f(block, h & FREE != 0, h & MARKS);
        }
    }

    /// Calls `f(block, marks)` for every used block of the chain in address order.
    pub(crate) fn for_each_used(&self, mut f: impl FnMut(Block, u64)) {
        for (block, h) in self.blocks().filter(|&(_, h)| h & FREE == 0) {
            f(block, h & MARKS);
        }
    }

    /// Size of the used block whose payload is at `payload_off`, found by walking the chain
    /// of headers from the first block. Unlike [`Self::used_block_at`] it reads no word that
    /// is not a header: for a pointer into the middle of a block, the word before it is
    /// payload, which may never have been initialised. O(blocks before it).
    pub(crate) fn used_block_walked(&self, payload_off: u64) -> Option<u64> {
        let target = payload_off.checked_sub(HEADER as u64)?;
        let (b, h) = self
            .blocks()
            .take_while(|&(b, _)| b.offset <= target)
            .find(|&(b, _)| b.offset == target)?;
        (h & FREE == 0).then_some(b.size)
    }

    /// Size in bytes of block `off` (header included).
    ///
    /// # Safety
    /// `off` is a block of this area.
    #[inline]
    pub(crate) unsafe fn block_size(&self, off: u64) -> u64 {
        // SAFETY: forwarded contract.
        unsafe { self.raw_word(off) & !super::block::FLAGS }
    }

    /// Payload pointer of block `off`.
    #[inline]
    pub(crate) fn payload(&self, off: u64) -> NonNull<u8> {
        // SAFETY: block offsets are inside the mapping, whose base is non-null.
        unsafe { NonNull::new_unchecked(self.base.add(off as usize + HEADER)) }
    }

    /// What the block format promises, whatever the algorithm: a chain of consistent
    /// headers from the start to the sentinel, marks only on used blocks (never both), a
    /// sentinel carrying nothing but [`ALGORITHM_BIT`], and a free counter equal to the
    /// free blocks' bytes. Safe on untrusted bytes: every offset is bounds-checked.
    fn check_chain(&self) -> Result<(), String> {
        let (start, end) = (self.start(), self.end());
        let (mut off, mut free) = (start, 0u64);
        for (b, h) in self.blocks() {
            if h & MARKS == MARKS {
                return Err(format!(
                    "block at {} is marked as an entry and as internal",
                    b.offset
                ));
            }
            if h & FREE != 0 {
                if h & MARKS != 0 {
                    return Err(format!(
                        "free block at {} carries a used block's mark",
                        b.offset
                    ));
                }
                free += b.size;
            }
            off = b.offset + b.size;
        }
        if off != end {
            // SAFETY: `off` lies in the range: the end of the last consistent block.
            let size = unsafe { self.raw_word(off) } & !super::block::FLAGS;
            return Err(if off < end {
                format!("block at {off} has invalid size {size}")
            } else {
                format!("block chain ends at {off}, not at the sentinel {end}")
            });
        }
        // SAFETY: the sentinel's header lies inside the mapping (bounds checked on open).
        if unsafe { self.raw_word(end) } & !ALGORITHM_BIT != 0 {
            return Err("end sentinel is damaged".into());
        }
        if free != self.free_bytes() {
            return Err(format!(
                "free counter says {} bytes, blocks hold {free}",
                self.free_bytes()
            ));
        }
        Ok(())
    }

    // ----- the algorithm --------------------------------------------------------------

    /// Allocates a block of at least `size` bytes (a value from
    /// [`block_size_for`](super::block::block_size_for)); returns its offset.
    #[inline]
    pub(crate) fn alloc_block(&mut self, size: u64) -> Option<u64> {
        (self.ops.allocate)(self, size)
    }

    /// Allocates a block of `size` bytes whose payload address is a multiple of `align`
    /// (a power of two above [`GRANULE`]).
    pub(crate) fn alloc_aligned(&mut self, size: u64, align: u64) -> Option<u64> {
        (self.ops.allocate_aligned)(self, size, align)
    }

    /// Returns used block `off` to the algorithm.
    ///
    /// # Safety
    /// `off` is a used block of this area that nobody will touch again.
    #[inline]
    pub(crate) unsafe fn free_block(&mut self, off: u64) {
        (self.ops.deallocate)(self, off)
    }

    /// Size of the free block right after used block `off`, 0 when it cannot be taken.
    ///
    /// # Safety
    /// `off` is a used block of this area.
    pub(crate) unsafe fn free_after(&self, off: u64) -> u64 {
        (self.ops.free_after)(self, off)
    }

    /// Size of the free block right before used block `off`, 0 when it cannot be taken.
    ///
    /// # Safety
    /// `off` is a used block of this area.
    pub(crate) unsafe fn free_before(&self, off: u64) -> u64 {
        (self.ops.free_before)(self, off)
    }

    /// Grows used block `off` forward to `new_size` by taking the front of the free block
    /// after it.
    ///
    /// # Safety
    /// `off` is a used block; granule-aligned `new_size` is at most its size plus
    /// [`Self::free_after`].
    pub(crate) unsafe fn grow_forward(&mut self, off: u64, new_size: u64) {
        (self.ops.grow_forward)(self, off, new_size)
    }

    /// Grows used block `off` backward by `delta` bytes taken from the free block before
    /// it; returns the block's new offset.
    ///
    /// # Safety
    /// `off` is a used block; `delta` is granule aligned, at most [`Self::free_before`],
    /// and leaves 0 or at least [`MIN_BLOCK`] bytes of that block.
    pub(crate) unsafe fn grow_backward(&mut self, off: u64, delta: u64) -> u64 {
        (self.ops.grow_backward)(self, off, delta)
    }

    /// Shrinks used block `off` to `new_size` when the algorithm can; returns the size the
    /// block really has afterwards.
    ///
    /// # Safety
    /// `off` is a used block; `new_size` is granule aligned and at least [`MIN_BLOCK`].
    pub(crate) unsafe fn shrink(&mut self, off: u64, new_size: u64) -> u64 {
        (self.ops.shrink)(self, off, new_size)
    }

    /// Checks the algorithm's words against the room it has (cheap; for every open,
    /// read-only ones included, before anything follows them).
    pub(crate) fn check_state(&self) -> Result<(), String> {
        (self.ops.check_state)(self)
    }

    /// Checks every invariant: the block format's, then the algorithm's own.
    pub(crate) fn check(&self) -> Result<(), String> {
        self.check_state()?;
        self.check_chain()?;
        (self.ops.check)(self)
    }

    /// Derives the algorithm's structures again from the chain of headers (after a process
    /// died holding the lock).
    pub(crate) fn rebuild(&mut self) -> Result<(), String> {
        self.check_state()?;
        (self.ops.rebuild)(self)
    }

    /// Zeroes the payload of every free block but the words the algorithm keeps there.
    pub(crate) fn zero_free(&mut self) {
        let (front, back) = self.ops.kept_words;
        let ranges: Vec<Block> = self
            .blocks()
            .filter(|&(_, h)| h & FREE != 0)
            .map(|(b, _)| b)
            .collect();
        for b in ranges {
            let from = b.offset + HEADER as u64 + 8 * front;
            let to = b.offset + b.size - 8 * back;
            if to > from {
                // SAFETY: `[from, to)` lies inside a free block, between the words its
                // algorithm keeps; nobody holds a reference into free memory.
                unsafe {
                    self.base
                        .add(from as usize)
                        .write_bytes(0, (to - from) as usize)
                };
            }
        }
    }

    /// Extends the area to end at `new_end` (the segment grew): the new bytes become free.
    ///
    /// # Safety
    /// The mapping now reaches `new_end`, which is granule aligned and past the sentinel.
    pub(crate) unsafe fn extend(&mut self, new_end: u64) {
        self.limit = self.limit.max(new_end);
        (self.ops.extend)(self, new_end)
    }

    /// Cuts a free end off the area, keeping it reaching `min_end` or later; returns the
    /// new end (the sentinel plus its header).
    pub(crate) fn trim_end(&mut self, min_end: u64) -> u64 {
        (self.ops.trim_end)(self, round_up(min_end, GRANULE as u64))
    }

    /// Size of the largest free block (0 when none).
    pub(crate) fn largest_free(&self) -> u64 {
        (self.ops.largest_free)(self)
    }

    /// The algorithm's own view of its area, read in one go.
    pub(crate) fn stats(&self) -> AlgorithmStats {
        let (levels, size_classes) = (self.ops.size_classes)(self);
        AlgorithmStats {
            name: self.ops.name,
            managed: (self.end() - self.start()) as usize,
            free: self.free_bytes() as usize,
            largest_free: self.largest_free().saturating_sub(HEADER as u64) as usize,
            levels,
            size_classes,
        }
    }
}

/// The largest free block of the chain, found by walking it (for algorithms that keep no
/// faster answer).
pub(crate) fn largest_free_walked(heap: &Heap) -> u64 {
    heap.blocks()
        .filter(|&(_, h)| h & FREE != 0)
        .map(|(b, _)| b.size)
        .max()
        .unwrap_or(0)
}

/// Checks blocks as [`Heap::plain_block_size`] does, with the area's bounds read once (a
/// thread cache's drain checks a whole bin).
#[derive(Clone, Copy)]
pub(crate) struct PlainBlocks {
    base: *mut u8,
    start: u64,
    end: u64,
}

impl PlainBlocks {
    /// Size of block `off` if it is a used, unmarked block inside the area: one header read.
    #[inline]
    pub(crate) fn size_of(&self, off: u64) -> Option<u64> {
        self.sized(off, FREE | MARKS)
    }

    /// Size of block `off` if it is a block inside the area whose header carries none of
    /// `refused` (`FREE`: a used block; `FREE | MARKS`: an unmarked one).
    #[inline]
    fn sized(&self, off: u64, refused: u64) -> Option<u64> {
        if off % GRANULE as u64 != 0 || off < self.start || off >= self.end {
            return None;
        }
        // SAFETY: `off` is an aligned offset inside the block area (checked), whose words
        // lie inside the mapping (checked on open).
        let h = unsafe { block::load(self.base, off) };
        let size = h & !super::block::FLAGS;
        (h & refused == 0
            && size >= MIN_BLOCK as u64
            && size % GRANULE as u64 == 0
            && size <= self.end - off)
            .then_some(size)
    }
}
