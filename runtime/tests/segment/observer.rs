//! `SegmentObserver` in one process: what it finds and refuses, that it waits for a
//! writer holding the index lock only as long as asked, that it keeps destroys and
//! exclusive opens out while it lives, and that it needs no writer to open.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmkit_runtime::sync::SeqLock;
use shmkit_runtime::{
    Error, ManagedMappedFile, ManagedSharedMemory, MappedFileObserver, SharedMemoryObserver,
};
use shmkit_test_support::{ShmGuard, TempPath};

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
