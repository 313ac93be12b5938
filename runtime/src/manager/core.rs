//! The segment manager proper: allocation and inspection of one mapped segment, under its
//! robust lock. Every managed segment kind (shared memory, file, heap, buffer, …) is a
//! backing that keeps the bytes mapped plus one of these.

use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::header::{self, state, SegmentHeader};
use super::limits::Limits;
use crate::alloc::algorithm::Ops;
use crate::alloc::block::{
    block_size_for, mark_unlocked, size_in, used_header_unlocked, ENTRY, GRANULE, HEADER, MIN_BLOCK,
};
use crate::alloc::cache::{self, SlotTable};
use crate::alloc::command::{self, Allocation, Command, Request};
use crate::alloc::heap::Heap;
use crate::alloc::AlgorithmStats;
use crate::error::{Error, Result};
use crate::robust::{crash, lock_with_recovery, Owner, RobustGuard, RobustMutex};

/// A position-independent reference to a block: its offset from the segment start. Valid
/// in every process and every mapping of the segment (Boost's handle_t).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle(pub u64);

/// A view of a formatted, mapped segment. It does not own the mapping: the managed segment
/// that holds it keeps the bytes mapped for as long as the view exists.
#[derive(Clone, Copy, Debug)]
pub struct SegmentCore {
    base: NonNull<u8>,
    /// Identifies this mapping in this process, for the thread caches and the lock.
    mapping: u32,
    /// False for read-only mappings, which never take the lock (they cannot write it).
    writable: bool,
    /// Whether other mappings may write while this one reads (a read-only observer's, which
    /// lets writers in): then block headers are read atomically, as a writable mapping does.
    shared_reads: bool,
    /// In whose name this mapping takes the segment's locks.
    owner: NonNull<Owner>,
    /// How far this mapping trusts the header's size, and how it grows the segment.
    limits: NonNull<Limits>,
    /// The segment's memory algorithm (checked against the header when attaching).
    ops: &'static Ops,
    /// Offset of the thread-cache table (0: none), read once: only `format` writes it, so
    /// the cache paths need not load it (through a volatile read and a fence) per call.
    cache_table: u64,
    /// Offset of the first block, read once: fixed when the segment is made, and read
    /// without the lock by the cache's pointer check.
    first_block: u64,
}

// SAFETY: the view is an address; all shared state behind it is accessed under the
// segment's process-shared lock or through atomics, and the owner is `Sync`.
unsafe impl Send for SegmentCore {}
// SAFETY: as above.
unsafe impl Sync for SegmentCore {}

pub(crate) use thread_cache::CachePush;

/// A segment lock this thread holds: through which mapping, under which owner id.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Held {
    mapping: u32,
    owner: u32,
}

const NOT_HELD: Held = Held {
    mapping: 0,
    owner: 0,
};

thread_local! {
    /// The segment lock this thread holds (the innermost, when it holds several). The lock
    /// is not reentrant; taking it again from the same thread, through the same mapping or
    /// another mapping of the segment, is reported instead of hanging.
    static HELD: Cell<Held> = const { Cell::new(NOT_HELD) };
}

/// `InvalidAlignment` unless `align` is a power of two.
fn check_align(align: usize) -> Result<()> {
    if align.is_power_of_two() {
        Ok(())
    } else {
        Err(Error::InvalidAlignment { align })
    }
}

/// Allocates every block of `blocks` on its own, all or nothing; their offsets.
fn one_by_one(t: &mut Heap, blocks: &[u64], align: u64) -> Option<Vec<u64>> {
    let mut taken = Vec::with_capacity(blocks.len());
    for &b in blocks {
        match command::alloc(t, b, align) {
            Some(off) => taken.push(off),
            None => {
                for off in taken {
                    // SAFETY: allocated just above, never handed out.
                    unsafe { t.free_block(off) };
                }
                return None;
            }
        }
    }
    Some(taken)
}

/// Holds the segment lock; releases it on drop (also when a panic unwinds), or poisons it
/// when the allocator is beyond repair.
struct Locked<'a> {
    state: &'a AtomicU32,
    /// The chain generation (`words::CHAIN_GENERATION`), bumped as the lock is let go.
    chain: &'a AtomicU64,
    heap: Heap,
    /// What `HELD` said before (an outer lock of another segment).
    outer: Held,
    /// Declared last: the lock is released after `HELD` is restored.
    lock: RobustGuard<'a>,
}

impl<'a> AsMut<RobustGuard<'a>> for Locked<'a> {
    fn as_mut(&mut self) -> &mut RobustGuard<'a> {
        &mut self.lock
    }
}

impl Drop for Locked<'_> {
    #[inline]
    fn drop(&mut self) {
        // A simulated crash (tests) repairs nothing: a killed process would not.
        if std::thread::panicking() && !crate::robust::crash::crashing() {
            self.repair_after_panic();
        }
        // Still under the lock (released after this, with the `lock` field).
        let chain = self.chain.load(Ordering::Relaxed);
        self.chain.store(chain.wrapping_add(1), Ordering::Relaxed);
        let _ = HELD.try_with(|h| h.set(self.outer));
    }
}

impl Locked<'_> {
    /// A panic under the lock may have left the allocator half-updated: rebuild it before
    /// anyone else sees it, or mark the segment corrupted.
    #[cold]
    fn repair_after_panic(&mut self) {
        if self.heap.rebuild().is_err() {
            self.state.store(state::CORRUPTED, Ordering::Release);
            self.lock.poison_on_drop();
        }
    }
}

impl SegmentCore {
    /// # Safety
    /// `base` starts a segment that passed [`header::validate`] (or was just formatted),
    /// made with the memory algorithm of `ops`, and stays mapped while this view, or any
    /// copy of it, is used; so do `owner` and `limits`, whose reservation is mapped.
    pub(crate) unsafe fn new(
        base: NonNull<u8>,
        mapping: u32,
        writable: bool,
        owner: NonNull<Owner>,
        limits: NonNull<Limits>,
        ops: &'static Ops,
    ) -> Self {
        let h = header::header(base.as_ptr());
        SegmentCore {
            base,
            mapping,
            writable,
            shared_reads: writable,
            owner,
            limits,
            ops,
            // SAFETY: the header is mapped (contract); see `read_word`.
            cache_table: unsafe { header::read_word((&raw const (*h).cache_table).cast::<u64>()) },
            // SAFETY: as above; `start` is written once, before the segment is ready, and
            // never through a reference that covers it (see `Heap`).
            first_block: unsafe { header::read_word(&raw const (*h).heap.start) },
        }
    }

    /// The heap view of the segment: its block area and algorithm.
    ///
    /// # Safety
    /// Its writing methods are used only under the segment lock of a writable mapping.
    #[inline]
    unsafe fn heap_view(&self) -> Heap {
        // SAFETY: the segment is mapped `size` bytes long and made with `ops`'s algorithm
        // (constructor contract); writing is the caller's to restrict.
        unsafe { header::heap(self.base.as_ptr(), self.size() as u64, self.ops) }
    }

    /// The same view, reading as a mapping that others may write meanwhile (see
    /// `shared_reads`).
    pub(crate) fn with_shared_reads(self) -> Self {
        SegmentCore {
            shared_reads: true,
            ..self
        }
    }

    /// In whose name this mapping takes the segment's locks.
    #[inline]
    pub(crate) fn owner(&self) -> &Owner {
        // SAFETY: the owner outlives every copy of this view (`new`).
        unsafe { self.owner.as_ref() }
    }

    /// This mapping's bounds.
    #[inline]
    pub(crate) fn limits(&self) -> &Limits {
        // SAFETY: the limits outlive every copy of this view (`new`).
        unsafe { self.limits.as_ref() }
    }

    /// The id of this mapping in this process (one per opened segment).
    pub fn mapping(&self) -> u32 {
        self.mapping
    }

    #[inline]
    pub fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// Whether others may write while this mapping reads (see the field).
    #[inline]
    pub(crate) fn shared_reads(&self) -> bool {
        self.shared_reads
    }

    /// Whether this mapping may write the segment (allocate, free, take the lock).
    #[inline]
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// The header's fields are reached one by one, never through a `&SegmentHeader`: such a
    /// reference would also cover the allocator state, which the lock holder mutates.
    #[inline]
    fn field<T>(&self, f: impl FnOnce(*mut SegmentHeader) -> *mut T) -> &T {
        // SAFETY: constructor contract: a formatted header at `base`, mapped while `self`
        // is used; `f` only projects to a field of it.
        unsafe { &*f(header::header(self.base.as_ptr())) }
    }

    #[inline]
    fn mutex(&self) -> &RobustMutex {
        // SAFETY: only projects the header pointer to one of its fields.
        self.field(|h| unsafe { &raw mut (*h).lock })
    }

    fn size_word(&self) -> &AtomicU64 {
        // SAFETY: only projects the header pointer to one of its fields.
        self.field(|h| unsafe { &raw mut (*h).size })
    }

    fn max_size_word(&self) -> &AtomicU64 {
        // SAFETY: only projects the header pointer to one of its fields.
        self.field(|h| unsafe { &raw mut (*h).reserved[header::words::MAX_SIZE] })
    }

    /// The size the segment may grow to while mapped (every mapping's reservation).
    pub fn max_size(&self) -> usize {
        // SAFETY: the header is mapped (constructor contract).
        let max = unsafe { header::max_size(self.base.as_ptr()) };
        // Checked against the reservation when the mapping was made; a later write is
        // trusted no further than the reservation either.
        max.min(self.limits().reserved()) as usize
    }

    /// The segment as errors name it.
    pub(crate) fn what(&self) -> String {
        format!("segment at {:p}", self.base)
    }

    /// Checks the allocator's bounds against the segment size: the part of the untrusted
    /// bytes that every later operation relies on.
    pub fn check_bounds(&self) -> Result<()> {
        // SAFETY: the header is mapped; reading the allocator's range does not modify it.
        let t = unsafe { self.heap_view() };
        let size = self.size() as u64;
        let fits = t.start() >= header::HEADER_END as u64
            && t.start() % GRANULE as u64 == 0
            && t.end() >= t.start()
            && t.end() % GRANULE as u64 == 0
            && t.end()
                .checked_add(HEADER as u64)
                .is_some_and(|e| e <= size);
        if !fits {
            return Err(self.corrupted(format!(
                "allocator range {}..{} does not fit the {size}-byte segment",
                t.start(),
                t.end()
            )));
        }
        t.check_state().map_err(|reason| self.corrupted(reason))?;
        let table = self.cache().table();
        let table_fits = table == 0
            || (table % GRANULE as u64 == 0
                && table >= t.start() + HEADER as u64
                && table
                    .checked_add(SlotTable::SIZE as u64)
                    .is_some_and(|e| e <= t.end()));
        if !table_fits {
            return Err(self.corrupted(format!(
                "thread-cache table at {table} lies outside the blocks"
            )));
        }
        Ok(())
    }

    fn corrupted(&self, reason: String) -> Error {
        Error::Corrupted {
            what: self.what(),
            reason,
        }
    }

    /// Checks a segment made by someone else before trusting it: bounds, and for writable
    /// mappings every allocator invariant (under the lock, so a concurrent writer cannot
    /// make it look torn). A read-only mapping cannot lock; its read paths are bounds-checked.
    pub fn validate_untrusted(&self) -> Result<()> {
        self.check_bounds()?;
        if self.writable {
            let l = self.lock()?;
            l.heap.check().map_err(|reason| self.corrupted(reason))?;
            self.check_cache_table(&l.heap)?;
            self.cache().sanitize(&l.heap);
        }
        Ok(())
    }

    /// The thread-cache table, when there is one, must be an allocated block of its size
    /// (its bounds alone say nothing about what overlaps it).
    fn check_cache_table(&self, t: &Heap) -> Result<()> {
        if self.cache().exists() && self.cache_table_block(t) < SlotTable::SIZE as u64 {
            return Err(self
                .corrupted("thread-cache table is not an allocated block marked internal".into()));
        }
        Ok(())
    }

    /// Whether the segment lock word names a holder (it is checked for a private copy,
    /// where a holder cannot be alive; see `adopt_private_copy`).
    pub fn lock_held(&self) -> bool {
        self.mutex().owner().is_some()
    }

    /// Makes a private mapping consistent for this process alone: its pages were copied
    /// from a segment others may have been changing (copy-on-write), or its lock word names
    /// a holder that cannot be here (an image, a buffer), and its lock word and cache slots
    /// may belong to them. Nobody else can see this copy, so: clear the lock,
    /// rebuild the allocator when it is torn, and take back every cached block.
    pub fn adopt_private_copy(&self) -> Result<()> {
        self.check_bounds()?;
        self.mutex().force_unlock();
        let mut l = self.lock()?;
        if l.heap.check().is_err() {
            l.heap.rebuild().map_err(|reason| self.corrupted(reason))?;
            l.heap.check().map_err(|reason| self.corrupted(reason))?;
        }
        self.check_cache_table(&l.heap)?;
        self.cache().sanitize(&l.heap);
        self.cache().flush_all(&mut l.heap, self.cache_epoch());
        Ok(())
    }

    /// Takes the segment lock; after a dead owner, repairs the allocator first.
    #[inline(always)]
    fn lock(&self) -> Result<Locked<'_>> {
        let held = HELD.try_with(Cell::get).unwrap_or(NOT_HELD);
        if held.mapping == self.mapping || (held.mapping != 0 && self.held_elsewhere(held)) {
            return Err(self.reentered());
        }
        self.check_reach()?;
        let locked = lock_with_recovery(
            self.mutex(),
            self.owner(),
            |lock| Locked {
                // SAFETY: only projects the header pointer to one of its fields.
                state: self.field(|h| unsafe { &raw mut (*h).state }),
                // SAFETY: as above.
                chain: self
                    .field(|h| unsafe { &raw mut (*h).reserved[header::words::CHAIN_GENERATION] }),
                // SAFETY: we hold the lock, so the allocator state is ours to use.
                heap: unsafe { self.heap_view() },
                outer: HELD
                    .try_with(|h| {
                        h.replace(Held {
                            mapping: self.mapping,
                            owner: self.owner().claimed(),
                        })
                    })
                    .unwrap_or(NOT_HELD),
                lock,
            },
            |locked| self.recover(locked),
            || self.poisoned(),
        )?;
        // Again under the lock, where only holders change the size: it may have grown.
        self.check_reach()?;
        let end = locked.heap.end().saturating_add(HEADER as u64);
        if end > self.size() as u64 {
            return Err(self.corrupted(format!(
                "its allocator reaches {end} bytes, past its recorded size {}",
                self.size()
            )));
        }
        Ok(locked)
    }

    /// Whether this mapping reaches every byte the header says the segment has: a size
    /// word past this mapping's reservation (a maximum-size word lowered after others
    /// mapped more) or past what the device holds is another writer's forgery, and the
    /// allocator, whose free lists span the whole segment, could hand out bytes this
    /// mapping does not map. Such a mapping keeps its hands off the allocator.
    #[inline]
    pub(crate) fn check_reach(&self) -> Result<()> {
        let recorded = self.recorded_size();
        if recorded as usize == self.size() {
            return Ok(());
        }
        Err(self.unreachable(recorded))
    }

    #[cold]
    fn unreachable(&self, recorded: u64) -> Error {
        self.corrupted(format!(
            "its size word says {recorded} bytes, but this mapping can use only {} (it \
             reserved {}, and the device backs what it verified): its maximum or size word \
             was changed after it was made",
            self.size(),
            self.limits().reserved()
        ))
    }

    #[cold]
    fn poisoned(&self) -> Error {
        self.corrupted("a recovery found the allocator beyond repair".into())
    }

    /// Whether this thread holds this mapping's segment lock (inside `with_lock`).
    pub(crate) fn holds_lock(&self) -> bool {
        HELD.try_with(Cell::get)
            .is_ok_and(|h| h.mapping == self.mapping)
    }

    /// Whether `held`, a lock this thread holds through another mapping, is this segment's
    /// lock: the lock word names the owner id it was taken under, and that id is one of
    /// this process's on this segment (a numeric match on another segment is not).
    #[cold]
    fn held_elsewhere(&self, held: Held) -> bool {
        self.mutex().owner() == Some(held.owner) && self.owner().is_ours(held.owner)
    }

    #[cold]
    fn reentered(&self) -> Error {
        Error::LockReentered { what: self.what() }
    }

    /// Repairs the allocator after a process died holding the lock, or marks the segment
    /// corrupted when the damage is beyond repair (the lock is then poisoned).
    #[cold]
    fn recover(&self, locked: &mut Locked<'_>) -> Result<()> {
        match locked.heap.rebuild() {
            Ok(()) => {
                self.cache()
                    .reclaim_dead(&mut locked.heap, self.cache_epoch(), self.owner());
                Ok(())
            }
            Err(reason) => {
                locked.state.store(state::CORRUPTED, Ordering::Release);
                Err(self.corrupted(format!("after a process died holding the lock: {reason}")))
            }
        }
    }

    /// Runs `f` on the allocator for reading: under the lock for writable mappings (the
    /// lock holder's updates would race with our reads otherwise), without it for read-only
    /// ones, which cannot write the lock word; there the result is a snapshot. When the
    /// lock cannot be taken (this thread holds it, or the segment is marked corrupted) the
    /// reads go ahead unlocked: every read is bounds-checked.
    fn inspect<R>(&self, f: impl FnOnce(&Heap) -> R) -> R {
        if self.writable {
            if let Ok(l) = self.lock() {
                return f(&l.heap);
            }
        }
        // SAFETY: the header is mapped; `f` only reads.
        f(&unsafe { self.heap_view() })
    }

    // ----- allocation ------------------------------------------------------------------

    /// Allocates `size` bytes aligned to [`MIN_ALIGN`](crate::alloc::MIN_ALIGN). Small
    /// blocks come from this thread's cache when it has one of the size, without the lock.
    #[inline]
    pub fn allocate(&self, size: usize) -> Result<NonNull<u8>> {
        match self.allocate_cached(size) {
            Some(p) => Ok(p),
            None => self.allocate_locked(size),
        }
    }

    /// The lockless half of [`allocate`](Self::allocate): a block from this thread's cache,
    /// or None (take [`allocate_locked`](Self::allocate_locked)). Kept apart so that callers
    /// inline only this, with no frame and no `Result` in memory.
    ///
    /// It touches the segment only through a slot this thread recorded in this process:
    /// `recorded_slot` compares the record's pid with the current one, which the fork
    /// handler refreshes in a child (the same handler that counts the fork generation that
    /// `ManagedSegment::mapped` compares). So in a forked child, which may not have the
    /// mapping at all, this returns None without reading the segment.
    #[inline(always)]
    pub(crate) fn allocate_cached(&self, size: usize) -> Option<NonNull<u8>> {
        let block = block_size_for(size)?;
        let off = self.cache_pop(cache::recorded_slot(self.mapping), block)?;
        Some(self.payload(off))
    }

    /// The locked half of [`allocate`](Self::allocate), after the cache had no block.
    #[cold]
    #[inline(never)]
    pub(crate) fn allocate_locked(&self, size: usize) -> Result<NonNull<u8>> {
        let block = block_size_for(size).ok_or_else(|| self.oom(size, GRANULE))?;
        let slot = cache::recorded_slot(self.mapping);
        let mut l = self.lock()?;
        match slot {
            // This thread had forgotten its slot (or never had one): having found it again,
            // use what it holds.
            None => {
                if let Some(off) = self.cache_pop(self.claim_slot(&mut l.heap), block) {
                    return Ok(self.payload(off));
                }
            }
            Some(0) => {}
            Some(slot) => {
                self.refresh_slot(&mut l.heap, slot);
                // The bin was empty: fill it with a run of blocks in this one locked call.
                if let Some(off) = self.cache().refill(&mut l.heap, slot, block) {
                    return Ok(l.heap.payload(off));
                }
            }
        }
        match l.heap.alloc_block(block) {
            Some(off) => Ok(l.heap.payload(off)),
            None => self.retry_when_full(l, size, GRANULE, |t| t.alloc_block(block)),
        }
    }

    /// The segment looked full: take back what the thread caches hold (ours, and those of
    /// dead processes and exited threads), then try once more.
    #[cold]
    fn retry_when_full(
        &self,
        mut l: Locked<'_>,
        size: usize,
        align: usize,
        mut attempt: impl FnMut(&mut Heap) -> Option<u64>,
    ) -> Result<NonNull<u8>> {
        self.reclaim_caches(&mut l.heap);
        if let Some(off) = attempt(&mut l.heap) {
            return Ok(l.heap.payload(off));
        }
        // Room for the block, its alignment and a free block's overhead in front of it.
        let need = (size as u64).saturating_add(align as u64 + 2 * GRANULE as u64);
        while self.grow_locked(&mut l, need)? {
            if let Some(off) = attempt(&mut l.heap) {
                return Ok(l.heap.payload(off));
            }
        }
        drop(l);
        Err(self.oom(size, align))
    }

    /// Grows the segment so that `need` more bytes fit, if this mapping grows it (a shared
    /// writable device mapping whose growth policy is on) and its reservation has room.
    /// Lock held. Ok(false) when it does not grow.
    ///
    /// Crash safety: the device grows first, then the size word, then the allocator's
    /// end; a holder killed between any two leaves a device larger than the size (which
    /// every mapping accepts) or a chain that ends before the size (which `check` and the
    /// next growth accept), never a size past the device.
    #[cold]
    fn grow_locked(&self, l: &mut Locked<'_>, need: u64) -> Result<bool> {
        // Exact under the lock: only lock holders write the size word.
        let size = self.size() as u64;
        let usable = size / GRANULE as u64 * GRANULE as u64;
        if l.heap.end() + (HEADER as u64) > usable {
            // Checked when the lock was taken; only a forged word gets here.
            return Err(self.unreachable(size));
        }
        if l.heap.end() + (HEADER + MIN_BLOCK) as u64 <= usable {
            // A growth cut short (its holder died after recording the size): finish it.
            // SAFETY: the size was recorded after the device backed it, and is trusted.
            unsafe { l.heap.extend(usable) };
            return Ok(true);
        }
        let Some(to) = self.limits().next_size(size, need) else {
            return Ok(false);
        };
        match self.limits().grow_device(size, to) {
            None => return Ok(false),
            Some(grown) => grown?,
        }
        self.size_word().store(to, Ordering::Release);
        crash::point("grow: the size recorded");
        // SAFETY: the device now backs `to` bytes and this mapping reserved them.
        unsafe { l.heap.extend(to / GRANULE as u64 * GRANULE as u64) };
        Ok(true)
    }

    /// Allocates `size` bytes whose address is a multiple of `align` (a power of two). Any
    /// alignment that fits in the segment works, up to the segment's own size.
    pub fn allocate_aligned(&self, size: usize, align: usize) -> Result<NonNull<u8>> {
        check_align(align)?;
        if align <= GRANULE {
            return self.allocate(size);
        }
        let block = block_size_for(size).ok_or_else(|| self.oom(size, align))?;
        let mut l = self.lock()?;
        match l.heap.alloc_aligned(block, align as u64) {
            Some(off) => Ok(l.heap.payload(off)),
            None => self.retry_when_full(l, size, align, |t| t.alloc_aligned(block, align as u64)),
        }
    }

    fn oom(&self, requested: usize, align: usize) -> Error {
        Error::OutOfMemory {
            requested,
            align,
            free: self.free_memory(),
        }
    }

    /// Offset of the block whose payload is `ptr`, if `ptr` is a live allocation here.
    #[inline]
    fn block_of(&self, t: &Heap, ptr: NonNull<u8>) -> Option<u64> {
        let off = (ptr.as_ptr().addr()).checked_sub(self.base.as_ptr().addr())?;
        t.used_block_at(off as u64)
    }

    fn not_a_block(&self, ptr: NonNull<u8>) -> Error {
        Error::NotAnAllocation {
            addr: ptr.as_ptr().addr(),
            what: self.what(),
        }
    }

    /// Frees a block from [`allocate`](Self::allocate) and friends. Small blocks go to this
    /// thread's cache without the lock. Pointers outside the segment and blocks already
    /// free are reported, not freed (a block freed twice into the cache is caught only when
    /// it is the last one cached).
    ///
    /// # Safety
    /// `ptr` came from an allocation of this segment and is not used afterwards.
    #[inline]
    pub unsafe fn deallocate(&self, ptr: NonNull<u8>) -> Result<()> {
        // SAFETY: forwarded contract.
        match unsafe { self.cache_push(ptr) } {
            CachePush::Done => Ok(()),
            // SAFETY: forwarded contract; `not_cached` is what `cache_push` said of `ptr`.
            not_cached => unsafe { self.free_uncached(ptr, not_cached) },
        }
    }

    /// The locked half of [`deallocate`](Self::deallocate): does what `cache_push` left to
    /// do with `ptr` (`not_cached`, anything but `Done`).
    ///
    /// # Safety
    /// As for `deallocate`; `not_cached` is what `cache_push(ptr)` returned.
    #[cold]
    #[inline(never)]
    pub(crate) unsafe fn free_uncached(
        &self,
        ptr: NonNull<u8>,
        not_cached: CachePush,
    ) -> Result<()> {
        match not_cached {
            CachePush::Done => Ok(()),
            CachePush::DoubleFree => Err(self.not_a_block(ptr)),
            CachePush::BinFull { slot, size } => {
                let mut l = self.lock()?;
                self.cache().empty_bin(&mut l.heap, slot, size);
                drop(l);
                // SAFETY: forwarded contract; the bin has room now.
                match unsafe { self.cache_push(ptr) } {
                    CachePush::Done => Ok(()),
                    _ => self.free_locked(ptr),
                }
            }
            CachePush::Locked => self.free_locked(ptr),
            CachePush::Uncached { off } => {
                let mut l = self.lock()?;
                // SAFETY: `off` was checked to be a used block (without the lock; only its
                // previous-free bit can change meanwhile) and the caller gives it up.
                unsafe { l.heap.free_block(off) };
                Ok(())
            }
        }
    }

    /// Frees the block at `ptr` under the lock, after checking it is a live block.
    fn free_locked(&self, ptr: NonNull<u8>) -> Result<()> {
        let mut l = self.lock()?;
        let Some(off) = self.block_of(&l.heap, ptr) else {
            drop(l);
            return Err(self.not_a_block(ptr));
        };
        // SAFETY: `off` is a used block (checked) and the caller gives it up.
        unsafe { l.heap.free_block(off) };
        Ok(())
    }

    /// Allocates `count` blocks of `elem_size` bytes, each aligned to `align` (a power of
    /// two), in one locked operation, contiguous when one free block can hold them all.
    /// All or nothing.
    pub fn allocate_many_aligned(
        &self,
        elem_size: usize,
        count: usize,
        align: usize,
    ) -> Result<Vec<NonNull<u8>>> {
        check_align(align)?;
        let block = block_size_for(elem_size).ok_or_else(|| self.oom(elem_size, align))?;
        if count as u64 > self.limits().reserved() / block {
            // More blocks than could ever fit: say so before building the request.
            return Err(self.oom(elem_size.saturating_mul(count), align));
        }
        self.allocate_blocks(&vec![block; count], elem_size.saturating_mul(count), align)
    }

    /// Allocates one block per entry of `sizes`, each aligned to `align` (a power of two),
    /// in one locked operation. All or nothing.
    pub fn allocate_many_sizes_aligned(
        &self,
        sizes: &[usize],
        align: usize,
    ) -> Result<Vec<NonNull<u8>>> {
        check_align(align)?;
        let total = sizes.iter().fold(0usize, |a, &s| a.saturating_add(s));
        let blocks = sizes
            .iter()
            .map(|&s| block_size_for(s).ok_or_else(|| self.oom(s, align)))
            .collect::<Result<Vec<_>>>()?;
        self.allocate_blocks(&blocks, total, align)
    }

    fn allocate_blocks(
        &self,
        blocks: &[u64],
        requested: usize,
        align: usize,
    ) -> Result<Vec<NonNull<u8>>> {
        let mut out = Vec::with_capacity(blocks.len());
        if blocks.is_empty() {
            return Ok(out);
        }
        let align = align.max(GRANULE) as u64;
        // Laid out back to back, every payload stays aligned when each block is a multiple
        // of the alignment.
        let padded: Vec<u64> = blocks.iter().map(|&b| b.next_multiple_of(align)).collect();
        let total = padded.iter().try_fold(0u64, |a, &b| a.checked_add(b));
        let mut l = self.lock()?;
        if let Some(off) = total.and_then(|t| command::alloc(&mut l.heap, t, align)) {
            // SAFETY: `off` is a fresh used block of at least `total` bytes.
            unsafe { l.heap.split_used(off, &padded, |o| out.push(o)) };
            return Ok(out);
        }
        let taken = match one_by_one(&mut l.heap, blocks, align) {
            Some(taken) => taken,
            None => {
                self.reclaim_caches(&mut l.heap);
                let mut taken = one_by_one(&mut l.heap, blocks, align);
                // Grown for all of them in one run, so the retry is one block again.
                let need = total.map_or(u64::MAX, |t| t.saturating_add(align + 2 * GRANULE as u64));
                while taken.is_none() && self.grow_locked(&mut l, need)? {
                    if let Some(off) = total.and_then(|t| command::alloc(&mut l.heap, t, align)) {
                        // SAFETY: `off` is a fresh used block of at least `total` bytes.
                        unsafe { l.heap.split_used(off, &padded, |o| out.push(o)) };
                        return Ok(out);
                    }
                    taken = one_by_one(&mut l.heap, blocks, align);
                }
                match taken {
                    Some(taken) => taken,
                    None => {
                        drop(l);
                        return Err(self.oom(requested, align as usize));
                    }
                }
            }
        };
        out.extend(taken.into_iter().map(|off| l.heap.payload(off)));
        Ok(out)
    }

    /// Frees every block of `ptrs` in one locked operation. Stops at the first pointer that
    /// is not a live block here and reports it (the ones before it are freed).
    ///
    /// # Safety
    /// Every pointer came from an allocation of this segment and is not used afterwards.
    pub unsafe fn deallocate_many(
        &self,
        ptrs: impl IntoIterator<Item = NonNull<u8>>,
    ) -> Result<()> {
        let mut l = self.lock()?;
        for p in ptrs {
            let Some(off) = self.block_of(&l.heap, p) else {
                drop(l);
                return Err(self.not_a_block(p));
            };
            // SAFETY: a used block the caller gives up.
            unsafe { l.heap.free_block(off) };
        }
        Ok(())
    }

    /// Boost's `allocation_command` in bytes: see [`Command`] for what each flag does.
    /// `object_size` is the unit a backward expansion moves the start by.
    ///
    /// # Safety
    /// `reuse`, when given, is a live allocation of this segment that the caller owns: it
    /// is resized in place, so nobody else may use it (nor may it be a freed block).
    pub unsafe fn allocation_command(
        &self,
        cmd: Command,
        limit: usize,
        preferred: usize,
        reuse: Option<NonNull<u8>>,
        object_size: usize,
    ) -> Result<Allocation> {
        let mut l = self.lock()?;
        let reuse = match reuse {
            Some(p) => Some(
                self.block_of(&l.heap, p)
                    .ok_or_else(|| self.not_a_block(p))?,
            ),
            None => None,
        };
        let req = Request {
            cmd,
            limit,
            preferred,
            reuse,
            object_size,
        };
        req.validate()?;
        let mut result = command::run(&mut l.heap, &req);
        if result.is_err() && cmd.contains(Command::ALLOCATE_NEW) {
            // A new block may come from growing the segment, as for `allocate`.
            let need = (preferred.max(limit) as u64)
                .saturating_add(cmd.alignment() as u64 + 2 * GRANULE as u64);
            while result.is_err() && self.grow_locked(&mut l, need)? {
                result = command::run(&mut l.heap, &req);
            }
        }
        result
    }

    /// The allocate-new case of [`allocation_command`](Self::allocation_command), which
    /// needs no block to reuse and so is safe: a new block of `preferred` bytes, else of
    /// `limit`, its start a multiple of `align` (a power of two).
    pub fn allocate_new(&self, limit: usize, preferred: usize, align: usize) -> Result<Allocation> {
        let cmd = Command::ALLOCATE_NEW.aligned(align);
        // SAFETY: no block to reuse, which is all the contract is about.
        unsafe { self.allocation_command(cmd, limit, preferred, None, 1) }
    }

    /// Usable bytes of the live block at `ptr` (at least what was asked for); None for any
    /// other pointer, including one into the middle of a block: the block is looked up by
    /// walking the chain of headers (O(blocks)), so the bytes before `ptr` are never read
    /// as a header (they may be padding, never initialised).
    pub fn usable_size(&self, ptr: NonNull<u8>) -> Option<usize> {
        let off = ptr.as_ptr().addr().checked_sub(self.base.as_ptr().addr())?;
        self.inspect(|t| t.used_block_walked(off as u64))
            .map(|size| size as usize - HEADER)
    }

    // ----- inspection ------------------------------------------------------------------

    /// Size of the segment in bytes, as far as this mapping trusts it (see `Limits`): the
    /// header's size once the device is known to back it, within what this mapping
    /// reserved.
    #[inline]
    pub fn size(&self) -> usize {
        // Below the reservation, which is mapped, so it fits a `usize`.
        self.limits().trusted(self.recorded_size()) as usize
    }

    /// The header's size word, untrusted. Where others may write it (`shared_reads`) it is
    /// read atomically, as growth writes it; otherwise no one writes it, and it is read
    /// without a reference (see `read_word`), which read-only memory lent by Rust needs.
    #[inline]
    fn recorded_size(&self) -> u64 {
        if self.shared_reads {
            return self.size_word().load(Ordering::Acquire);
        }
        let h = header::header(self.base.as_ptr());
        // SAFETY: the header is mapped (constructor contract).
        unsafe { header::read_word((&raw const (*h).size).cast::<u64>()) }
    }

    /// Bytes in free blocks (thread caches included), block headers included.
    pub fn free_memory(&self) -> usize {
        self.inspect(|t| t.free_bytes().saturating_add(self.cache().cached_bytes()) as usize)
    }

    /// The memory algorithm's own counters (thread caches are in use as far as it knows).
    pub fn algorithm_stats(&self) -> AlgorithmStats {
        self.inspect(Heap::stats)
    }

    /// Whether every block allocated so far has been freed, but for `kept` bytes of blocks
    /// the object layer keeps for its bookkeeping.
    pub fn all_memory_deallocated_but(&self, kept: u64) -> bool {
        self.inspect(|t| {
            let held = t
                .free_bytes()
                .saturating_add(self.cache().cached_bytes())
                .saturating_add(self.cache_table_block(t))
                .saturating_add(kept);
            held >= t.end() - t.start()
        })
    }

    /// Runs every allocator invariant check; the error says what is wrong.
    pub fn check(&self) -> Result<()> {
        self.inspect(|t| {
            t.check()
                .and_then(|()| self.check_own_cache(t))
                .map_err(|reason| self.corrupted(reason))
        })
    }

    /// Usable bytes of the used block whose payload starts at `payload_off`, if its header
    /// marks it as an object entry (see [`mark_entry`](Self::mark_entry)), from one relaxed
    /// load of that header, without the lock (the lock holder may flip the header's
    /// `PREV_FREE` bit meanwhile; the size of a used block does not change while it is in
    /// use); None unless that word reads as a marked used block inside the segment. No other
    /// block's bytes are read as an entry header, and lookups bound an object's elements by
    /// this length, so no forged count or type record stretches an object over its
    /// neighbours.
    #[inline]
    pub(crate) fn entry_block_len(&self, payload_off: u64) -> Option<usize> {
        self.used_header(payload_off)
            .filter(|h| h & ENTRY != 0)
            .map(|h| size_in(h) as usize - HEADER)
    }

    #[inline]
    fn used_header(&self, payload_off: u64) -> Option<u64> {
        // SAFETY: the range checks of `used_header_unlocked` keep the header read inside
        // the mapping (the limit is its size, the floor the end of the segment header), and
        // it reads atomically exactly when others may write meanwhile.
        unsafe {
            used_header_unlocked(
                self.base.as_ptr(),
                payload_off,
                header::HEADER_END as u64,
                self.size() as u64,
                self.shared_reads,
            )
        }
    }

    /// Sets or clears (`on`) `mark` on the block whose payload is at `payload_off`,
    /// without the segment lock: `ENTRY` for a block holding an object entry,
    /// `INTERNAL` for one of the object layer's own tables and records. The object layer
    /// marks a block right after allocating it, before it writes or links anything there,
    /// and clears the mark after unlinking it, before freeing it (freeing clears it too).
    ///
    /// # Safety
    /// `payload_off` is the payload of a live allocation of this writable mapping that the
    /// caller owns (as the object layer's own fresh or unlinked blocks are).
    #[inline]
    pub(crate) unsafe fn mark(&self, payload_off: u64, mark: u64, on: bool) {
        debug_assert!(self.writable && self.used_header(payload_off).is_some());
        // SAFETY: forwarded contract.
        unsafe { mark_unlocked(self.base.as_ptr(), payload_off, mark, on) };
    }

    /// Runs `f` under the segment lock on the allocator and the chain generation (see
    /// `header::words::CHAIN_GENERATION`): no block starts or ends meanwhile.
    pub(crate) fn with_chain<R>(&self, f: impl FnOnce(&Heap, u64) -> R) -> Result<R> {
        let l = self.lock()?;
        Ok(f(&l.heap, l.chain.load(Ordering::Relaxed)))
    }

    /// The used blocks of the allocator's chain in address order, as (payload offset,
    /// usable bytes, marks: `ENTRY`, `INTERNAL`): what the object layer checks its
    /// entries and tables against, and containers the blocks they own. Walks every block.
    pub(crate) fn used_blocks(&self) -> Vec<(u64, usize, u64)> {
        self.inspect(|t| {
            let mut out = Vec::new();
            t.for_each_used(|b, marks| {
                out.push((b.offset + HEADER as u64, b.size as usize - HEADER, marks));
            });
            out
        })
    }

    /// Every block of the allocator's chain in address order, as (header offset, size with
    /// the header, free, marks `ENTRY` / `INTERNAL`), read as the other inspections are
    /// (under the lock for writable mappings): for the inspector's map.
    pub(crate) fn chain_blocks(&self) -> Vec<(u64, u64, bool, u64)> {
        self.inspect(|t| {
            let mut out = Vec::new();
            t.for_each_in_chain(|b, free, marks| out.push((b.offset, b.size, free, marks)));
            out
        })
    }

    /// The blocks held in thread caches (see `Cache::cached_blocks`).
    pub(crate) fn cached_blocks(&self) -> Vec<u64> {
        self.inspect(|t| self.cache().cached_blocks(t))
    }

    /// The thread-cache slots in use (see `Cache::used_slots`).
    pub(crate) fn cache_slots(&self) -> Vec<(u32, u32, u64, u64)> {
        self.cache().used_slots()
    }

    /// Zeroes the free memory, so that new allocations read as zero.
    pub fn zero_free_memory(&self) -> Result<()> {
        let mut l = self.lock()?;
        // Cached blocks hold old data: every cache empties itself before its next use.
        self.empty_caches(&mut l.heap);
        l.heap.zero_free();
        Ok(())
    }

    /// The position-independent handle of `ptr`, if it points into this segment.
    pub fn handle_from_address(&self, ptr: *const u8) -> Option<Handle> {
        let off = ptr.addr().checked_sub(self.base.as_ptr().addr())?;
        (off < self.size()).then_some(Handle(off as u64))
    }

    /// The address of `handle` in this mapping, if it lies inside the segment.
    pub fn address_from_handle(&self, handle: Handle) -> Option<NonNull<u8>> {
        (handle.0 < self.size() as u64).then(|| {
            // SAFETY: the offset is inside the mapping, whose base is non-null.
            unsafe { self.base.add(handle.0 as usize) }
        })
    }

    /// Runs `f` with the segment lock held (raw allocation from other threads or processes
    /// waits meanwhile). Used by offline resizing and by the kill tests.
    pub fn with_lock<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        let _l = self.lock()?;
        Ok(f())
    }

    /// Extends the segment's allocator to a new, larger size (the mapping already covers it).
    ///
    /// # Safety
    /// The mapping covers `new_size` bytes and no other process uses the segment.
    pub unsafe fn grow_to(&self, new_size: usize) -> Result<()> {
        let mut l = self.lock()?;
        // The largest size first, then the size, then the allocator's end (as in
        // `grow_locked`).
        self.max_size_word()
            .fetch_max(new_size as u64, Ordering::Relaxed);
        self.size_word().store(new_size as u64, Ordering::Release);
        // SAFETY: the mapping covers the new end (caller).
        unsafe { l.heap.extend((new_size / GRANULE * GRANULE) as u64) };
        Ok(())
    }

    /// Cuts a free tail off the allocator and returns the smallest size the segment can
    /// shrink to. The caller then truncates the device.
    pub fn trim_to_fit(&self) -> Result<usize> {
        let mut l = self.lock()?;
        self.cache()
            .reclaim_dead(&mut l.heap, self.cache_epoch(), self.owner());
        let end = l.heap.trim_end(header::MIN_SEGMENT_SIZE as u64) as usize;
        self.size_word().store(end as u64, Ordering::Relaxed);
        Ok(end)
    }
}

mod thread_cache;

#[cfg(test)]
mod tests;
