//! Objects on every managed segment kind that maps OS memory (shared memory, files, XSI,
//! anonymous shared memory), seen through a second mapping, read-only and copy-on-write;
//! the reference's copy-on-write example; index kinds recorded in the segment.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shmkit_runtime::segment::{Backing, Writable};
use shmkit_runtime::{
    AlignedBuffer, Error, IndexKind, ManagedAnonymousSharedMemory, ManagedExternalBuffer,
    ManagedHeapMemory, ManagedMappedFile, ManagedSegment, ManagedSharedMemory,
    ManagedXsiSharedMemory, NamedIndex, NullIndex, ObjectKind, OrderedIndex, ReadWrite, ShmSafe,
    Unique,
};
use shmkit_test_support as support;
use support::{unique_name, xsi_key, ShmGuard, TempDir};

const SIZE: usize = 256 * 1024;

/// Constructs a few objects through `a` and checks them through `b`, another mapping of
/// the same segment; `b` cannot destroy what `a` may be reading (`InUse`), and changes
/// shared data through an atomic.
fn shared_between<B1, B2, M, I>(a: &ManagedSegment<B1, M, I>, b: &mut ManagedSegment<B2, M, I>)
where
    B1: Backing,
    B2: Backing,
    M: Writable,
    I: NamedIndex,
{
    let counter = a.construct("counter", AtomicU64::new(41)).unwrap();
    a.construct_array_with("table", 8, |i| i as u32 * 3)
        .unwrap();
    a.construct_unique(7i16).unwrap();
    let seen = b.find::<AtomicU64>("counter").unwrap().unwrap();
    assert_eq!(seen.fetch_add(1, Ordering::Relaxed), 41);
    assert_eq!(counter.load(Ordering::Relaxed), 42);
    assert_eq!(b.find_slice::<u32>("table").unwrap().unwrap()[7], 21);
    assert_eq!(b.find_unique::<i16>().unwrap(), Some(&7));
    assert_eq!((b.num_named_objects(), b.num_unique_objects()), (2, 1));
    // (`b.find_mut` does not compile: `b` is shared; see ui-tests.)
    let err = b.destroy::<u32>("table").unwrap_err();
    assert!(matches!(err, Error::InUse { .. }), "{err}");
    assert_eq!(a.find_slice::<u32>("table").unwrap().unwrap().len(), 8);
}

#[test]
fn objects_are_shared_between_mappings_shm() {
    let g = ShmGuard(unique_name());
    let a = ManagedSharedMemory::create(&g.0, SIZE).unwrap();
    let mut b = ManagedSharedMemory::open(&g.0).unwrap();
    shared_between(&a, &mut b);
}

#[test]
fn a_1000_byte_shared_memory_segment_holds_a_few_named_objects() {
    // Boost's examples create segments of 1,000 bytes.
    let g = ShmGuard(unique_name());
    let a = ManagedSharedMemory::create(&g.0, 1000).unwrap();
    let mut b = ManagedSharedMemory::open(&g.0).unwrap();
    shared_between(&a, &mut b);
}

#[test]
fn objects_are_shared_between_mappings_file() {
    let dir = TempDir::new();
    let path = dir.join("seg");
    let a = ManagedMappedFile::create(&path, SIZE).unwrap();
    let mut b = ManagedMappedFile::open(&path).unwrap();
    shared_between(&a, &mut b);
}

#[test]
fn objects_are_shared_between_mappings_xsi() {
    let dir = TempDir::new();
    let (key, _guard) = xsi_key(&dir);
    let a = ManagedXsiSharedMemory::create(key, SIZE).unwrap();
    let mut b = ManagedXsiSharedMemory::open(key).unwrap();
    shared_between(&a, &mut b);
}

#[test]
fn objects_are_shared_between_mappings_ordered_index() {
    let g = ShmGuard(unique_name());
    let a = ManagedSharedMemory::options()
        .index::<OrderedIndex>()
        .create(&g.0, SIZE)
        .unwrap();
    let mut b = ManagedSharedMemory::options()
        .index::<OrderedIndex>()
        .open(&g.0)
        .unwrap();
    shared_between(&a, &mut b);
}

/// XSI and anonymous memory open through the same builder as shared memory: index kind,
/// permissions, timeout and read-only mode.
#[test]
fn xsi_and_anonymous_segments_open_through_the_builder() {
    let dir = TempDir::new();
    let (key, _guard) = xsi_key(&dir);
    let writer = ManagedXsiSharedMemory::options()
        .permissions(shmkit_runtime::Permissions::from_mode(0o640))
        .index::<OrderedIndex>()
        .create(key, SIZE)
        .unwrap();
    writer.construct("x", 3u32).unwrap();
    // Read-only mappings exclude writable ones (in either order): XSI segments hold
    // attachment locks on a companion lock file.
    let in_use = ManagedXsiSharedMemory::options()
        .read_only()
        .index::<OrderedIndex>()
        .open(key)
        .unwrap_err();
    assert!(
        matches!(&in_use, Error::InUse { what, .. } if what.contains("XSI")),
        "{in_use}"
    );
    drop(writer);
    let reader = ManagedXsiSharedMemory::options()
        .init_timeout(std::time::Duration::from_millis(100))
        .read_only()
        .index::<OrderedIndex>()
        .open(key)
        .unwrap();
    assert_eq!(reader.find::<u32>("x").unwrap(), Some(&3));
    drop(reader);
    let err = ManagedXsiSharedMemory::open(key).unwrap_err();
    assert!(matches!(err, Error::IndexMismatch { .. }), "{err}");

    let anon = ManagedAnonymousSharedMemory::options()
        .index::<OrderedIndex>()
        .create(SIZE)
        .unwrap();
    anon.construct("y", 4u8).unwrap();
    assert_eq!(anon.named_objects().unwrap().count(), 1);
}

#[test]
fn anonymous_shared_memory_holds_objects() {
    let mut seg = ManagedAnonymousSharedMemory::new(SIZE).unwrap();
    seg.construct("x", 1.5f64).unwrap();
    let p: *const u8 = seg.construct_anonymous(9u8).unwrap();
    assert_eq!(seg.find::<f64>("x").unwrap(), Some(&1.5));
    // No forked child maps it (its companion lock file says so): objects are destroyed in
    // place. (While a child maps it, destruction is `InUse`: see the fork tests.)
    seg.destroy_ptr(p).unwrap();
    assert!(seg.destroy::<f64>("x").unwrap());
    assert_eq!(seg.find::<f64>("x").unwrap(), None);
}

/// The same-thread, second-mapping case of the re-entrant index lock: `atomic_func` on
/// one mapping, object operations through another mapping of the same segment inside it.
#[test]
fn atomic_func_on_one_mapping_lets_the_same_thread_use_another() {
    let g = ShmGuard(unique_name());
    let a = ManagedSharedMemory::create(&g.0, SIZE).unwrap();
    let b = ManagedSharedMemory::open(&g.0).unwrap();
    a.atomic_func(|| {
        b.construct("inside", 1u8).unwrap();
        assert_eq!(a.find::<u8>("inside").unwrap(), Some(&1));
    })
    .unwrap();
    assert_eq!(b.num_named_objects(), 1);
}

#[test]
fn read_only_mappings_find_without_the_lock() {
    let g = ShmGuard(unique_name());
    let seg = ManagedSharedMemory::create(&g.0, SIZE).unwrap();
    seg.construct("pi", 3.25f32).unwrap();
    seg.construct_unique(5u16).unwrap();
    drop(seg); // read-only mappings exclude writable ones
    let ro = ManagedSharedMemory::options()
        .read_only()
        .open(&g.0)
        .unwrap();
    assert_eq!(ro.find::<f32>("pi").unwrap(), Some(&3.25));
    assert_eq!(ro.find_unique::<u16>().unwrap(), Some(&5));
    assert!(matches!(
        ro.find::<u32>("pi"),
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!((ro.num_named_objects(), ro.num_unique_objects()), (1, 1));
    let info: Vec<_> = ro.named_objects().unwrap().collect();
    assert_eq!(info[0].name, "pi");
    let pi = ro.find::<f32>("pi").unwrap().unwrap();
    assert_eq!(ro.instance_kind(pi), Some(ObjectKind::Named));
    assert_eq!(ro.instance_name(pi).as_deref(), Some("pi"));
}

/// The reference's example of copy-on-write and read-only modes, on a mapped file.
#[test]
fn copy_on_write_example_of_the_reference() {
    let dir = TempDir::new();
    let file = dir.join("MyManagedFile");
    let file2 = dir.join("MyManagedFile2");
    {
        let managed_file = ManagedMappedFile::create(&file, 65536).unwrap();
        managed_file.construct("MyInt", 0i32).unwrap();
        // Unlike Boost's example, the writer goes first: a copy-on-write mapping would see
        // its later writes through pages not copied yet (`InUse` while it maps the file).
        drop(managed_file);
        let managed_file = ManagedMappedFile::options()
            .read_only()
            .open(&file)
            .unwrap();
        let mut cow = ManagedMappedFile::options()
            .copy_on_write()
            .open(&file)
            .unwrap();
        assert!(cow.destroy::<i32>("MyInt").unwrap());
        cow.construct("MyInt2", 0i32).unwrap();
        assert!(cow.find::<i32>("MyInt").unwrap().is_none());
        assert!(cow.find::<i32>("MyInt2").unwrap().is_some());
        // The original (device and other mappings) is intact.
        assert!(managed_file.find::<i32>("MyInt").unwrap().is_some());
        assert!(managed_file.find::<i32>("MyInt2").unwrap().is_none());

        // Dump the modified copy to another file, open it, see the changes.
        // SAFETY: the mapping covers `size()` bytes and nothing changes them meanwhile.
        let bytes = unsafe { std::slice::from_raw_parts(cow.base_address().as_ptr(), cow.size()) };
        std::fs::write(&file2, bytes).unwrap();
        let cow2 = ManagedMappedFile::open(&file2).unwrap();
        assert!(cow2.find::<i32>("MyInt").unwrap().is_none());
        assert!(cow2.find::<i32>("MyInt2").unwrap().is_some());
    }
    let ro = ManagedMappedFile::options()
        .read_only()
        .open(&file)
        .unwrap();
    assert!(ro.find::<i32>("MyInt").unwrap().is_some());
    assert!(ro.find::<i32>("MyInt2").unwrap().is_none());
    assert_eq!(ro.named_objects().unwrap().count(), 1);
    assert_eq!(ro.unique_objects().unwrap().count(), 0);
}

#[test]
fn a_copy_on_write_open_while_a_writer_maps_the_segment_is_in_use() {
    let g = ShmGuard(unique_name());
    let seg = ManagedSharedMemory::create(&g.0, SIZE).unwrap();
    seg.construct("kept", 1u64).unwrap();
    let err = ManagedSharedMemory::options()
        .copy_on_write()
        .open(&g.0)
        .unwrap_err();
    assert!(matches!(err, Error::InUse { .. }), "{err}");
    assert!(
        err.to_string().contains("read-write mapping"),
        "says who is in the way: {err}"
    );
    drop(seg);
    let cow = ManagedSharedMemory::options()
        .copy_on_write()
        .open(&g.0)
        .unwrap();
    cow.construct("private", 2u64).unwrap();
    assert_eq!(cow.find::<u64>("kept").unwrap(), Some(&1));
}

fn open_file_read_only_as<I: IndexKind>(path: &std::path::Path) -> Result<(), Error> {
    ManagedMappedFile::options()
        .read_only()
        .index::<I>()
        .open(path)
        .map(drop)
}

#[test]
fn a_segment_opened_with_another_index_kind_is_refused() {
    let dir = TempDir::new();
    let path = dir.join("ordered");
    let seg = ManagedMappedFile::options()
        .index::<OrderedIndex>()
        .create(&path, SIZE)
        .unwrap();
    seg.construct(Unique, 1u8).unwrap();
    let err = ManagedMappedFile::open(&path).unwrap_err();
    assert!(matches!(err, Error::IndexMismatch { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    drop(seg); // read-only mappings exclude writable ones
    assert!(matches!(
        open_file_read_only_as::<NullIndex>(&path),
        Err(Error::IndexMismatch { .. })
    ));
    open_file_read_only_as::<OrderedIndex>(&path).unwrap();
}

/// Lookups without the lock (checked by the index version) racing a writer in another
/// mapping: the objects that stay are always found with their values, the new ones are
/// found or not, and no lookup fails on a torn index. (Destruction needs the segment
/// alone, so it cannot race a lookup in another mapping.)
#[test]
fn finds_racing_constructs_and_destroys_see_consistent_objects() {
    let g = ShmGuard(unique_name());
    let reader = std::sync::Arc::new(ManagedSharedMemory::create(&g.0, 4 << 20).unwrap());
    for k in 0..64u64 {
        reader.construct(format!("stable_{k}"), k * 7).unwrap();
    }
    let writer = ManagedSharedMemory::open(&g.0).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (seg, stop) = (reader.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut found, mut rounds) = (0u64, 0u64);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for k in 0..64u64 {
                        let v = seg.find::<u64>(format!("stable_{k}").as_str()).unwrap();
                        assert_eq!(v, Some(&(k * 7)));
                        // Found or not, never an error, and then with its value.
                        let g = rounds % 64;
                        let churn = seg.find::<u64>(format!("churn_{g}_{k}").as_str()).unwrap();
                        assert!(churn.is_none_or(|&v| v == g * 1000 + k));
                        found += u64::from(churn.is_some());
                    }
                    rounds += 1;
                }
                (found, rounds)
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
    let mut generation = 0u64;
    while std::time::Instant::now() < deadline && generation < 64 {
        for k in 0..64u64 {
            writer
                .construct(format!("churn_{generation}_{k}"), generation * 1000 + k)
                .unwrap();
        }
        generation += 1;
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let err = ManagedSharedMemory::open(&g.0)
        .and_then(|mut third| third.destroy::<u64>("churn_0_0"))
        .unwrap_err();
    assert!(matches!(err, Error::InUse { .. }), "{err}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        let (found, rounds) = r.join().unwrap();
        assert!(rounds > 0);
        eprintln!(
            "reader: {rounds} rounds, {found} churn objects seen; writer: {generation} generations"
        );
    }
    assert_eq!(reader.num_named_objects(), 64 + 64 * generation as usize);
}

// ----- regressions from the second review of the object layer ----------------------------
// Each test names the bug it guards against and asserts the fixed behaviour.

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
    drop(seg);
    let cow = ManagedMappedFile::options()
        .copy_on_write()
        .open(&file)
        .unwrap();
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

/// Fills `seg` with raw allocations until nothing more fits.
fn fill<B: Backing, I: IndexKind>(seg: &ManagedSegment<B, ReadWrite, I>) {
    for sz in [4096usize, 1024, 256, 64, 16, 8] {
        while seg.allocate(sz).is_ok() {}
    }
}

/// Forks a child that runs `f` holding the index lock of `seg` and dies there; waits for it.
fn die_holding_the_index_lock<B: Backing, I: IndexKind>(
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
    let cow = ManagedMappedFile::options()
        .copy_on_write()
        .open(&file)
        .unwrap();
    assert_eq!(cow.find::<u64>("x").unwrap(), Some(&1));
    cow.check().unwrap();
}

/// Attack 9: a heap segment or external buffer made from an image whose segment lock word
/// names a live process (here: this one) waited forever in `from_image` / `open`. The copy
/// is private, so nobody can release that lock: it must be cleared, as copy-on-write does.
#[test]
fn an_image_copied_while_the_segment_was_locked_opens_without_waiting() {
    let dir = TempDir::new();
    let file = dir.join("locked");
    let seg = ManagedMappedFile::create(&file, SIZE).unwrap();
    seg.construct("x", 5u32).unwrap();
    // Read like `cp` of a live segment, or a file left by a process that crashed holding it.
    let image = seg.with_lock(|| std::fs::read(&file).unwrap()).unwrap();
    drop(seg);
    let copy = image.clone();
    let heap = support::within(
        Duration::from_secs(10),
        "from_image of a locked image",
        move || {
            let heap = ManagedHeapMemory::from_image(&copy).map_err(|e| e.to_string())?;
            heap.allocate(64).map_err(|e| e.to_string())?;
            Ok::<_, String>(*heap.find::<u32>("x").map_err(|e| e.to_string())?.unwrap())
        },
    );
    assert_eq!(heap, Ok(5));
    let buffer = support::within(
        Duration::from_secs(10),
        "open of a locked image",
        move || {
            let mut buf = AlignedBuffer::from(&image[..]);
            let seg = ManagedExternalBuffer::open(&mut buf).map_err(|e| e.to_string())?;
            seg.allocate(64).map_err(|e| e.to_string())?;
            Ok::<_, String>(*seg.find::<u32>("x").map_err(|e| e.to_string())?.unwrap())
        },
    );
    assert_eq!(buffer, Ok(5));
}

/// Attack 9: the same with the index lock (an image read inside `atomic_func`): the first
/// lookup in the heap copy waited forever.
#[test]
fn an_image_copied_while_the_index_was_locked_finds_without_waiting() {
    let dir = TempDir::new();
    let file = dir.join("index-locked");
    let seg = ManagedMappedFile::create(&file, SIZE).unwrap();
    seg.construct("x", 5u32).unwrap();
    let image = seg.atomic_func(|| std::fs::read(&file).unwrap()).unwrap();
    drop(seg);
    let found = support::within(
        Duration::from_secs(10),
        "find in a locked image",
        move || {
            let heap = ManagedHeapMemory::from_image(&image).map_err(|e| e.to_string())?;
            Ok::<_, String>(*heap.find::<u32>("x").map_err(|e| e.to_string())?.unwrap())
        },
    );
    assert_eq!(found, Ok(5));
}
