//! Per-thread caches of blocks below 4 KiB, kept inside the segment.
//!
//! A locked instruction costs ~13 ns on the machines we measure on, so a lock/unlock pair
//! per `allocate` and per `deallocate` would be most of their cost. A thread therefore keeps
//! the small blocks it frees in a slot of its own and hands them out again without the lock,
//! like glibc's tcache; an empty bin is refilled with a run of blocks, and a full one is
//! returned whole, each in one locked call. A bin of one exact size also keeps a run of
//! neighbouring blocks (see [`Run`]): a refill hands its blocks out front first, in address
//! order, and blocks freed next to the run join it without a write into them, so a
//! structure built and torn down in order costs a store per block, and returns to the
//! allocator as one block. Blocks up to 256 bytes have a bin per size; larger
//! ones a bin per TLSF size class (16 per power of two), from which a request takes a block
//! of the first class all of whose blocks fit it (at most a class width, 1/16, of slack, as
//! the TLSF's own search). Unlike a process-local cache, the slots live in the segment:
//! - what they hold counts as free in `free_memory` and `all_memory_deallocated`;
//! - the blocks of a process that died are found and returned by the next process that
//!   claims a slot, and a mapping that is dropped returns its threads' blocks;
//! - `zero_free_memory` and an allocation that finds the segment full bump an epoch, and a
//!   thread whose slot is older returns its blocks before using the cache again.
//!
//! To the allocator a cached block is a used block: coalescing, checks and crash recovery
//! never see the cache. A process killed while refilling or returning a bin leaks at most
//! that bin's blocks (a few KiB), never frees one twice. Only segments of at least [`MIN_SEGMENT`] bytes, or that may grow to it while mapped, get a cache, and a
//! slot holds at most a small budget, so the memory it can keep from other threads is small.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

use super::block::{ENTRY, FREE, GRANULE, HEADER, MIN_BLOCK};
use super::heap::Heap;
use crate::robust::{current_pid, Owner};

/// Largest block (header included) cached in a bin of its exact size. Up to here TLSF's
/// classes are one granule wide, so exact bins are class bins that never hand out slack
/// (a 32-byte request keeps taking a 40-byte block).
const EXACT_MAX: u64 = 256;
const EXACT_BINS: usize = ((EXACT_MAX - MIN_BLOCK as u64) / GRANULE as u64 + 1) as usize;
/// log2 of the classes per power of two (TLSF's second level).
const CLASS_LOG2: u32 = 4;
/// First block size of the class bins: the class of 256..272 is left out, as exact bins
/// serve every request it could (a 264-byte block is freed the ordinary way).
const CLASS_START: u64 = EXACT_MAX + (EXACT_MAX >> CLASS_LOG2);
/// Blocks (header included) of this size and larger are never cached.
pub const CLASS_END: u64 = 4096;
const CLASS_BINS: usize = ((CLASS_END.ilog2() - EXACT_MAX.ilog2()) << CLASS_LOG2) as usize - 1;
const BINS: usize = EXACT_BINS + CLASS_BINS;
/// Threads (of all processes, per mapping) that can cache at once.
pub const SLOTS: usize = 32;
/// Segments smaller than this get no cache: its table and budgets would be too large a part.
pub const MIN_SEGMENT: usize = 16 << 20;
/// Blocks an exact bin holds at most; a full bin goes back to the allocator in one locked
/// call.
const BIN_CAPACITY: u64 = 64;
/// Blocks an exact bin's run holds at most: a full run goes back in one locked call, which
/// checks each of its blocks.
const RUN_CAPACITY: u64 = 1024;
/// Blocks a class bin holds at most: with the slot's budget spread over 63 classes, a few
/// blocks per class give the best hit rate (a simulation of `alloc_free_mixed`: 80 % of
/// its allocations hit with 8, 58 % with 64, which let a few classes take the budget).
const CLASS_CAPACITY: u64 = 8;
/// Blocks an empty exact bin is refilled with in one locked call (budget permitting).
const REFILL: u64 = 32;
/// Bytes an empty class bin is refilled with at most (bins of blocks above 2 KiB are
/// therefore not refilled: only what this thread frees is cached).
const CLASS_REFILL_BYTES: u64 = 4096;
/// Room for the offsets and sizes of one bin's blocks, to free them in address order.
type BinBlocks = [(u64, u64); BIN_CAPACITY as usize];

#[repr(C)]
struct Bin {
    /// Offset of the first cached block; each block's first payload word links the next.
    head: AtomicU64,
    count: AtomicU64,
    /// Bytes of the blocks held, for class bins (whose blocks differ in size); an exact
    /// bin holds `count` blocks of its size and leaves this 0.
    bytes: AtomicU64,
}

/// A run of neighbouring blocks of one exact bin's size, `[start, end)`, each still a used
/// block with its own header: a block freed right after or before the run joins it, and a
/// block is taken from its end, by changing one word and writing nothing into the blocks.
/// Blocks freed in address order (a structure torn down) thus cost no link write each, and
/// the run goes back to the allocator as one block. Empty when `start` is 0 (`end` is then
/// stale): a run is started by storing `end`, then `start`, and emptied by storing 0 in
/// `start`, so that a process killed at any point leaves a run whose bytes are all blocks.
#[repr(C)]
struct Run {
    start: AtomicU64,
    end: AtomicU64,
}

impl Run {
    /// `(start, end)`, or None when empty.
    #[inline]
    fn get(&self) -> Option<(u64, u64)> {
        let start = self.start.load(Relaxed);
        (start != 0).then(|| (start, self.end.load(Relaxed)))
    }

    /// Bytes the run holds (a snapshot: 0 when empty or inverted).
    fn bytes(&self) -> u64 {
        self.get()
            .map_or(0, |(start, end)| end.saturating_sub(start))
    }

    #[inline]
    fn clear(&self) {
        self.start.store(0, Relaxed);
    }
}

#[repr(C)]
pub struct Slot {
    /// `owner id << 32 | mapping id` (see `sync::owner`), 0 when free.
    owner: AtomicU64,
    /// The owning thread's kernel id, so a thread finds its slot again after forgetting it
    /// and slots of exited threads can be told apart.
    thread: AtomicU64,
    /// Bytes (whole blocks) cached in this slot.
    cached: AtomicU64,
    /// Largest `cached` allowed.
    budget: AtomicU64,
    /// The segment's cache epoch when this slot was last emptied.
    epoch: AtomicU64,
    bins: [Bin; BINS],
    /// Each exact bin's run (see [`Run`]).
    runs: [Run; EXACT_BINS],
}

/// The slots, allocated from the segment when it is created.
#[repr(C)]
pub struct SlotTable {
    slots: [Slot; SLOTS],
}

impl SlotTable {
    pub const SIZE: usize = std::mem::size_of::<SlotTable>();
}

/// Whether a segment of `len` bytes that may grow to `max` gets a cache: one that is, or
/// may become, [`MIN_SEGMENT`] bytes, as long as the table is a small part of it now.
pub fn wanted(len: usize, max: u64) -> bool {
    len >= MIN_SEGMENT || (max >= MIN_SEGMENT as u64 && len >= 8 * SlotTable::SIZE)
}

/// Bytes a slot may cache in a segment of `size` bytes.
pub fn budget(size: usize) -> u64 {
    (size as u64 / 512).min(256 << 10)
}

static NEXT_MAPPING: AtomicU32 = AtomicU32::new(1);

/// Mappings of this process for which some thread claimed a slot: only those have blocks
/// to return when they go away (most short-lived mappings never cache anything).
static CLAIMED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Notes that a thread claimed a slot for `mapping`.
pub fn note_claimed(mapping: u32) {
    let mut claimed = CLAIMED.lock().unwrap_or_else(PoisonError::into_inner);
    if !claimed.contains(&mapping) {
        claimed.push(mapping);
    }
}

/// Whether any thread claimed a slot for `mapping`, forgetting it.
pub fn take_claimed(mapping: u32) -> bool {
    let mut claimed = CLAIMED.lock().unwrap_or_else(PoisonError::into_inner);
    match claimed.iter().position(|&m| m == mapping) {
        Some(i) => {
            claimed.swap_remove(i);
            true
        }
        None => false,
    }
}

thread_local! {
    /// (pid, tid) of this thread, cached; the pid tells a forked child that the record is
    /// its parent's.
    static TID: Cell<(u32, u64)> = const { Cell::new((0, 0)) };
}

/// This thread's kernel thread id.
fn current_tid() -> u64 {
    let pid = current_pid();
    TID.with(|t| match t.get() {
        (p, tid) if p == pid => tid,
        _ => {
            let tid = rustix::thread::gettid().as_raw_nonzero().get() as u64;
            t.set((pid, tid));
            tid
        }
    })
}

/// Whether thread `tid` of this process still runs (when in doubt: yes).
fn thread_alive(tid: u64) -> bool {
    if cfg!(miri) {
        // Miri isolates /proc: assume alive (only reclaiming is skipped).
        return true;
    }
    match std::fs::metadata(format!("/proc/self/task/{tid}")) {
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
        Ok(_) => true,
    }
}

/// A fresh id for a mapping of a segment in this process (never 0, never reused).
pub fn new_mapping_id() -> u32 {
    NEXT_MAPPING.fetch_add(1, Relaxed)
}

fn slot_owner(owner: u32, mapping: u32) -> u64 {
    (owner as u64) << 32 | mapping as u64
}

/// The bin of class `size` (`CLASS_START <= size < CLASS_END`): TLSF's `mapping_insert`.
#[inline]
fn class_bin(size: u64) -> usize {
    let fl = size.ilog2();
    let sl = (size >> (fl - CLASS_LOG2)) as usize & ((1 << CLASS_LOG2) - 1);
    EXACT_BINS + (((fl - EXACT_MAX.ilog2()) as usize) << CLASS_LOG2) + sl - 1
}

/// The bin a freed block of `size` bytes goes to: its exact size's or its class's.
#[inline]
fn push_bin(size: u64) -> Option<usize> {
    if size <= EXACT_MAX {
        (size >= MIN_BLOCK as u64).then(|| ((size - MIN_BLOCK as u64) / GRANULE as u64) as usize)
    } else {
        (CLASS_START..CLASS_END)
            .contains(&size)
            .then(|| class_bin(size))
    }
}

/// The bin whose every block holds `size` bytes: its exact size's, or the first class
/// starting at or above `size` (TLSF's `mapping_search`).
#[inline]
fn pop_bin(size: u64) -> Option<usize> {
    if size <= EXACT_MAX {
        return push_bin(size);
    }
    let up = size + (1 << (size.ilog2() - CLASS_LOG2)) - 1;
    (up < CLASS_END).then(|| class_bin(up))
}

/// The sizes of the blocks bin `i` holds: `lo..lo + width`.
#[inline]
fn bin_sizes(i: usize) -> (u64, u64) {
    if i < EXACT_BINS {
        return (MIN_BLOCK as u64 + i as u64 * GRANULE as u64, GRANULE as u64);
    }
    let class = (i - EXACT_BINS + 1) as u64;
    let fl = EXACT_MAX.ilog2() as u64 + (class >> CLASS_LOG2);
    let width = 1 << (fl - CLASS_LOG2 as u64);
    ((1 << fl) + (class & ((1 << CLASS_LOG2) - 1)) * width, width)
}

/// Blocks bin `i` holds at most.
#[inline]
fn capacity(i: usize) -> u64 {
    if i < EXACT_BINS {
        BIN_CAPACITY
    } else {
        CLASS_CAPACITY
    }
}

/// Whether a block of `size` bytes belongs in a bin of `(lo, width)` sizes.
#[inline]
fn fits(size: u64, (lo, width): (u64, u64)) -> bool {
    size.wrapping_sub(lo) < width
}

impl Slot {
    /// Bytes of the blocks bin `i` holds, its run included.
    fn held(&self, i: usize) -> u64 {
        let bin = &self.bins[i];
        if i < EXACT_BINS {
            let linked = bin.count.load(Relaxed).saturating_mul(bin_sizes(i).0);
            linked.saturating_add(self.runs[i].bytes())
        } else {
            bin.bytes.load(Relaxed)
        }
    }
}

/// Walks `[start, end)` as a row of used, unmarked blocks of `size` bytes, calling `f` with
/// each; the offset where that fails otherwise (an inverted range fails at once).
fn row_of_blocks(
    t: &Heap,
    start: u64,
    end: u64,
    size: u64,
    mut f: impl FnMut(u64),
) -> Result<(), u64> {
    let plain = t.plain_blocks();
    let mut cur = start;
    while cur < end {
        plain.size_of(cur).filter(|&s| s == size).ok_or(cur)?;
        f(cur);
        cur += size;
    }
    if cur == end {
        Ok(())
    } else {
        Err(end)
    }
}

/// Forgets every block of `bin` (bin `i`), which holds one that is not what it should be:
/// they leak rather than be handed out; the slot's byte total follows.
#[cold]
fn drop_bin(slot: &Slot, i: usize) {
    let dropped = slot.held(i);
    forget_bin(slot, i);
    slot.cached
        .store(slot.cached.load(Relaxed).saturating_sub(dropped), Relaxed);
}

/// Empties bin `i` of `slot` without returning its blocks.
fn forget_bin(slot: &Slot, i: usize) {
    let bin = &slot.bins[i];
    if i < EXACT_BINS {
        slot.runs[i].clear();
    }
    bin.count.store(0, Relaxed);
    bin.bytes.store(0, Relaxed);
    bin.head.store(0, Relaxed);
}

/// Which slot this thread uses for a mapping; cached per thread.
#[derive(Clone, Copy)]
struct Entry {
    pid: u32,
    mapping: u32,
    /// Offset of the slot in the segment; 0 when the thread could not get one.
    slot: u64,
}

const NO_ENTRY: Entry = Entry {
    pid: 0,
    mapping: 0,
    slot: 0,
};

thread_local! {
    /// The entry used last (almost always the only one), then up to three more.
    static LAST: Cell<Entry> = const { Cell::new(NO_ENTRY) };
    static MORE: Cell<[Entry; 3]> = const { Cell::new([NO_ENTRY; 3]) };
}

/// The slot offset this thread recorded for `mapping`, if any (`Some(0)`: no slot to be had).
/// Entries carry the pid, so a forked child never uses its parent's slot.
#[inline]
pub fn recorded_slot(mapping: u32) -> Option<u64> {
    let pid = current_pid();
    let last = LAST.try_with(Cell::get).ok()?;
    if last.mapping == mapping && last.pid == pid {
        return Some(last.slot);
    }
    recorded_slot_slow(mapping, pid)
}

#[cold]
fn recorded_slot_slow(mapping: u32, pid: u32) -> Option<u64> {
    let mut more = MORE.try_with(Cell::get).ok()?;
    let i = more
        .iter()
        .position(|e| e.mapping == mapping && e.pid == pid)?;
    let found = more[i];
    more[i] = LAST.try_with(Cell::get).ok()?;
    let _ = MORE.try_with(|m| m.set(more));
    let _ = LAST.try_with(|l| l.set(found));
    Some(found.slot)
}

/// Remembers this thread's slot for `mapping`, pushing older entries back (the oldest is
/// forgotten; its slot stays claimed until its mapping is dropped).
pub fn record_slot(mapping: u32, slot: u64) {
    let entry = Entry {
        pid: current_pid(),
        mapping,
        slot,
    };
    let Ok(previous) = LAST.try_with(|l| l.replace(entry)) else {
        return;
    };
    let _ = MORE.try_with(|m| {
        let mut more = m.get();
        more.rotate_right(1);
        more[0] = previous;
        m.set(more);
    });
}

/// The cache view of one segment mapping: its base and its slot table.
pub struct Cache {
    base: *mut u8,
    table: u64,
}

/// Why a lockless `push` did not cache a block.
pub enum PushRefused {
    /// Not a cacheable size, a stale slot, or no budget left: free it the ordinary way.
    Refused,
    /// The bin is full: return the whole bin in one locked call, then cache the block.
    Full,
    /// The block is the one this bin handed back last: a double free.
    DoubleFree,
}

impl Cache {
    /// # Safety
    /// `table` is 0 or the offset of a `SlotTable` inside the writable mapping at `base`.
    #[inline]
    pub unsafe fn new(base: *mut u8, table: u64) -> Self {
        Cache { base, table }
    }

    /// Whether the segment has a slot table.
    #[inline]
    pub fn exists(&self) -> bool {
        self.table != 0
    }

    /// Offset of the slot table's payload (0 without one).
    #[inline]
    pub fn table(&self) -> u64 {
        self.table
    }

    /// Whether slot `off` was last emptied before `epoch`.
    #[inline]
    pub fn is_stale(&self, off: u64, epoch: u64) -> bool {
        self.slot(off).epoch.load(Relaxed) != epoch
    }

    #[inline]
    fn slot(&self, off: u64) -> &Slot {
        // SAFETY: slot offsets are only made by `claim` from the table inside the mapping.
        unsafe { &*self.base.add(off as usize).cast::<Slot>() }
    }

    fn slots(&self) -> impl Iterator<Item = (u64, &Slot)> + '_ {
        let first = if self.table == 0 { 0 } else { SLOTS };
        (0..first).map(move |i| {
            let off = self.table + (i * std::mem::size_of::<Slot>()) as u64;
            (off, self.slot(off))
        })
    }

    /// Takes a cached block that holds `size` bytes (of exactly that size up to 256 bytes,
    /// else of the first class all of whose blocks hold it), without the lock. Blocks must
    /// end before `limit` (the segment size); a bin that says otherwise is dropped.
    #[inline(always)]
    pub fn pop(&self, slot: u64, size: u64, epoch: u64, limit: u64) -> Option<u64> {
        let i = pop_bin(size)?;
        let slot = self.slot(slot);
        if slot.epoch.load(Relaxed) != epoch {
            return None;
        }
        let bin = &slot.bins[i];
        let head = bin.head.load(Relaxed);
        if head == 0 {
            return if i < EXACT_BINS {
                self.pop_run(slot, i, limit)
            } else {
                None
            };
        }
        let sizes = bin_sizes(i);
        if head % GRANULE as u64 != 0 || head.saturating_add(sizes.0) > limit {
            drop_bin(slot, i);
            return None;
        }
        // Defence in depth: the header must still say a used block of this bin's sizes, no
        // object entry (misuse such as resizing a freed block through `allocation_command`
        // would change it; a block handed out never carries `ENTRY`).
        // SAFETY: cached blocks lie in the mapping; headers are aligned words.
        let header =
            unsafe { AtomicU64::from_ptr(self.base.add(head as usize).cast()).load(Relaxed) };
        let got = header & !(GRANULE as u64 - 1);
        if !fits(got, sizes) || header & (FREE | ENTRY) != 0 || head + got > limit {
            drop_bin(slot, i);
            return None;
        }
        // SAFETY: `head` is a cached block of this slot, which only this thread touches;
        // its first payload word links the next one.
        // The link is payload again: clear it, so that memory zeroed by
        // `zero_free_memory` and handed out through a refilled bin reads as zero.
        let next = unsafe { self.base.add(head as usize + 8).cast::<u64>().replace(0) };
        bin.head.store(next, Relaxed);
        bin.count.store(bin.count.load(Relaxed) - 1, Relaxed);
        if i >= EXACT_BINS {
            bin.bytes
                .store(bin.bytes.load(Relaxed).saturating_sub(got), Relaxed);
        }
        slot.cached.store(slot.cached.load(Relaxed) - got, Relaxed);
        Some(head)
    }

    /// Takes the first block of exact bin `i`'s run, checked as `pop` checks a linked
    /// block. From the front, so that a refilled run is handed out in address order (and
    /// comes back as one run when freed in that order), and a block freed right after
    /// being taken is the next taken again.
    #[inline]
    fn pop_run(&self, slot: &Slot, i: usize, limit: u64) -> Option<u64> {
        let run = &slot.runs[i];
        let (start, end) = run.get()?;
        let size = bin_sizes(i).0;
        let next = start.wrapping_add(size);
        if start % GRANULE as u64 != 0 || next < start || next > end || end > limit {
            drop_bin(slot, i);
            return None;
        }
        // SAFETY: run blocks lie in the mapping (checked against `limit`); headers are
        // aligned words, read atomically as in `pop`.
        let header =
            unsafe { AtomicU64::from_ptr(self.base.add(start as usize).cast()).load(Relaxed) };
        if header & !(GRANULE as u64 - 1) != size || header & (FREE | ENTRY) != 0 {
            drop_bin(slot, i);
            return None;
        }
        if next == end {
            run.clear();
        } else {
            run.start.store(next, Relaxed);
        }
        slot.cached.store(slot.cached.load(Relaxed) - size, Relaxed);
        Some(start)
    }

    /// Caches used block `off` of `size` bytes, without the lock.
    #[inline(always)]
    pub fn push(&self, slot: u64, off: u64, size: u64, epoch: u64) -> Result<(), PushRefused> {
        let i = push_bin(size).ok_or(PushRefused::Refused)?;
        let slot = self.slot(slot);
        if slot.epoch.load(Relaxed) != epoch {
            return Err(PushRefused::Refused);
        }
        let cached = slot.cached.load(Relaxed);
        let over_budget = cached + size > slot.budget.load(Relaxed);
        if i < EXACT_BINS {
            let run = &slot.runs[i];
            match run.get() {
                // Before anything else: a full run would go back as one block, and a block
                // of it freed again would then be cached inside free memory.
                Some((start, end)) if (start..end).contains(&off) => {
                    return Err(PushRefused::DoubleFree)
                }
                // A full run, or one that took the budget, goes back whole; then the block
                // is cached.
                Some((start, end))
                    if over_budget || end.wrapping_sub(start) >= RUN_CAPACITY * size =>
                {
                    return Err(PushRefused::Full)
                }
                Some((_, end)) if off == end => run.end.store(end + size, Relaxed),
                Some((start, _)) if off + size == start => run.start.store(off, Relaxed),
                Some(_) => return self.push_linked(slot, i, off, size, cached, over_budget),
                None if over_budget => return Err(PushRefused::Refused),
                None => {
                    run.end.store(off + size, Relaxed);
                    run.start.store(off, Relaxed);
                }
            }
            slot.cached.store(cached + size, Relaxed);
            return Ok(());
        }
        self.push_linked(slot, i, off, size, cached, over_budget)
    }

    /// Links used block `off` of `size` bytes at the head of bin `i` of `slot`.
    #[inline]
    fn push_linked(
        &self,
        slot: &Slot,
        i: usize,
        off: u64,
        size: u64,
        cached: u64,
        over_budget: bool,
    ) -> Result<(), PushRefused> {
        let bin = &slot.bins[i];
        let (head, count) = (bin.head.load(Relaxed), bin.count.load(Relaxed));
        if head == off {
            return Err(PushRefused::DoubleFree);
        }
        if count >= capacity(i) {
            return Err(PushRefused::Full);
        }
        if over_budget {
            return Err(PushRefused::Refused);
        }
        // SAFETY: `off` is a used block the caller gives up; its payload is ours to link.
        unsafe { self.base.add(off as usize + 8).cast::<u64>().write(head) };
        bin.head.store(off, Relaxed);
        bin.count.store(count + 1, Relaxed);
        if i >= EXACT_BINS {
            bin.bytes.store(bin.bytes.load(Relaxed) + size, Relaxed);
        }
        slot.cached.store(cached + size, Relaxed);
        Ok(())
    }

    /// Bytes cached in all slots (a snapshot while other threads work).
    pub fn cached_bytes(&self) -> u64 {
        // Saturating: the counters of a mapping that never checked them (read-only) may
        // be forged, and a figure must not overflow.
        self.slots()
            .map(|(_, s)| s.cached.load(Relaxed))
            .fold(0, u64::saturating_add)
    }

    /// The offsets of the blocks cached in all slots, for tools: each bin followed for at
    /// most its count, and only through used, unmarked blocks of the bin's size (`t`
    /// checks them, as `drain` does), so a link an owner thread is changing meanwhile ends
    /// its bin early instead of leading anywhere.
    pub fn cached_blocks(&self, t: &Heap) -> Vec<u64> {
        let mut out = Vec::new();
        for (_, slot) in self.slots().filter(|(_, s)| s.owner.load(Relaxed) != 0) {
            for (i, bin) in slot.bins.iter().enumerate() {
                let sizes = bin_sizes(i);
                let mut cur = bin.head.load(Relaxed);
                for _ in 0..bin.count.load(Relaxed).min(capacity(i)) {
                    if cur == 0 || !t.plain_block_size(cur).is_some_and(|s| fits(s, sizes)) {
                        break;
                    }
                    out.push(cur);
                    // SAFETY: `cur` is a used block of the segment (checked), so its first
                    // payload word is in the mapping and aligned; loaded atomically, as its
                    // owner thread may be relinking it.
                    cur = unsafe {
                        AtomicU64::from_ptr(self.base.add(cur as usize + 8).cast()).load(Relaxed)
                    };
                }
                // A run its owner is changing meanwhile may read short or not at all.
                if i < EXACT_BINS {
                    out.extend(self.run_blocks(t, &slot.runs[i], i).unwrap_or_default());
                }
            }
        }
        out
    }

    /// The blocks of exact bin `which`'s run, each checked to be a used, unmarked block of
    /// the bin's size, the last ending the run; else the offset where that fails.
    fn run_blocks(&self, t: &Heap, run: &Run, which: usize) -> Result<Vec<u64>, u64> {
        let mut blocks = Vec::new();
        if let Some((start, end)) = run.get() {
            row_of_blocks(t, start, end, bin_sizes(which).0, |b| blocks.push(b))?;
        }
        Ok(blocks)
    }

    /// The slots in use, as (owner id, mapping id, owning thread's kernel id, cached
    /// bytes): a snapshot of atomic words while other threads work.
    pub fn used_slots(&self) -> Vec<(u32, u32, u64, u64)> {
        self.slots()
            .filter_map(|(_, s)| {
                let o = s.owner.load(Relaxed);
                (o != 0).then(|| {
                    let (thread, cached) = (s.thread.load(Relaxed), s.cached.load(Relaxed));
                    ((o >> 32) as u32, o as u32, thread, cached)
                })
            })
            .collect()
    }

    /// Raises slot `off`'s budget to `budget` (the segment grew since it was claimed).
    /// Lock held by its owner.
    pub fn raise_budget(&self, off: u64, budget: u64) {
        let slot = self.slot(off);
        if slot.budget.load(Relaxed) < budget {
            slot.budget.store(budget, Relaxed);
        }
    }

    /// Returns the blocks of slots whose mapping is gone (see `sync::owner`) and frees
    /// those slots. Lock held by `owner`.
    pub fn reclaim_dead(&self, t: &mut Heap, epoch: u64, owner: &Owner) {
        let me = u64::from(owner.claimed());
        for (off, slot) in self.slots() {
            let o = slot.owner.load(Relaxed);
            if o != 0 && o >> 32 != me && !owner.alive((o >> 32) as u32) {
                self.flush(t, off, epoch);
                slot.owner.store(0, Relaxed);
            }
        }
    }

    /// The slot of this thread and `mapping`: the one it already owns (its thread-local
    /// record may have been evicted), else a free one (0 when all are taken), after
    /// reclaiming the slots of dead mappings. Lock held by `owner`.
    pub fn claim(&self, t: &mut Heap, mapping: u32, budget: u64, epoch: u64, owner: &Owner) -> u64 {
        let me = slot_owner(owner.claimed(), mapping);
        let tid = current_tid();
        if let Some((off, _)) = self
            .slots()
            .find(|(_, s)| s.owner.load(Relaxed) == me && s.thread.load(Relaxed) == tid)
        {
            return off;
        }
        self.reclaim_dead(t, epoch, owner);
        let Some((off, slot)) = self.slots().find(|(_, s)| s.owner.load(Relaxed) == 0) else {
            return 0;
        };
        self.flush(t, off, epoch);
        slot.budget.store(budget, Relaxed);
        slot.thread.store(tid, Relaxed);
        slot.owner.store(me, Relaxed);
        off
    }

    /// Returns the blocks of this mapping's slots whose thread has exited, and frees those
    /// slots (the segment looked full). Lock held by `owner`.
    pub fn reclaim_exited_threads(&self, t: &mut Heap, epoch: u64, owner: &Owner) {
        let me = u64::from(owner.claimed());
        for (off, slot) in self.slots() {
            let o = slot.owner.load(Relaxed);
            if o != 0 && o >> 32 == me && !thread_alive(slot.thread.load(Relaxed)) {
                self.flush(t, off, epoch);
                slot.owner.store(0, Relaxed);
            }
        }
    }

    /// Returns every block of slot `off` to the allocator and marks it current. Called with
    /// the segment lock held. Links are checked (in range, used, the bin's size, no more than
    /// the count), so a slot left half-updated by a dead process cannot mislead the walk.
    pub fn flush(&self, t: &mut Heap, off: u64, epoch: u64) {
        let slot = self.slot(off);
        for i in 0..BINS {
            self.drain(t, slot, i);
        }
        slot.cached.store(0, Relaxed);
        slot.epoch.store(epoch, Relaxed);
    }

    /// Returns every block of `bin` (bin `which` of its slot) to the allocator. The bin
    /// is detached first, so a crash part-way leaks what was not freed yet (at most one
    /// bin) instead of leaving the bin pointing into free memory, whose stale headers would
    /// pass the checks below and be freed twice by the recoverer. The blocks are freed
    /// oldest first, which for blocks freed in address order (a structure torn down) is
    /// address order: each then merges into the free block before it in place.
    /// Returns the bytes freed.
    fn drain(&self, t: &mut Heap, slot: &Slot, which: usize) -> u64 {
        let run = if which < EXACT_BINS {
            self.drain_run(t, &slot.runs[which], which)
        } else {
            0
        };
        run + self.drain_linked(t, &slot.bins[which], which)
    }

    /// Returns the run of exact bin `which` to the allocator as one block (detached first,
    /// as in `drain`). A run whose first block or bounds are not what they should be (a
    /// forged slot) is forgotten instead: a leak rather than a corruption. Returns the
    /// bytes freed.
    fn drain_run(&self, t: &mut Heap, run: &Run, which: usize) -> u64 {
        let Some((start, end)) = run.get() else {
            return 0;
        };
        run.clear();
        let size = bin_sizes(which).0;
        // Each block is checked, as `drain_linked` checks its blocks: the words may come
        // from bytes of unknown origin (a file at rest, an image), and a run widened over
        // anything but its own used blocks would corrupt the allocator. The blocks are
        // few (`RUN_CAPACITY`) and their headers were read when they joined.
        if row_of_blocks(t, start, end, size, |_| {}).is_err() || end == start {
            return 0;
        }
        let bytes = end - start;
        // SAFETY: `[start, end)` are used, unmarked blocks of `size` bytes (checked) that
        // only the detached run held; widening the first header over the rest keeps the
        // chain walkable, and a crash before the free leaks the run.
        unsafe {
            if bytes > size {
                t.widen_used(start, bytes);
            }
            t.free_block(start);
        }
        bytes
    }

    /// Returns the linked blocks of bin `which` (see `drain`).
    fn drain_linked(&self, t: &mut Heap, bin: &Bin, which: usize) -> u64 {
        let sizes = bin_sizes(which);
        let mut blocks: BinBlocks = [(0, 0); BIN_CAPACITY as usize];
        let mut n = 0;
        let mut cur = bin.head.load(Relaxed);
        let count = bin.count.load(Relaxed).min(capacity(which));
        let plain = t.plain_blocks();
        while cur != 0 && (n as u64) < count {
            let Some(size) = plain.size_of(cur).filter(|&s| fits(s, sizes)) else {
                // A link a dead process left half-written: the rest of the bin stays
                // allocated, a leak rather than a corruption.
                break;
            };
            blocks[n] = (cur, size);
            n += 1;
            // SAFETY: `cur` is a used block of this bin (checked) held only by this bin.
            cur = unsafe { self.base.add(cur as usize + 8).cast::<u64>().read() };
        }
        bin.head.store(0, Relaxed);
        bin.count.store(0, Relaxed);
        bin.bytes.store(0, Relaxed);
        // Runs of neighbouring blocks (the usual case when a structure is torn down) go
        // back as one block each: its first header is widened over the run, then freed.
        let oldest_first = &blocks[..n];
        let (mut i, mut freed) = (n, 0);
        while i > 0 {
            let (start, mut bytes) = oldest_first[i - 1];
            let mut len = 1;
            while i > len && oldest_first[i - 1 - len].0 == start + bytes {
                bytes += oldest_first[i - 1 - len].1;
                len += 1;
            }
            // SAFETY: `start` and the `len - 1` blocks after it are used blocks (checked
            // above) that the detached bin gave up, `bytes` long together; widening the
            // first header over its neighbours keeps the chain walkable (their headers
            // become payload), and a crash before the free leaks the run, never more.
            unsafe {
                if len > 1 {
                    t.widen_used(start, bytes);
                }
                t.free_block(start);
            }
            freed += bytes;
            i -= len;
        }
        freed
    }

    /// Makes room in this thread's bin for blocks of `size` by returning the whole bin.
    /// Lock held.
    pub fn empty_bin(&self, t: &mut Heap, slot: u64, size: u64) {
        let Some(i) = push_bin(size) else { return };
        let slot = self.slot(slot);
        // What the bin held leaves the slot's total, freed or (a block that was not what it
        // should be) forgotten.
        let held = slot.held(i);
        self.drain(t, slot, i);
        slot.cached
            .store(slot.cached.load(Relaxed).saturating_sub(held), Relaxed);
    }

    /// Allocates a run of blocks for this thread's empty bin of blocks holding `size` in
    /// one locked call, caches all but one and returns that one: for a class bin the last
    /// (it may carry slack: the blocks are the class's smallest size, so that each fits
    /// every request of the bin), for an exact bin the first (see `refill_run`).
    /// None when `size` is not cached, the budget has no room or no run fits; the caller
    /// then allocates one block. A crash before the bin is published leaks the run (at
    /// most `REFILL` blocks), never more.
    pub fn refill(&self, t: &mut Heap, slot: u64, size: u64) -> Option<u64> {
        let i = pop_bin(size)?;
        let size = bin_sizes(i).0;
        let most = if i < EXACT_BINS {
            REFILL
        } else {
            (CLASS_REFILL_BYTES / size).min(CLASS_CAPACITY + 1)
        };
        let slot = self.slot(slot);
        let bin = &slot.bins[i];
        let cached = slot.cached.load(Relaxed);
        let n = (slot.budget.load(Relaxed).saturating_sub(cached) / size).min(most.max(1) - 1) + 1;
        if n < 2 || bin.count.load(Relaxed) != 0 || i < EXACT_BINS && slot.runs[i].get().is_some() {
            return None;
        }
        let run = t.alloc_block(n * size)?;
        if i < EXACT_BINS {
            return Some(self.refill_run(t, slot, i, run, n, size));
        }
        let mut blocks = [0; REFILL as usize];
        let mut k = 0;
        let base = self.base.addr() as u64 + HEADER as u64;
        // SAFETY: `run` is a fresh used block of at least `n * size` bytes.
        unsafe {
            t.split_used(run, &[size; REFILL as usize][..n as usize], |p| {
                blocks[k] = p.as_ptr().addr() as u64 - base;
                k += 1;
            })
        };
        let cached_blocks = &blocks[..n as usize - 1];
        for pair in cached_blocks.windows(2) {
            // SAFETY: fresh blocks of this run; a block's first payload word links the next.
            unsafe {
                self.base
                    .add(pair[0] as usize + 8)
                    .cast::<u64>()
                    .write(pair[1])
            };
        }
        let last = cached_blocks[cached_blocks.len() - 1];
        // SAFETY: as above; the last cached block ends the list.
        unsafe { self.base.add(last as usize + 8).cast::<u64>().write(0) };
        bin.head.store(cached_blocks[0], Relaxed);
        bin.count.store(n - 1, Relaxed);
        if i >= EXACT_BINS {
            bin.bytes.store((n - 1) * size, Relaxed);
        }
        slot.cached.store(cached + (n - 1) * size, Relaxed);
        Some(blocks[n as usize - 1])
    }

    /// `refill` of exact bin `i`: `run`, a fresh used block of at least `n * size` bytes,
    /// is split into blocks of `size`; the first is returned, the rest become the bin's
    /// run. A last block that carries slack (no exact fit was found) is freed instead.
    fn refill_run(&self, t: &mut Heap, slot: &Slot, i: usize, run: u64, n: u64, size: u64) -> u64 {
        // SAFETY: `run` is a fresh used block of at least `n * size` bytes, not handed out.
        let got = unsafe { t.block_size(run) };
        // SAFETY: as above.
        unsafe { t.split_used(run, &[size; REFILL as usize][..n as usize], |_| {}) };
        let mut end = run + n * size;
        if got != n * size {
            end -= size;
            // SAFETY: the split's last block, used and never handed out.
            unsafe { t.free_block(end) };
        }
        let first = run + size;
        if end > first {
            let r = &slot.runs[i];
            r.end.store(end, Relaxed);
            r.start.store(first, Relaxed);
            slot.cached
                .store(slot.cached.load(Relaxed) + (end - first), Relaxed);
        }
        run
    }

    /// Makes the slots of bytes of unknown origin (a cold open, a private copy) safe to
    /// use: every cached block, linked or in a run, must be a used, unmarked block of the
    /// chain (one walk of it, under the lock), and in one bin only. A header word alone
    /// could be a stale one inside a free block, which a run or bin forged over it would
    /// free again. A bin that fails is forgotten (its blocks leak rather than be freed
    /// wrongly), and each slot's byte total is recounted from what its bins hold.
    pub fn sanitize(&self, t: &Heap) {
        let mut plain = Vec::new();
        t.for_each_used(|b, marks| {
            if marks == 0 {
                plain.push((b.offset, b.size));
            }
        });
        let plain_size = |off: u64| {
            plain
                .binary_search_by_key(&off, |&(o, _)| o)
                .ok()
                .map(|k| plain[k].1)
        };
        let mut seen = std::collections::HashSet::new();
        for (_, slot) in self.slots() {
            let mut total = 0u64;
            for i in 0..BINS {
                let sizes = bin_sizes(i);
                let bin = &slot.bins[i];
                let (mut cur, mut bytes) = (bin.head.load(Relaxed), 0);
                let count = bin.count.load(Relaxed);
                let mut sound = count <= capacity(i);
                for _ in 0..count.min(capacity(i)) {
                    match plain_size(cur) {
                        Some(size) if fits(size, sizes) && seen.insert(cur) => bytes += size,
                        _ => {
                            sound = false;
                            break;
                        }
                    }
                    // SAFETY: `cur` is a used block of the chain (checked), so its first
                    // payload word lies in the mapping.
                    cur = unsafe { self.base.add(cur as usize + 8).cast::<u64>().read() };
                }
                sound &= cur == 0;
                if sound && i >= EXACT_BINS {
                    bin.bytes.store(bytes, Relaxed);
                }
                if i < EXACT_BINS {
                    if let Some((start, end)) = slot.runs[i].get() {
                        let row = row_of_blocks(t, start, end, sizes.0, |b| {
                            sound &= plain_size(b).is_some_and(|s| fits(s, sizes)) && seen.insert(b)
                        });
                        sound &= row.is_ok() && end > start;
                    }
                }
                if sound {
                    total += slot.held(i);
                } else {
                    forget_bin(slot, i);
                }
            }
            slot.cached.store(total, Relaxed);
        }
    }

    /// Empties every slot and frees them all: for a private copy of the segment, where no
    /// owner recorded in the slots can use them. Lock held.
    pub fn flush_all(&self, t: &mut Heap, epoch: u64) {
        for (off, slot) in self.slots() {
            self.flush(t, off, epoch);
            slot.owner.store(0, Relaxed);
        }
    }

    /// Empties and frees every slot `owner` holds for `mapping` (the mapping is going
    /// away). Lock held by `owner`.
    pub fn release(&self, t: &mut Heap, mapping: u32, epoch: u64, owner: &Owner) {
        let me = slot_owner(owner.claimed(), mapping);
        for (off, slot) in self.slots() {
            if slot.owner.load(Relaxed) == me {
                self.flush(t, off, epoch);
                slot.owner.store(0, Relaxed);
            }
        }
    }

    /// Checks slot `off`: every cached block is a used block of its bin's sizes, counts and
    /// the byte totals agree.
    pub fn check(&self, t: &Heap, off: u64) -> Result<(), String> {
        let slot = self.slot(off);
        let mut total = 0;
        for (i, bin) in slot.bins.iter().enumerate() {
            let sizes = bin_sizes(i);
            let what = || {
                format!(
                    "cache bin of {}..{}-byte blocks",
                    sizes.0,
                    sizes.0 + sizes.1
                )
            };
            let (mut cur, mut n, mut bytes) = (bin.head.load(Relaxed), 0, 0);
            while cur != 0 {
                if n >= bin.count.load(Relaxed) {
                    return Err(format!("{} is longer than its count", what()));
                }
                let Some(size) = t.plain_block_size(cur).filter(|&s| fits(s, sizes)) else {
                    return Err(format!("{} holds a bad block at {cur}", what()));
                };
                n += 1;
                bytes += size;
                // SAFETY: a cached block (checked) of this thread's slot.
                cur = unsafe { self.base.add(cur as usize + 8).cast::<u64>().read() };
            }
            if n != bin.count.load(Relaxed) {
                return Err(format!("{} is shorter than its count", what()));
            }
            if i < EXACT_BINS {
                let run = self
                    .run_blocks(t, &slot.runs[i], i)
                    .map_err(|at| format!("{}'s run holds a bad block at {at}", what()))?;
                bytes += run.len() as u64 * sizes.0;
            }
            if slot.held(i) != bytes {
                return Err(format!(
                    "{} says {} bytes, holds {bytes}",
                    what(),
                    slot.held(i)
                ));
            }
            total += bytes;
        }
        if total != slot.cached.load(Relaxed) {
            return Err(format!(
                "cache slot says {} bytes, its bins hold {total}",
                slot.cached.load(Relaxed)
            ));
        }
        Ok(())
    }
}
