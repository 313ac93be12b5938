//! The segment manager's use of the per-thread caches (`alloc::cache`): the lockless fast
//! paths of `allocate` / `deallocate`, and the bookkeeping done under the lock.

use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use super::SegmentCore;
use crate::alloc::block::{size_in, used_header_unlocked, ENTRY, HEADER, INTERNAL};
use crate::alloc::cache::{self, Cache, PushRefused};
use crate::alloc::heap::Heap;
use crate::error::Result;

/// What the lockless `deallocate` path did.
pub(crate) enum CachePush {
    Done,
    DoubleFree,
    /// Not cached (not cacheable, stale slot, no budget): free it under the lock.
    Locked,
    /// The bin for blocks of `size` in `slot` is full.
    BinFull {
        slot: u64,
        size: u64,
    },
    /// A live block (checked) too large to cache: free block `off` under the lock.
    Uncached {
        off: u64,
    },
}

impl SegmentCore {
    /// The cache view (no slots when the segment has no cache table).
    #[inline]
    pub(super) fn cache(&self) -> Cache {
        // SAFETY: the table offset was written by `format` and points into the segment.
        unsafe { Cache::new(self.base.as_ptr(), self.cache_table) }
    }

    /// The segment's cache epoch. Only writable mappings have slots, so an atomic load
    /// (no fence) through a reference is fine here (see `field`).
    #[inline]
    pub(super) fn cache_epoch(&self) -> u64 {
        debug_assert!(self.writable);
        // SAFETY: only projects the header pointer to one of its fields.
        self.field(|h| unsafe { &raw mut (*h).cache_epoch })
            .load(Ordering::Relaxed)
    }

    #[inline]
    pub(super) fn payload(&self, off: u64) -> NonNull<u8> {
        // SAFETY: block offsets lie inside the mapping, whose base is non-null.
        unsafe { self.base.add(off as usize + HEADER) }
    }

    /// A block of at least `block` bytes from this thread's cache (`slot` as recorded).
    #[inline(always)]
    pub(super) fn cache_pop(&self, slot: Option<u64>, block: u64) -> Option<u64> {
        let slot = slot.filter(|&s| s != 0)?;
        self.cache()
            .pop(slot, block, self.cache_epoch(), self.size() as u64)
    }

    /// Tries to put the block at `ptr` in this thread's cache.
    ///
    /// Like `allocate_cached`, it reads the segment only through a slot this thread
    /// recorded in this process: in a forked child it returns `Locked` untouched.
    ///
    /// # Safety
    /// As for `deallocate`.
    #[inline(always)]
    pub(crate) unsafe fn cache_push(&self, ptr: NonNull<u8>) -> CachePush {
        let unlocked = CachePush::Locked;
        let Some(slot) = cache::recorded_slot(self.mapping).filter(|&s| s != 0) else {
            return unlocked;
        };
        let Some(payload_off) = ptr.as_ptr().addr().checked_sub(self.base.as_ptr().addr()) else {
            return unlocked;
        };
        // SAFETY: writable mapping (a slot exists only there); the limit is its size.
        let header = unsafe {
            used_header_unlocked(
                self.base.as_ptr(),
                payload_off as u64,
                self.first_block,
                self.size() as u64,
                true,
            )
        };
        // A block still marked (an object entry, an internal table) is freed under the
        // lock, which clears the mark: a cached block never carries one.
        let Some(size) = header.filter(|h| h & (ENTRY | INTERNAL) == 0).map(size_in) else {
            return unlocked;
        };
        let off = payload_off as u64 - HEADER as u64;
        if size >= cache::CLASS_END {
            return CachePush::Uncached { off };
        }
        match self.cache().push(slot, off, size, self.cache_epoch()) {
            Ok(()) => CachePush::Done,
            Err(PushRefused::DoubleFree) => CachePush::DoubleFree,
            Err(PushRefused::Refused) => unlocked,
            Err(PushRefused::Full) => CachePush::BinFull { slot, size },
        }
    }

    /// Under the lock: empties this thread's slot if the epoch moved on since.
    #[inline]
    pub(super) fn refresh_slot(&self, t: &mut Heap, slot: u64) {
        let cache = self.cache();
        let epoch = self.cache_epoch();
        if cache.is_stale(slot, epoch) {
            cache.flush(t, slot, epoch);
        }
        // A segment that grew since the slot was claimed lets it cache more.
        cache.raise_budget(slot, cache::budget(self.size()));
    }

    /// Under the lock: gives this thread a slot the first time it allocates here (or finds
    /// its slot again after forgetting it) and records it. None when there is no cache or
    /// no free slot.
    #[cold]
    pub(super) fn claim_slot(&self, t: &mut Heap) -> Option<u64> {
        let cache = self.cache();
        let slot = if cache.exists() {
            cache.claim(
                t,
                self.mapping,
                cache::budget(self.size()),
                self.cache_epoch(),
                self.owner(),
            )
        } else {
            0
        };
        cache::record_slot(self.mapping, slot);
        if slot != 0 {
            cache::note_claimed(self.mapping);
            self.refresh_slot(t, slot);
        }
        (slot != 0).then_some(slot)
    }

    /// Under the lock, when the segment looks full: besides emptying this thread's cache
    /// (see `empty_caches`), takes back the caches of dead processes and exited threads.
    pub(super) fn reclaim_caches(&self, t: &mut Heap) {
        self.empty_caches(t);
        let cache = self.cache();
        cache.reclaim_dead(t, self.cache_epoch(), self.owner());
        cache.reclaim_exited_threads(t, self.cache_epoch(), self.owner());
    }

    /// Under the lock: empties this thread's cache and tells every other cache to empty
    /// itself before its next use (the segment is full, or free memory is being zeroed).
    pub(super) fn empty_caches(&self, t: &mut Heap) {
        let cache = self.cache();
        if !cache.exists() {
            return;
        }
        // SAFETY: only projects the header pointer to one of its fields.
        let word = self.field(|h| unsafe { &raw mut (*h).cache_epoch });
        let epoch = word.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(slot) = cache::recorded_slot(self.mapping).filter(|&s| s != 0) {
            cache.flush(t, slot, epoch);
        }
    }

    /// Bytes held in thread caches (a snapshot while other threads work).
    pub fn cached_memory(&self) -> usize {
        self.cache().cached_bytes() as usize
    }

    /// Bytes of the block holding the slot table (0 without a cache).
    pub(super) fn cache_table_block(&self, t: &Heap) -> u64 {
        let table = self.cache().table();
        if table == 0 {
            return 0;
        }
        t.internal_block_size(table - HEADER as u64).unwrap_or(0)
    }

    /// Checks this thread's own slot (other threads' slots change without the lock).
    pub(super) fn check_own_cache(&self, t: &Heap) -> Result<(), String> {
        match cache::recorded_slot(self.mapping) {
            Some(slot) if slot != 0 => self.cache().check(t, slot),
            _ => Ok(()),
        }
    }

    /// Returns the blocks cached by this process's threads for this mapping and frees their
    /// slots; called when the mapping goes away.
    pub fn release_cache(&self) -> Result<()> {
        let cache = self.cache();
        if !cache.exists() || !cache::take_claimed(self.mapping) {
            return Ok(());
        }
        let mut l = self.lock()?;
        cache.release(&mut l.heap, self.mapping, self.cache_epoch(), self.owner());
        Ok(())
    }
}
