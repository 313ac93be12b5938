//! `SegmentObserver` in one process: what it finds and refuses, that it waits for a
//! writer holding the index lock only as long as asked, that it keeps destroys and
//! exclusive opens out while it lives, and that it needs no writer to open; what it reads
//! is never freed under it, lookups racing index churn find only what is there, and
//! forged bytes it cannot repair are errors.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmkit_runtime::sync::{ReadError, SeqLock};
use shmkit_runtime::{
    Error, ManagedMappedFile, ManagedSharedMemory, MappedFileObserver, SharedMemoryObserver,
};
use shmkit_test_support::{offsets, patch_file, ShmGuard, TempPath};

#[test]
fn it_finds_atomics_seqlocks_and_arrays_and_refuses_other_types() {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 64 * 1024).unwrap();
    let hits = seg.construct("hits", AtomicU64::new(5)).unwrap();
    seg.construct("quote", SeqLock::new([1u32, 2])).unwrap();
    seg.construct("lanes", [AtomicU32::new(7), AtomicU32::new(8)])
        .unwrap();
    seg.construct_array("many", 3, 0u64).unwrap();
    seg.construct_array_with("gauges", 2, |_| AtomicU64::new(0))
        .unwrap();

    let observer = SharedMemoryObserver::open(name.get()).unwrap();
    let seen = observer.find::<AtomicU64>("hits").unwrap().unwrap();
    hits.fetch_add(1, Ordering::Release);
    assert_eq!(seen.load(), 6);
    let quote = observer
        .find::<SeqLock<[u32; 2]>>("quote")
        .unwrap()
        .unwrap();
    assert_eq!(quote.read().unwrap(), [1, 2]);
    assert_eq!(quote.try_read(), Some([1, 2]));
    let lanes = observer.find::<[AtomicU32; 2]>("lanes").unwrap().unwrap();
    assert_eq!(lanes.iter().map(|l| l.load()).collect::<Vec<_>>(), [7, 8]);
    assert_eq!(lanes.get_element(1).map(|l| l.load()), Some(8));
    assert!(lanes.get_element(2).is_none());

    assert!(observer.find::<AtomicU64>("absent").unwrap().is_none());
    // A timeout beyond the clock's range waits without a deadline.
    let again = observer.find_timeout::<AtomicU64>("hits", Duration::MAX);
    assert_eq!(again.unwrap().map(|a| a.load()), Some(6));
    assert!(matches!(
        observer.find::<AtomicU32>("hits"),
        Err(Error::TypeMismatch { .. })
    ));
    // An array of two gauges is not one gauge.
    assert!(matches!(
        observer.find::<AtomicU64>("gauges"),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        observer.find::<AtomicU64>(""),
        Err(Error::InvalidName { .. })
    ));
    assert!(format!("{observer:?}").contains(name.get()));
    assert!(format!("{quote:?}").contains("SeqLock"));
}

#[test]
fn a_writer_holding_the_index_lock_makes_it_wait_only_as_long_as_asked() {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 64 * 1024).unwrap();
    seg.construct("hits", AtomicU64::new(1)).unwrap();
    let observer = SharedMemoryObserver::open(name.get()).unwrap();
    seg.atomic_func(|| {
        let started = Instant::now();
        let found = observer.find_timeout::<AtomicU64>("hits", Duration::from_millis(50));
        assert!(matches!(found, Err(Error::InUse { .. })), "{found:?}");
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(started.elapsed() < Duration::from_secs(5));
    })
    .unwrap();
    // Released: found at once.
    assert_eq!(
        observer.find::<AtomicU64>("hits").unwrap().unwrap().load(),
        1
    );
}

#[test]
fn while_it_lives_objects_are_not_destroyed_nor_the_segment_opened_exclusively() {
    let name = ShmGuard::new();
    let mut seg = ManagedSharedMemory::create(name.get(), 64 * 1024).unwrap();
    seg.construct("hits", AtomicU64::new(1)).unwrap();
    let observer = SharedMemoryObserver::open(name.get()).unwrap();
    let hits = observer.find::<AtomicU64>("hits").unwrap().unwrap();
    assert!(matches!(
        seg.destroy::<AtomicU64>("hits"),
        Err(Error::InUse { .. })
    ));
    assert!(matches!(
        ManagedSharedMemory::options().exclusive().open(name.get()),
        Err(Error::InUse { .. })
    ));
    assert!(matches!(
        ManagedSharedMemory::grow(name.get(), 4096),
        Err(Error::InUse { .. })
    ));
    assert_eq!(hits.load(), 1);
    drop(observer);
    assert!(seg.destroy::<AtomicU64>("hits").unwrap());
}

#[test]
fn it_opens_a_file_nobody_writes_and_lets_writers_in_afterwards() {
    let path = TempPath::new();
    let seg = ManagedMappedFile::create(path.get(), 64 * 1024).unwrap();
    seg.construct("hits", AtomicU64::new(3)).unwrap();
    drop(seg);
    let observer = MappedFileObserver::open(path.get()).unwrap();
    let hits = observer.find::<AtomicU64>("hits").unwrap().unwrap();
    assert_eq!(hits.load(), 3);
    // A read-only mapping keeps writers out; the observer let them in once it validated.
    let writer = ManagedMappedFile::open(path.get()).unwrap();
    writer
        .find::<AtomicU64>("hits")
        .unwrap()
        .unwrap()
        .store(4, Ordering::Release);
    assert_eq!(hits.load(), 4);
    assert!(observer.size() >= 64 * 1024);
}

#[test]
fn an_absent_segment_is_not_found() {
    let name = ShmGuard::new();
    assert!(matches!(
        SharedMemoryObserver::open(name.get()),
        Err(Error::NotFound { .. })
    ));
}

/// Lookups without the lock race a writer thread (a mapping of its own) that grows the
/// hash table, undoes constructions and publishes objects together: a kept object found
/// holds its own value, an undone one is never found, and all are there at the end.
#[test]
fn lookups_racing_a_writer_thread_churning_the_index_find_only_what_is_there() {
    use shmkit_test_support::churn;
    const N: usize = 20_000;
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 16 << 20).unwrap();
    seg.construct(churn::MADE, AtomicU64::new(0)).unwrap();
    let observer = SharedMemoryObserver::open(name.get()).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| churn::churn(&ManagedSharedMemory::open(name.get()).unwrap(), N));
        churn::watch(&observer, N, Duration::from_secs(120));
    });
}

/// What an observed value reads stays allocated for as long as it lives: the name may be
/// removed and made anew (the value is the old segment's), and nothing that frees or moves
/// its bytes runs (in-place destruction, index shrinking, offline resizing, an exclusive
/// open); a copy-on-write mapping's writes stay its own.
#[test]
fn what_an_observed_value_reads_is_never_freed_moved_or_replaced() {
    let name = ShmGuard::new();
    let mut seg = ManagedSharedMemory::create(name.get(), 64 * 1024).unwrap();
    let hits = std::ptr::from_ref(seg.construct("hits", AtomicU64::new(1)).unwrap());
    seg.construct("other", AtomicU64::new(2)).unwrap();
    let observer = SharedMemoryObserver::open(name.get()).unwrap();
    let seen = observer.find::<AtomicU64>("hits").unwrap().unwrap();

    let in_use = |r: Result<_, Error>, what: &str| {
        assert!(matches!(r, Err(Error::InUse { .. })), "{what}: {r:?}");
    };
    in_use(seg.destroy::<AtomicU64>("other").map(drop), "destroy");
    in_use(seg.destroy_ptr(hits), "destroy_ptr");
    in_use(seg.shrink_to_fit_indexes(), "shrink_to_fit_indexes");
    in_use(
        ManagedSharedMemory::shrink_to_fit(name.get()).map(drop),
        "shrink_to_fit",
    );
    in_use(ManagedSharedMemory::grow(name.get(), 4096), "grow");
    in_use(
        ManagedSharedMemory::options()
            .exclusive()
            .open(name.get())
            .map(drop),
        "exclusive open",
    );
    // Without the writer, a copy-on-write mapping (which keeps writers out) may map it.
    drop(seg);
    let cow = ManagedSharedMemory::options()
        .copy_on_write()
        .open(name.get())
        .unwrap();
    cow.find::<AtomicU64>("hits")
        .unwrap()
        .unwrap()
        .store(3, Ordering::Release);
    assert_eq!(
        seen.load(),
        1,
        "a copy-on-write mapping's write reached the observer"
    );
    drop(cow);

    // The name goes and comes back: the observer keeps the segment it mapped.
    assert!(ManagedSharedMemory::remove(name.get()).unwrap());
    let again = ManagedSharedMemory::create(name.get(), 64 * 1024).unwrap();
    again.construct("hits", AtomicU64::new(4)).unwrap();
    again.construct("filler", [0xFFu8; 64]).unwrap();
    assert_eq!(seen.load(), 1);
    let fresh = SharedMemoryObserver::open(name.get()).unwrap();
    assert_eq!(fresh.find::<AtomicU64>("hits").unwrap().unwrap().load(), 4);
}

/// A file forged at rest (the observer attaches cold: it validates while writers are kept
/// out) with bytes an observer cannot repair, since it never writes: bools that are
/// neither 0 nor 1 are `InvalidValue`; an index lock a dead process holds makes lookups
/// wait only their timeout, until a writer (let in once the observer validated) recovers
/// it; a seqlock whose writer died mid-write reads as `WriterDied`.
#[test]
fn a_cold_observer_reports_forged_bytes_it_cannot_repair() {
    /// The id every private mapping takes for alive (`robust::owner::PRIVATE`), which no
    /// holder of a file's lock can have: a dead one here.
    const DEAD: [u8; 4] = 1u32.to_ne_bytes();
    let path = TempPath::new();
    let seg = ManagedMappedFile::create(path.get(), 64 * 1024).unwrap();
    let at = |p: *const u8| p.addr() - seg.base_address().as_ptr().addr();
    let flag = at(std::ptr::from_ref(seg.construct("flag", AtomicBool::new(true)).unwrap()).cast());
    let flags = seg
        .construct("flags", [AtomicBool::new(false), AtomicBool::new(true)])
        .unwrap();
    let flags = at(std::ptr::from_ref(flags).cast());
    let quote = seg.construct("quote", SeqLock::new([1u64, 2])).unwrap();
    let quote = at(std::ptr::from_ref(quote).cast());
    seg.construct("hits", AtomicU64::new(7)).unwrap();
    drop(seg);
    patch_file(path.get(), |b| {
        b[flag] = 2;
        b[flags + 1] = 0xFF;
        // SeqLock: lock word at 0, sequence at 8 (odd: mid-write).
        b[quote..quote + 4].copy_from_slice(&DEAD);
        b[quote + 8..quote + 12].copy_from_slice(&3u32.to_ne_bytes());
        b[offsets::INDEX_LOCK..offsets::INDEX_LOCK + 4].copy_from_slice(&DEAD);
    });

    let observer = MappedFileObserver::open(path.get()).unwrap();
    let started = Instant::now();
    let busy = observer.find_timeout::<AtomicU64>("hits", Duration::from_millis(50));
    assert!(matches!(busy, Err(Error::InUse { .. })), "{busy:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let writer = ManagedMappedFile::open(path.get()).expect("a writer recovers the index");
    assert_eq!(
        observer.find::<AtomicU64>("hits").unwrap().unwrap().load(),
        7
    );
    for invalid in [
        observer.find::<AtomicBool>("flag").map(drop),
        observer.find::<[AtomicBool; 2]>("flags").map(drop),
    ] {
        assert!(
            matches!(invalid, Err(Error::InvalidValue { .. })),
            "{invalid:?}"
        );
    }
    let quote = observer
        .find::<SeqLock<[u64; 2]>>("quote")
        .unwrap()
        .unwrap();
    assert_eq!(
        quote.read_timeout(Duration::from_secs(5)),
        Err(ReadError::WriterDied)
    );
    drop(writer);
}
