//! The per-process registry of mapped segments: which mapping an address belongs to.
//!
//! Allocating operations and `Drop` of the segment containers find their segment from their own
//! address, so containers need no allocator field (`Vec::new()` stays `const`). Every mapping is
//! registered: each mapping of a shared segment (a second one of the same segment too), a
//! copy-on-write mapping, a heap segment (again after it moved while growing), an external
//! buffer. A buffer may be registered inside another registered range (an external-buffer
//! segment built in a block of another segment); the innermost one owns the address. The same
//! range may be registered more than once (two segment objects opened over the same bytes);
//! a writable registration of it then wins over a read-only one.
//!
//! [`lookup`] has a fast path: a thread-local copy of the last mapping found, valid while a
//! global generation counter, bumped by every change, has not moved — so a stale cache never
//! returns a range that has since been unregistered or moved. The lookup path takes no heap
//! allocation (a `const`-initialised thread-local `Cell`, a read lock and a binary search), so
//! it is usable in a child after `fork`.
//!
//! A segment's registration ([`register_segment`]) also carries the mapping's segment manager
//! view, so that [`segment_at`] leads from an address to the allocator of exactly that
//! mapping (a second mapping of the same segment, a copy-on-write copy each have their own),
//! and through its mapping id to this thread's cache there.
//!
//! Registering a mapping exposes its provenance: the address space of a segment is reached
//! through [`OffsetPtr::get`](crate::OffsetPtr::get), which builds pointers from addresses.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::{Error, Result};
use crate::manager::SegmentCore;

/// A registered mapping, as [`lookup`] finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappingInfo {
    /// First byte of the mapping.
    pub base: *mut u8,
    /// Length in bytes (never 0).
    pub len: usize,
    /// Whether the mapping may be written.
    pub writable: bool,
}

impl MappingInfo {
    /// Whether `addr` is inside the mapping.
    #[inline]
    pub fn contains(&self, addr: *const u8) -> bool {
        addr.addr().wrapping_sub(self.base.addr()) < self.len
    }
}

/// One registration, by address (provenance was exposed at registration).
#[derive(Clone, Copy, Debug)]
struct Entry {
    id: u64,
    base: usize,
    len: usize,
    writable: bool,
    /// The manager view of the segment mapped here; None for a plain range (tests).
    segment: Option<SegmentCore>,
}

impl Entry {
    /// The sort key: base ascending, then length descending, then read-only before writable
    /// (so that among equal ranges the writable one is found first, walking backwards).
    fn order(&self) -> (usize, std::cmp::Reverse<usize>, bool) {
        (self.base, std::cmp::Reverse(self.len), self.writable)
    }

    #[inline]
    fn contains(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.base) < self.len
    }

    /// One past the last byte; registration ensured it does not overflow.
    #[inline]
    fn end(&self) -> usize {
        self.base + self.len
    }

    #[inline]
    fn info(&self) -> MappingInfo {
        MappingInfo {
            base: std::ptr::with_exposed_provenance_mut(self.base),
            len: self.len,
            writable: self.writable,
        }
    }
}

/// All registrations in [`Entry::order`], so that a range nested in another comes after it.
/// Ranges are disjoint, nested or equal.
struct Registry {
    entries: Vec<Entry>,
    next_id: u64,
}

impl Registry {
    /// The innermost entry containing `addr`, and whether it has no entry nested inside it
    /// (only then may its whole range be cached).
    fn find(&self, addr: usize) -> Option<(Entry, bool)> {
        let candidates = self.entries.partition_point(|e| e.base <= addr);
        // Walking back from the largest base not above `addr`, the first entry that contains
        // it is the innermost: any inner one sorts after its outer ones (and after the equal
        // ranges it was found among, so that `i + 1` below is not one of them).
        let i = (0..candidates)
            .rev()
            .find(|&i| self.entries[i].contains(addr))?;
        let entry = self.entries[i];
        // Entries nested in `entry` come right after it, and only they start before its end.
        let childless = self
            .entries
            .get(i + 1)
            .is_none_or(|next| next.base >= entry.end());
        Some((entry, childless))
    }

    /// Checks that `[base, base + len)` is disjoint from, nested with or equal to every other
    /// entry (`except` excluded), then inserts it in order.
    fn insert(&mut self, new: Entry, except: Option<u64>) -> Result<()> {
        let end = new.base + new.len;
        let clash = self.entries.iter().find(|e| {
            let disjoint = end <= e.base || e.end() <= new.base;
            let inside = e.base <= new.base && end <= e.end();
            let around = new.base <= e.base && e.end() <= end;
            Some(e.id) != except && !(disjoint || inside || around)
        });
        if let Some(e) = clash {
            return Err(Error::MappingOverlap {
                range: new.base..end,
                registered: e.base..e.end(),
            });
        }
        if let Some(id) = except {
            self.entries.retain(|e| e.id != id);
        }
        let at = self.entries.partition_point(|e| e.order() <= new.order());
        self.entries.insert(at, new);
        Ok(())
    }
}

static REGISTRY: RwLock<Registry> = RwLock::new(Registry {
    entries: Vec::new(),
    next_id: 0,
});

/// Bumped (under the write lock) by every change to the registry. Starts at 1 so that the
/// empty cache (generation 0) never matches.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// The thread's last hit, valid while `generation` is the current one.
#[derive(Clone, Copy)]
struct LastHit {
    generation: u64,
    entry: Entry,
}

// A thread's last two lookups, the latest first: two, so that a thread taking turns
// between two mappings (a message queue's ping and pong) keeps hitting.
thread_local! {
    static LAST_HIT: Cell<[LastHit; 2]> = const {
        let none = LastHit {
            generation: 0,
            entry: Entry { id: 0, base: 0, len: 0, writable: false, segment: None },
        };
        Cell::new([none, none])
    };
}

/// The registry may be used even if a thread panicked while holding the lock: every change is
/// a single `Vec` insertion or removal, which leaves it consistent if it panics.
fn read() -> RwLockReadGuard<'static, Registry> {
    REGISTRY.read().unwrap_or_else(PoisonError::into_inner)
}

fn write() -> RwLockWriteGuard<'static, Registry> {
    REGISTRY.write().unwrap_or_else(PoisonError::into_inner)
}

/// Validates a range to register and returns it as an entry (its id still to be set).
fn entry_for(base: *mut u8, len: usize, writable: bool) -> Result<Entry> {
    let start = base.addr();
    if start == 0 {
        return Err(Error::InvalidAddress {
            addr: 0,
            reason: "cannot register a mapping at the null address".into(),
        });
    }
    if len == 0 || start.checked_add(len).is_none() {
        return Err(Error::InvalidSize {
            size: len as u64,
            reason: format!(
                "a mapping at {start:#x} must be non-empty and end inside the address space"
            ),
        });
    }
    Ok(Entry {
        id: 0,
        base: start,
        len,
        writable,
        segment: None,
    })
}

/// Registers the mapping `[base, base + len)`. It stays registered until the returned guard is
/// dropped. Errors: a null base, an empty or overflowing range, or a range that partly overlaps
/// one already registered — a range nested inside another, or equal to it, is fine.
pub fn register(base: *mut u8, len: usize, writable: bool) -> Result<Registration> {
    insert_new(entry_for(base, len, writable)?, base)
}

/// Registers the `len` bytes of the segment `core` views, with the view itself, so that
/// [`segment_at`] finds it. Errors as for [`register`].
pub(crate) fn register_segment(core: SegmentCore, len: usize) -> Result<Registration> {
    let base = core.base().as_ptr();
    let mut entry = entry_for(base, len, core.writable())?;
    entry.segment = Some(core);
    insert_new(entry, base)
}

fn insert_new(mut entry: Entry, base: *mut u8) -> Result<Registration> {
    let mut registry = write();
    entry.id = registry.next_id;
    registry.insert(entry, None)?;
    registry.next_id += 1;
    // Exposed so that pointers built from addresses in the mapping may use its provenance.
    let _ = base.expose_provenance();
    GENERATION.fetch_add(1, Ordering::Release);
    Ok(Registration { entry })
}

/// The mapping containing `addr` (the innermost one if nested), if any is registered.
pub fn lookup(addr: *const u8) -> Option<MappingInfo> {
    find(addr).map(|e| e.info())
}

/// The manager view of the segment mapped at `addr` (the innermost mapping if nested), if
/// that mapping is a registered segment. Allocation-free, with the same fast path as
/// [`lookup`]. The view is valid while that mapping stays mapped: callers tie it to a borrow
/// that keeps it so.
#[inline]
pub(crate) fn segment_at(addr: *const u8) -> Option<SegmentCore> {
    find(addr)?.segment
}

/// The registry's generation: it changes whenever a mapping is registered or goes.
#[inline(always)]
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// The segment mapping holding `addr`, if this thread's last lookup found it and nothing
/// is mapped inside it: its start, its length and the [`generation`] it is valid in. A
/// per-thread cache of facts about that mapping may key on these.
pub(crate) fn last_hit_range(addr: *const u8) -> Option<(u64, usize, usize)> {
    let hits = LAST_HIT.try_with(Cell::get).ok()?;
    let hit = hits
        .into_iter()
        .find(|hit| hit.entry.segment.is_some() && hit.entry.contains(addr.addr()))?;
    Some((hit.generation, hit.entry.base, hit.entry.len))
}

/// Always inlined, the slow path apart: a user lock looks its mapping up on every
/// acquisition, and a call here cost an uncontended `RwLock` read a quarter of its time.
#[inline(always)]
fn find(addr: *const u8) -> Option<Entry> {
    let addr = addr.addr();
    let current = GENERATION.load(Ordering::Acquire);
    // `try_with` fails only while the thread is being torn down: then take the slow path.
    if let Ok(hits) = LAST_HIT.try_with(Cell::get) {
        for hit in hits {
            if hit.generation == current && hit.entry.contains(addr) {
                return Some(hit.entry);
            }
        }
    }
    find_slow(addr)
}

#[cold]
#[inline(never)]
fn find_slow(addr: usize) -> Option<Entry> {
    let registry = read();
    // Read under the lock: writers bump it only while holding the write lock, so it is the
    // generation of exactly the entries searched here.
    let generation = GENERATION.load(Ordering::Relaxed);
    let (entry, childless) = registry.find(addr)?;
    if childless {
        let _ = LAST_HIT.try_with(|hits| {
            let latest = hits.get()[0];
            hits.set([LastHit { generation, entry }, latest]);
        });
    }
    Some(entry)
}

/// A registered mapping; dropping it unregisters the mapping.
#[derive(Debug)]
#[must_use = "dropping the registration unregisters the mapping at once"]
pub struct Registration {
    entry: Entry,
}

impl Registration {
    /// The mapping as registered now.
    pub fn info(&self) -> MappingInfo {
        self.entry.info()
    }

    /// Moves the registration to `[base, base + len)` as a plain range (a segment's
    /// registration moves with [`relocate`](Self::relocate), which keeps its view). On error
    /// (the same as for [`register`]) the old range stays registered. The unit tests move
    /// plain ranges with it.
    #[cfg(test)]
    pub fn update(&mut self, base: *mut u8, len: usize) -> Result<()> {
        self.replace(entry_for(base, len, self.entry.writable)?, base)
    }

    /// Moves a segment's registration to where `core` now views it (a heap segment that was
    /// reallocated to grow). On error the old range stays registered.
    pub(crate) fn relocate(&mut self, core: SegmentCore, len: usize) -> Result<()> {
        let base = core.base().as_ptr();
        let mut entry = entry_for(base, len, core.writable())?;
        entry.segment = Some(core);
        self.replace(entry, base)
    }

    fn replace(&mut self, mut entry: Entry, base: *mut u8) -> Result<()> {
        entry.id = self.entry.id;
        let mut registry = write();
        registry.insert(entry, Some(entry.id))?;
        let _ = base.expose_provenance();
        GENERATION.fetch_add(1, Ordering::Release);
        self.entry = entry;
        Ok(())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut registry = write();
        registry.entries.retain(|e| e.id != self.entry.id);
        GENERATION.fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::{mpsc, Arc, Barrier};

    /// A heap buffer: a real address range no other test uses while it lives.
    fn buffer(len: usize) -> Box<[u8]> {
        vec![0u8; len].into_boxed_slice()
    }

    #[test]
    fn lookup_finds_the_containing_mapping_and_nothing_outside() {
        let mut buf = buffer(64);
        let base = buf.as_mut_ptr();
        let reg = register(base.wrapping_add(8), 32, true).unwrap();
        let info = reg.info();
        assert_eq!(
            (info.base, info.len, info.writable),
            (base.wrapping_add(8), 32, true)
        );
        assert_eq!(lookup(base.wrapping_add(8)), Some(info));
        assert_eq!(lookup(base.wrapping_add(39)), Some(info));
        // Twice, so that the second comes from the cache.
        assert_eq!(lookup(base.wrapping_add(20)), Some(info));
        assert_eq!(lookup(base.wrapping_add(20)), Some(info));
        assert_eq!(lookup(base.wrapping_add(7)), None, "before the start");
        assert_eq!(lookup(base.wrapping_add(40)), None, "one past the end");
        assert!(info.contains(base.wrapping_add(8)) && !info.contains(base.wrapping_add(40)));
    }

    #[test]
    fn dropping_the_registration_unregisters_even_a_cached_hit() {
        let mut buf = buffer(16);
        let base = buf.as_mut_ptr();
        let reg = register(base, 16, false).unwrap();
        assert_eq!(lookup(base).map(|i| i.writable), Some(false));
        drop(reg);
        assert_eq!(lookup(base), None, "the cached hit must be stale now");
    }

    #[test]
    fn update_moves_the_mapping() {
        let mut old = buffer(16);
        let mut new = buffer(32);
        let mut reg = register(old.as_mut_ptr(), 16, true).unwrap();
        assert!(lookup(old.as_ptr()).is_some());
        reg.update(new.as_mut_ptr(), 32).unwrap();
        assert_eq!(lookup(old.as_ptr()), None);
        let info = lookup(new.as_ptr().wrapping_add(31)).unwrap();
        assert_eq!(
            (info.base, info.len, info.writable),
            (new.as_mut_ptr(), 32, true)
        );
        assert_eq!(reg.info(), info);
        assert!(reg.update(new.as_mut_ptr(), 0).is_err());
        assert_eq!(
            lookup(new.as_ptr()),
            Some(info),
            "a failed update keeps the old range"
        );
    }

    #[test]
    fn nested_ranges_resolve_to_the_innermost() {
        let mut buf = buffer(100);
        let base = buf.as_mut_ptr();
        let outer = register(base, 100, true).unwrap();
        let inner = register(base.wrapping_add(10), 10, false).unwrap();
        let inner2 = register(base.wrapping_add(30), 10, true).unwrap();
        // The outer range has children: it must never be cached for an inner address.
        assert_eq!(lookup(base.wrapping_add(50)), Some(outer.info()));
        assert_eq!(lookup(base.wrapping_add(15)), Some(inner.info()));
        assert_eq!(lookup(base.wrapping_add(50)), Some(outer.info()));
        assert_eq!(lookup(base.wrapping_add(35)), Some(inner2.info()));
        assert_eq!(lookup(base.wrapping_add(25)), Some(outer.info()));
        assert_eq!(lookup(base.wrapping_add(15)), Some(inner.info()));
        // Same base, shorter: nested, and the innermost wins.
        let head = register(base, 5, true).unwrap();
        assert_eq!(lookup(base.wrapping_add(4)), Some(head.info()));
        assert_eq!(lookup(base.wrapping_add(5)), Some(outer.info()));
        drop(inner);
        assert_eq!(lookup(base.wrapping_add(15)), Some(outer.info()));
        drop((head, inner2, outer));
    }

    #[test]
    fn overlapping_or_invalid_ranges_are_rejected() {
        let mut buf = buffer(64);
        let base = buf.as_mut_ptr();
        let _reg = register(base.wrapping_add(16), 16, true).unwrap();
        assert!(
            register(base.wrapping_add(8), 16, true).is_err(),
            "overlaps the start"
        );
        assert!(
            register(base.wrapping_add(24), 16, true).is_err(),
            "overlaps the end"
        );
        assert!(register(base, 0, true).is_err(), "empty");
        assert!(register(std::ptr::null_mut(), 8, true).is_err(), "null");
        assert!(register(base, usize::MAX, true).is_err(), "wraps around");
        assert!(register(base, 16, true).is_ok(), "adjacent is fine");
    }

    #[test]
    fn the_same_range_may_be_registered_twice_and_writable_wins() {
        let mut buf = buffer(32);
        let base = buf.as_mut_ptr();
        let read_only = register(base, 32, false).unwrap();
        let writable = register(base, 32, true).unwrap();
        let again = register(base, 32, false).unwrap();
        assert_eq!(lookup(base.wrapping_add(1)), Some(writable.info()));
        assert_eq!(lookup(base.wrapping_add(1)), Some(writable.info()));
        drop(writable);
        assert_eq!(lookup(base).map(|i| i.writable), Some(false));
        drop(read_only);
        assert_eq!(lookup(base), Some(again.info()));
        drop(again);
        assert_eq!(lookup(base), None);
    }

    #[test]
    fn another_threads_cache_sees_the_unregistration() {
        let mut buf = buffer(32);
        let base = buf.as_mut_ptr();
        let reg = register(base, 32, true).unwrap();
        let addr = base.addr();
        let (to_reader, at_reader) = mpsc::channel::<()>();
        let (to_main, at_main) = mpsc::channel::<bool>();
        let reader = std::thread::spawn(move || {
            let p = std::ptr::without_provenance::<u8>(addr);
            to_main.send(lookup(p).is_some()).unwrap();
            at_reader.recv().unwrap();
            to_main.send(lookup(p).is_some()).unwrap();
        });
        assert!(
            at_main.recv().unwrap(),
            "found while registered (and now cached)"
        );
        drop(reg);
        to_reader.send(()).unwrap();
        assert!(!at_main.recv().unwrap(), "not found once unregistered");
        reader.join().unwrap();
    }

    #[test]
    fn concurrent_lookups_while_registering_and_unregistering() {
        let rounds = if cfg!(miri) { 20 } else { 2000 };
        let mut stable = buffer(64);
        let mut churn = buffer(64);
        let stable_reg = register(stable.as_mut_ptr(), 64, true).unwrap();
        let stable_info = stable_reg.info();
        let (stable_addr, churn_addr) = (stable.as_ptr().addr(), churn.as_mut_ptr().addr());
        let done = Arc::new(AtomicBool::new(false));
        let start = Arc::new(Barrier::new(3));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (done, start) = (done.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    while !done.load(Ordering::Acquire) {
                        let s = lookup(std::ptr::without_provenance(stable_addr + 10)).unwrap();
                        assert_eq!((s.base.addr(), s.len), (stable_addr, 64));
                        for at in [churn_addr, churn_addr + 40] {
                            if let Some(c) = lookup(std::ptr::without_provenance(at)) {
                                // Either the whole first half or the whole buffer: never a
                                // range that is not registered at that moment's generation.
                                assert_eq!(c.base.addr(), churn_addr);
                                assert!(c.len == 32 || c.len == 64, "{c:?}");
                                assert!(at - churn_addr < c.len);
                            }
                        }
                    }
                })
            })
            .collect();
        start.wait();
        let churn_ptr = churn.as_mut_ptr();
        for _ in 0..rounds {
            let mut reg = register(churn_ptr, 32, true).unwrap();
            reg.update(churn_ptr, 64).unwrap();
            drop(reg);
        }
        done.store(true, Ordering::Release);
        for reader in readers {
            reader.join().unwrap();
        }
        assert_eq!(lookup(churn_ptr), None);
        assert_eq!(lookup(stable.as_ptr()), Some(stable_info));
    }
}
