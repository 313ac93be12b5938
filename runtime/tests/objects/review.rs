//! Regression tests for the second review of the object layer: each test names the bug it
//! guards against and asserts the fixed behaviour.

use std::sync::atomic::{AtomicU64, Ordering};

use shmkit_runtime::segment::HeapMemory;
use shmkit_runtime::*;
use shmkit_test_support as support;
use support::TempDir;

type Heap = ManagedSegment<HeapMemory, ReadWrite, HashIndex>;
type HeapOrd = ManagedSegment<HeapMemory, ReadWrite, OrderedIndex>;
type HeapNull = ManagedSegment<HeapMemory, ReadWrite, NullIndex>;

/// Words of a forged anonymous entry (`Entry<()>`) preceded by a fake block header, laid
/// out so that word 6 looks like the data of an anonymous `u64` object.
fn forged_anonymous_words() -> Vec<u64> {
    let mut w = vec![0u64; 16];
    w[1] = 64; // fake block header: size 64, used
    w[2] = 0xB0E5 | (3 << 16) | (2 << 24); // tag, Anonymous, LIVE, hash 0
    w[3] = 1; // count 1, name length 0
    w[4] = <u64 as ShmSafe>::type_fingerprint();
    w[5] = 32u64 << 32; // data offset, in the 4 bytes before the data
    w[6] = 0xdead;
    w
}

/// Bug 1 (HIGH): `destroy_ptr` trusted the bytes before the pointer; for anonymous objects
/// it checked only that a "block" started there, so user data forging a block header and
/// an anonymous entry got a fake block inside a live object freed. Anonymous entries must
/// now be in the registry of entries.
#[test]
fn destroy_ptr_rejects_a_forged_anonymous_entry_inside_an_object() {
    let seg = Heap::new(1 << 16).unwrap();
    let w = forged_anonymous_words();
    let arr = seg.construct_from_iter("arr", w.clone()).unwrap();
    let fake = arr[6..].as_ptr();
    let mut seg = seg;
    let r = seg.destroy_ptr::<u64>(fake);
    assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
    seg.check().unwrap();
    assert_eq!(seg.find_slice::<u64>("arr").unwrap(), Some(&w[..]));
    assert_eq!(seg.num_named_objects(), 1);
}

/// Bug 1 (HIGH), the other side: genuine anonymous objects are still destroyed through
/// their pointer, on every index kind.
#[test]
fn destroy_ptr_still_destroys_genuine_anonymous_objects() {
    fn run<I: IndexKind>(mut seg: ManagedSegment<HeapMemory, ReadWrite, I>) {
        let free = seg.free_memory();
        let ptrs: Vec<*const u64> = (0..100)
            .map(|i| seg.construct_anonymous(i as u64).unwrap() as *const u64)
            .collect();
        for p in ptrs.iter().rev() {
            seg.destroy_ptr(*p).unwrap();
            // A second destroy of the same pointer is refused.
            assert!(seg.destroy_ptr(*p).is_err());
        }
        seg.check().unwrap();
        assert_eq!(seg.free_memory(), free);
    }
    run(Heap::new(1 << 20).unwrap());
    run(HeapOrd::new(1 << 20).unwrap());
    run(HeapNull::new(1 << 20).unwrap());
}

/// Bug 2 (HIGH): `reserve_named_objects(usize::MAX)` overflowed the table size (a panic in
/// debug builds, a tiny table claiming 2^61 slots in release builds). It is now refused.
#[test]
fn reserving_more_objects_than_the_segment_holds_is_refused() {
    let seg = Heap::new(1 << 16).unwrap();
    seg.construct("a", 0x1111u64).unwrap();
    seg.construct_array("b", 64, 7u64).unwrap();
    for n in [usize::MAX, usize::MAX / 8, 1 << 40, 1 << 20] {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            seg.reserve_named_objects(n)
        }))
        .expect("reserve panicked");
        assert!(matches!(r, Err(Error::OutOfMemory { .. })), "{n}: {r:?}");
        let r = seg.reserve_unique_objects(n);
        assert!(matches!(r, Err(Error::OutOfMemory { .. })), "{n}: {r:?}");
    }
    seg.check().unwrap();
    assert_eq!(seg.find::<u64>("a").unwrap(), Some(&0x1111));
    assert_eq!(seg.find_slice::<u64>("b").unwrap(), Some(&[7u64; 64][..]));
    assert_eq!(*seg.construct("c", 5u64).unwrap(), 5);
    seg.reserve_named_objects(100).unwrap();
}

/// Bug 3 (HIGH): recovery (here: the copy-on-write attach) freed user blocks whose bytes
/// merely looked like a hash table ("HASHTAB1", 1) or like an abandoned entry.
#[test]
fn copy_on_write_attach_keeps_user_blocks_that_look_like_index_data() {
    let dir = TempDir::new();
    let file = dir.join("f");
    let seg = ManagedMappedFile::create(&file, 1 << 16).unwrap();
    seg.construct("x", 1u64).unwrap();
    let table = seg.allocate(64).unwrap();
    let entry = seg.allocate(64).unwrap();
    // SAFETY: both blocks are ours, 64 bytes each.
    unsafe {
        let t = table.as_ptr().cast::<u64>();
        t.write(0x4841_5348_5441_4231); // "HASHTAB1"
        t.add(1).write(1);
        // An anonymous u64 entry caught "under construction".
        let e = entry.as_ptr().cast::<u64>();
        e.write(0xB0E5 | (3 << 16) | (1 << 24));
        e.add(1).write(1);
        e.add(2).write(<u64 as ShmSafe>::type_fingerprint());
        e.add(3).write(32u64 << 32);
    }
    let offs: Vec<usize> = [table, entry]
        .iter()
        .map(|p| p.as_ptr() as usize - seg.base_address().as_ptr() as usize)
        .collect();
    let cow = ManagedMappedFile::open_copy_on_write(&file).unwrap();
    assert_eq!(cow.find::<u64>("x").unwrap(), Some(&1));
    let mine: Vec<std::ptr::NonNull<u8>> = offs
        .iter()
        // SAFETY: the same offsets inside the copy's mapping.
        .map(|&o| unsafe { std::ptr::NonNull::new_unchecked(cow.base_address().as_ptr().add(o)) })
        .collect();
    for sz in [8usize, 16, 24, 32, 40, 48, 56, 64, 72, 80, 64, 64, 64] {
        let n = cow.allocate(sz).unwrap();
        assert!(!mine.contains(&n), "the attach freed a user block");
    }
    for q in mine {
        // SAFETY: the user's live blocks in the copy.
        unsafe { cow.deallocate(q) }.expect("the attach already freed this block");
    }
    cow.check().unwrap();
}

/// Bug 4 (MEDIUM): `instance_name` (and kind, length) accepted a forged header inside an
/// array of atomics and returned a `&str` into memory safe code can change. Forged
/// entries are now refused and names are returned as copies.
#[test]
fn instance_functions_refuse_forged_entries() {
    let seg = Heap::new(1 << 16).unwrap();
    let arr = seg
        .construct_array_with("arr", 16, |_| AtomicU64::new(0))
        .unwrap();
    // A named entry "evil" at arr[4] whose data would be arr[8].
    arr[4].store(0xB0E5 | (1 << 16) | (2 << 24), Ordering::Relaxed);
    arr[5].store(1 | (4u64 << 48), Ordering::Relaxed);
    arr[6].store(
        <AtomicU64 as ShmSafe>::type_fingerprint(),
        Ordering::Relaxed,
    );
    arr[7].store(
        u64::from(u32::from_le_bytes(*b"evil")) | (32u64 << 32),
        Ordering::Relaxed,
    );
    assert_eq!(seg.instance_name(&arr[8]), None);
    assert_eq!(seg.instance_kind(&arr[8]), None);
    assert_eq!(seg.instance_length(&arr[8]), None);
    // The same as an anonymous entry.
    arr[4].store(0xB0E5 | (3 << 16) | (2 << 24), Ordering::Relaxed);
    arr[5].store(1, Ordering::Relaxed);
    arr[7].store(32u64 << 32, Ordering::Relaxed);
    let forged_anon = &arr[7..];
    // Data at e + 32 = arr[8] for a zero-length name: (24 + 0 + 4) rounded up to 8 = 32.
    assert_eq!(seg.instance_kind(&forged_anon[1]), None);
    // Genuine objects are still described.
    assert_eq!(seg.instance_name(&arr[0]).as_deref(), Some("arr"));
    assert_eq!(seg.instance_length(&arr[0]), Some(16));
    let a = seg.construct_anonymous(3u32).unwrap();
    assert_eq!(seg.instance_kind(a), Some(ObjectKind::Anonymous));
}

/// Bug 5 (MEDIUM): `instance_name` read entry headers (with the ordered index's links)
/// without the index lock while constructions rewrote them under it: a data race.
#[test]
fn instance_functions_take_the_index_lock() {
    let seg = HeapOrd::new(1 << 20).unwrap();
    let x: &u64 = seg.construct("m", 1u64).unwrap();
    std::thread::scope(|sc| {
        sc.spawn(|| {
            for i in 0..2000 {
                seg.construct(format!("k{i:05}").as_str(), i as u64)
                    .unwrap();
            }
        });
        sc.spawn(|| {
            for _ in 0..20000 {
                assert_eq!(seg.instance_name(x).as_deref(), Some("m"));
            }
        });
    });
}

/// Bug 6 (MEDIUM): lock-order inversion. `with_lock(|| find(..))` took the allocator lock
/// then the index lock; `atomic_func(|| allocate(..))` the other way round: a deadlock.
/// Object operations under the allocator lock are now refused.
#[test]
fn object_operations_under_the_allocator_lock_are_refused() {
    let seg = std::sync::Arc::new(Heap::new(1 << 20).unwrap());
    seg.construct("x", 1u64).unwrap();
    let bar = std::sync::Arc::new(std::sync::Barrier::new(2));
    let (s1, b1) = (seg.clone(), bar.clone());
    let t1 = std::thread::spawn(move || {
        s1.with_lock(|| {
            b1.wait();
            let found = s1.find::<u64>("x");
            assert!(
                matches!(found, Err(Error::InvalidArgument { .. })),
                "{found:?}"
            );
            let made = s1.construct("y", 2u64);
            assert!(
                matches!(made, Err(Error::InvalidArgument { .. })),
                "{made:?}"
            );
        })
        .unwrap();
    });
    let (s2, b2) = (seg.clone(), bar);
    let t2 = std::thread::spawn(move || {
        s2.atomic_func(|| {
            b2.wait();
            std::thread::sleep(std::time::Duration::from_millis(50));
            s2.allocate(100_000).unwrap();
        })
        .unwrap();
    });
    let start = std::time::Instant::now();
    while !(t1.is_finished() && t2.is_finished()) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "deadlock"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    t1.join().unwrap();
    t2.join().unwrap();
    assert_eq!(seg.find::<u64>("x").unwrap(), Some(&1));
}

/// Fills `seg` with raw allocations until nothing more fits.
fn fill<B: segment::Backing, I: IndexKind>(seg: &ManagedSegment<B, ReadWrite, I>) {
    for sz in [4096usize, 1024, 256, 64, 16, 8] {
        while seg.allocate(sz).is_ok() {}
    }
}

/// Forks a child that runs `f` holding the index lock of `seg` and dies there; waits for it.
fn die_holding_the_index_lock<B: segment::Backing, I: IndexKind>(
    seg: &ManagedSegment<B, ReadWrite, I>,
    f: impl FnOnce(),
) {
    // SAFETY: the test's other threads are idle; the child only runs `f` and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let _ = seg.atomic_func(|| {
            f();
            // SAFETY: ends the child at once, holding the lock, without unwinding.
            unsafe { libc::_exit(0) }
        });
        // SAFETY: as above.
        unsafe { libc::_exit(1) };
    }
    let mut st = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
}

/// Finds the object layer's reserved header words of a hash-index segment holding one
/// named object and no unique one: lock, kind 1, named root, count 1, unique root 0,
/// unique count 0, types head.
fn reserved_words(base: *const u64) -> usize {
    (0..64)
        .find(|&i| {
            // SAFETY: the first 70 words of the segment lie in its header.
            let w = |j: usize| unsafe { base.add(i + j).read() };
            w(1) == 1 && w(2) != 0 && w(3) == 1 && w(4) == 0 && w(5) == 0 && w(6) != 0
        })
        .expect("the reserved words")
}

/// Bugs 7 and 8 (MEDIUM): recovering the index after its owner died rebuilt it by
/// allocating new tables; in a full segment that failed, the lock was released as if
/// clean and live objects were no longer found. The rebuild now happens in place.
#[test]
fn index_recovery_in_a_full_segment_keeps_every_object() {
    let dir = TempDir::new();
    let file = dir.join("h");
    let seg = ManagedMappedFile::create(&file, 1 << 16).unwrap();
    seg.construct("x", 1u64).unwrap();
    seg.construct_unique(2u32).unwrap();
    let anon = seg.construct_anonymous(3u16).unwrap() as *const u16;
    fill(&seg);
    die_holding_the_index_lock(&seg, || {});
    assert_eq!(seg.find::<u64>("x").unwrap(), Some(&1));
    assert_eq!(seg.find::<u64>("x").unwrap(), Some(&1));
    assert_eq!(seg.find_unique::<u32>().unwrap(), Some(&2));
    assert_eq!(seg.num_named_objects(), 1);
    let mut seg = seg;
    seg.destroy_ptr(anon).unwrap();
    seg.check().unwrap();
}

/// Bug 7 (MEDIUM): a recovery that fails anyway poisons the index lock instead of
/// releasing it as if the indexes were sound.
#[test]
fn failed_index_recovery_poisons_the_index_lock() {
    let dir = TempDir::new();
    let file = dir.join("p");
    let seg = ManagedMappedFile::create(&file, 1 << 16).unwrap();
    seg.construct("x", 1u64).unwrap();
    let base = seg.base_address().as_ptr().cast::<u64>();
    let words = reserved_words(base);
    die_holding_the_index_lock(&seg, || {
        // SAFETY: the type list head word of our own segment (found above).
        unsafe { base.add(words + 6).write(8) }
    });
    assert!(seg.find::<u64>("x").is_err());
    let again = seg.find::<u64>("x");
    assert!(
        again.is_err(),
        "a failed recovery released the lock: {again:?}"
    );
}

/// Bug 10 (LOW): recounting the type records during recovery had no step limit: a cycle
/// in the list (left by a dying process or corruption) hung the recovery forever. It now
/// fails, and the index lock is poisoned.
#[test]
fn recovery_with_a_cyclic_type_list_fails_instead_of_hanging() {
    let dir = TempDir::new();
    let file = dir.join("c");
    let seg = ManagedMappedFile::create(&file, 1 << 16).unwrap();
    seg.construct("x", 1u64).unwrap();
    let base = seg.base_address().as_ptr().cast::<u64>();
    let words = reserved_words(base);
    // SAFETY: a header word of our own segment.
    let record = unsafe { base.add(words + 6).read() } as usize;
    die_holding_the_index_lock(&seg, || {
        // SAFETY: the `next` link of the first type record: it now points to itself.
        unsafe { base.add(record / 8 + 1).write(record as u64) }
    });
    let seg = std::sync::Arc::new(seg);
    let s2 = seg.clone();
    let found = std::thread::spawn(move || s2.find::<u64>("x").map(|x| x.copied()));
    let start = std::time::Instant::now();
    while !found.is_finished() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "recovery hangs"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(found.join().unwrap().is_err());
    assert!(seg.find::<u64>("x").is_err());
}

/// Bug 8 (MEDIUM): a copy-on-write open of a full hash-index segment failed with
/// OutOfMemory (its rebuild allocated new tables before freeing the old ones).
#[test]
fn copy_on_write_open_of_a_full_segment() {
    let dir = TempDir::new();
    let file = dir.join("k");
    {
        let seg = ManagedMappedFile::create(&file, 1 << 16).unwrap();
        seg.construct("x", 1u64).unwrap();
        seg.construct_anonymous(5u8).unwrap();
        fill(&seg);
        seg.flush().unwrap();
    }
    let cow = ManagedMappedFile::open_copy_on_write(&file).unwrap();
    assert_eq!(cow.find::<u64>("x").unwrap(), Some(&1));
    cow.check().unwrap();
}

/// Bug 9 (LOW): `named_objects()` reserved as many elements as the count word said, and
/// panicked (capacity overflow) on a corrupted count.
#[test]
fn listing_objects_with_a_corrupt_count_does_not_panic() {
    let seg = HeapOrd::new(1 << 16).unwrap();
    seg.construct("a", 1u64).unwrap();
    let base = seg.base_address().as_ptr().cast::<u64>();
    let i = (0..64)
        // SAFETY: the first 64 words of the header.
        .find(|&i| unsafe { *base.add(i) == 2 && *base.add(i + 1) != 0 && *base.add(i + 2) == 1 })
        .expect("the reserved words");
    // SAFETY: corrupts the named count word of our own heap segment.
    unsafe { *base.add(i + 2) = u64::MAX };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        seg.named_objects().map(|v| v.count())
    }));
    assert!(r.is_ok(), "named_objects panicked on a corrupt count");
}
