//! Named, unique and anonymous objects on heap and external-buffer segments: everything
//! that needs no OS mapping, so Miri runs this file too (`.ci/miri`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use shmkit_runtime::segment::HeapMemory;
use shmkit_runtime::{
    AlignedBuffer, Anonymous, Error, Exclusive, HashIndex, IndexKind, ManagedExternalBuffer,
    ManagedHeapMemory, ManagedSegment, NamedIndex, NullIndex, ObjectKind, OrderedIndex,
    PositionIndependent, ShmSafe, Unique, MAX_NAME_LEN,
};
use shmkit_test_support::{corrupt, offsets};

const SIZE: usize = 256 * 1024;

type Heap<I> = ManagedSegment<HeapMemory, Exclusive, I>;

/// A plain struct the way the derive will implement the traits.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Point {
    x: u32,
    y: u32,
}
// SAFETY: two `u32`s: any bytes are a valid value.
unsafe impl ShmSafe for Point {
    const ALL_BIT_PATTERNS_VALID: bool = true;
}
// SAFETY: two `u32`s.
unsafe impl PositionIndependent for Point {}

/// Counts its drops in a static, to see which elements were dropped.
#[derive(Debug)]
#[repr(C)]
struct Counted(u64);
static DROPS: AtomicUsize = AtomicUsize::new(0);
impl Drop for Counted {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::Relaxed);
    }
}
// SAFETY: one `u64`; its drop touches only a static of this process.
unsafe impl ShmSafe for Counted {}

/// Tests that count drops run one at a time (the counter is shared).
static DROP_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn heap() -> ManagedHeapMemory {
    ManagedHeapMemory::new(SIZE).unwrap()
}

// ----- named objects ---------------------------------------------------------------------

#[test]
fn construct_find_and_destroy_a_named_object() {
    let mut seg = heap();
    assert_eq!(*seg.construct("answer", 42u64).unwrap(), 42);
    assert_eq!(seg.find::<u64>("answer").unwrap(), Some(&42));
    assert_eq!(seg.find_slice::<u64>("answer").unwrap(), Some(&[42][..]));
    assert_eq!(seg.find::<u64>("question").unwrap(), None);
    assert_eq!(seg.num_named_objects(), 1);

    assert!(seg.destroy::<u64>("answer").unwrap());
    assert_eq!(seg.find::<u64>("answer").unwrap(), None);
    assert!(
        !seg.destroy::<u64>("answer").unwrap(),
        "nothing left to destroy"
    );
    assert_eq!(seg.num_named_objects(), 0);
    assert!(seg.all_memory_deallocated());
    assert!(seg.check_sanity());
}

#[test]
fn a_duplicate_name_fails_and_leaves_the_existing_object_untouched() {
    let seg = heap();
    seg.construct("p", Point { x: 1, y: 2 }).unwrap();
    let free = seg.free_memory();
    let err = seg.construct("p", Point { x: 9, y: 9 }).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert!(
        err.to_string().contains("\"p\""),
        "the error names the object: {err}"
    );
    assert_eq!(seg.find::<Point>("p").unwrap(), Some(&Point { x: 1, y: 2 }));
    // Even as another type, and as an array: the name is taken.
    assert!(matches!(
        seg.construct_array("p", 3, 0u8),
        Err(Error::AlreadyExists { .. })
    ));
    assert_eq!(seg.free_memory(), free, "a failed construct costs nothing");
}

#[test]
fn names_are_checked() {
    let seg = heap();
    for bad in [String::new(), "x".repeat(MAX_NAME_LEN + 1)] {
        let err = seg.construct(bad.as_str(), 1u8).unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{err}");
        assert!(matches!(
            seg.find::<u8>(&bad),
            Err(Error::InvalidName { .. })
        ));
    }
    let longest = "n".repeat(MAX_NAME_LEN);
    seg.construct(&longest, 7u8).unwrap();
    seg.construct("grüße, 世界", 8u8).unwrap();
    assert_eq!(seg.find::<u8>(longest).unwrap(), Some(&7));
    assert_eq!(seg.find::<u8>("grüße, 世界").unwrap(), Some(&8));
}

#[test]
fn the_wrong_type_is_a_type_mismatch_naming_both_types() {
    let mut seg = heap();
    seg.construct("x", 5u64).unwrap();
    let err = seg.find::<u32>("x").unwrap_err();
    match &err {
        Error::TypeMismatch {
            what,
            expected,
            found,
        } => {
            assert!(what.contains("\"x\""));
            assert_eq!(expected, "u32");
            assert_eq!(found, "u64");
        }
        other => panic!("expected a type mismatch, got {other}"),
    }
    assert!(err.to_string().contains("u32") && err.to_string().contains("u64"));
    assert!(matches!(
        seg.destroy::<i64>("x"),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        seg.find_or_construct("x", || Point { x: 0, y: 0 }),
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!(
        seg.find::<u64>("x").unwrap(),
        Some(&5),
        "still there, unchanged"
    );
}

#[test]
fn find_mut_changes_the_object_in_place() {
    let mut seg = heap();
    seg.construct("hits", 0u64).unwrap();
    for _ in 0..3 {
        *seg.find_mut::<u64>("hits").unwrap().unwrap().get_mut() += 1;
    }
    seg.construct_array("xs", 3, 1u32).unwrap();
    seg.find_slice_mut::<u32>("xs")
        .unwrap()
        .unwrap()
        .get_mut_slice()[1] = 5;
    assert_eq!(seg.find::<u64>("hits").unwrap(), Some(&3));
    assert_eq!(seg.find_slice::<u32>("xs").unwrap(), Some(&[1, 5, 1][..]));
}

// ----- arrays ------------------------------------------------------------------------------

#[test]
fn arrays_from_a_value_a_closure_and_an_iterator() {
    let seg = heap();
    assert_eq!(seg.construct_array("fill", 4, 7u32).unwrap(), &[7; 4]);
    assert_eq!(
        seg.construct_array_with("squares", 5, |i| (i * i) as u64)
            .unwrap(),
        &[0, 1, 4, 9, 16]
    );
    let points = (0..3).map(|i| Point { x: i, y: 2 * i });
    assert_eq!(seg.construct_from_iter("points", points).unwrap().len(), 3);
    assert_eq!(
        seg.construct_from_iter("empty", Vec::<u8>::new()).unwrap(),
        &[]
    );

    assert_eq!(seg.find_slice::<u32>("fill").unwrap().unwrap().len(), 4);
    assert_eq!(
        seg.find_slice::<Point>("points").unwrap().unwrap()[2],
        Point { x: 2, y: 4 }
    );
    assert_eq!(seg.find_slice::<u8>("empty").unwrap(), Some(&[][..]));
    // `find` is for single values: an array says so instead of handing out one element.
    let err = seg.find::<u32>("fill").unwrap_err();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
    assert!(err.to_string().contains("array of 4"), "{err}");
}

#[test]
fn a_panic_while_building_element_k_drops_elements_before_k_and_leaks_nothing() {
    let _serial = DROP_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let mut seg = heap();
    let free = seg.free_memory();
    DROPS.store(0, Ordering::Relaxed);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        seg.construct_array_with("boom", 6, |i| {
            assert!(i != 3, "element 3 fails");
            Counted(i as u64)
        })
    }));
    assert!(panicked.is_err());
    assert_eq!(
        DROPS.load(Ordering::Relaxed),
        3,
        "elements 0, 1 and 2 were dropped"
    );
    assert_eq!(
        seg.find_slice::<Counted>("boom").unwrap().map(<[_]>::len),
        None
    );
    assert_eq!(seg.num_named_objects(), 0);
    // The entry's block is retired (a lookup without the lock may have been reading it)
    // until the segment is alone with `&mut`.
    seg.shrink_to_fit_indexes().unwrap();
    assert_eq!(seg.free_memory(), free);
    assert!(seg.all_memory_deallocated());
    // The name is free again, and the lock was released by the unwinding.
    assert_eq!(
        seg.construct_array_with("boom", 2, |i| Counted(i as u64))
            .unwrap()
            .len(),
        2
    );
}

/// An iterator that claims more elements than it has.
struct Liar(u64);
impl Iterator for Liar {
    type Item = Counted;
    fn next(&mut self) -> Option<Counted> {
        (self.0 < 2).then(|| {
            self.0 += 1;
            Counted(self.0)
        })
    }
}
impl ExactSizeIterator for Liar {
    fn len(&self) -> usize {
        5
    }
}

#[test]
fn a_short_iterator_or_a_full_segment_undoes_the_construction() {
    let _serial = DROP_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let mut seg = heap();
    DROPS.store(0, Ordering::Relaxed);
    let err = seg.construct_from_iter("liar", Liar(0)).unwrap_err();
    assert!(matches!(err, Error::IteratorTooShort { .. }), "{err}");
    assert!(err.to_string().contains("after 2 of 5"), "{err}");
    assert_eq!(DROPS.load(Ordering::Relaxed), 2);

    let err = seg.construct_array("huge", SIZE, 0u64).unwrap_err();
    assert!(matches!(err, Error::OutOfMemory { .. }), "{err}");
    let err = seg
        .construct_array("absurd", usize::MAX / 2, 0u64)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidSize { .. }), "{err}");
    assert_eq!(seg.num_named_objects(), 0);
    // Retired blocks (the liar's entry) go back once the segment is alone with `&mut`.
    seg.shrink_to_fit_indexes().unwrap();
    assert!(seg.all_memory_deallocated());
}

#[test]
fn destroying_drops_every_element() {
    let _serial = DROP_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let mut seg = heap();
    DROPS.store(0, Ordering::Relaxed);
    seg.construct_array_with("c", 4, |i| Counted(i as u64))
        .unwrap();
    let p: *const Counted = seg.construct_anonymous(Counted(9)).unwrap();
    assert!(seg.destroy::<Counted>("c").unwrap());
    assert_eq!(DROPS.load(Ordering::Relaxed), 4);
    seg.destroy_ptr(p).unwrap();
    assert_eq!(DROPS.load(Ordering::Relaxed), 5);
    assert!(seg.all_memory_deallocated());
}

// ----- find_or_construct, unique, anonymous ----------------------------------------------

/// Threads race to `find` the same object (counting initialiser runs in the counter they
/// get); exactly one initialiser runs and every thread gets the same address.
fn exactly_one_initialiser_among_racing_threads(
    find: fn(&ManagedHeapMemory, &AtomicUsize) -> usize,
) {
    let seg = Arc::new(heap());
    let runs = Arc::new(AtomicUsize::new(0));
    let threads = if cfg!(miri) { 3 } else { 8 };
    let barrier = Arc::new(Barrier::new(threads));
    let addrs: Vec<usize> = (0..threads)
        .map(|_| {
            let (seg, runs, barrier) = (seg.clone(), runs.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                find(&seg, &runs)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert_eq!(runs.load(Ordering::Relaxed), 1);
    assert!(addrs.windows(2).all(|w| w[0] == w[1]), "{addrs:x?}");
    assert_eq!(seg.num_named_objects(), 1);
}

#[test]
fn find_or_construct_runs_exactly_one_initialiser_among_racing_threads() {
    exactly_one_initialiser_among_racing_threads(|seg, runs| {
        let r = seg
            .find_or_construct("shared", || {
                runs.fetch_add(1, Ordering::Relaxed);
                Point { x: 7, y: 8 }
            })
            .unwrap();
        std::ptr::from_ref(r).addr()
    });
}

#[test]
fn find_or_construct_array_runs_exactly_one_initialiser_among_racing_threads() {
    exactly_one_initialiser_among_racing_threads(|seg, runs| {
        let r = seg
            .find_or_construct_array_with("shared", 4, |i| {
                if i == 0 {
                    runs.fetch_add(1, Ordering::Relaxed);
                }
                i as u32 * 10
            })
            .unwrap();
        assert_eq!(r, &[0, 10, 20, 30]);
        r.as_ptr().addr()
    });
}

#[test]
fn find_or_construct_array_finds_an_existing_array_of_any_length() {
    let seg = heap();
    let made = seg.find_or_construct_array("row", 3, 1u16).unwrap();
    assert_eq!(made, &[1, 1, 1]);
    // Found, not built again: the length and values are those of the existing array.
    let found = seg.find_or_construct_array("row", 10, 9u16).unwrap();
    assert_eq!(found.as_ptr(), made.as_ptr());
    assert_eq!(found, &[1, 1, 1]);
    // Another element type is a mismatch; unique arrays work the same way.
    assert!(matches!(
        seg.find_or_construct_array("row", 3, 0u32),
        Err(Error::TypeMismatch { .. })
    ));
    let u = seg
        .find_or_construct_array(Unique, 2, Point { x: 1, y: 1 })
        .unwrap();
    assert_eq!(u.len(), 2);
    assert_eq!(
        seg.find_or_construct_array(Unique, 5, Point { x: 0, y: 0 })
            .unwrap(),
        u
    );
}

#[test]
fn find_or_construct_may_construct_inside_its_initialiser() {
    let seg = heap();
    let outer = seg
        .find_or_construct("outer", || {
            // The index lock is re-entrant for its holder.
            let inner = seg.construct("inner", 5u32).unwrap();
            assert_eq!(seg.find::<u32>("inner").unwrap(), Some(inner));
            u64::from(*inner) + 1
        })
        .unwrap();
    assert_eq!(*outer, 6);
    // Constructing the name being built, from inside its own initialiser, is refused.
    let err = seg
        .construct_array_with("self", 1, |_| {
            matches!(seg.construct("self", 1u8), Err(Error::AlreadyExists { .. }))
        })
        .unwrap();
    assert_eq!(err, &[true]);
}

#[derive(Debug, PartialEq)]
#[repr(C)]
struct Config {
    workers: u32,
}
// SAFETY: one `u32`.
unsafe impl ShmSafe for Config {}

#[test]
fn unique_instances_are_keyed_by_type() {
    let mut seg = heap();
    seg.construct_unique(Config { workers: 4 }).unwrap();
    assert!(matches!(
        seg.construct_unique(Config { workers: 5 }),
        Err(Error::AlreadyExists { .. })
    ));
    seg.construct(Unique, 3u64).unwrap();
    // A named object of the same type is something else.
    seg.construct("cfg", Config { workers: 1 }).unwrap();
    assert_eq!(
        seg.find_unique::<Config>().unwrap(),
        Some(&Config { workers: 4 })
    );
    assert_eq!(seg.find::<u64>(Unique).unwrap(), Some(&3));
    assert_eq!(seg.find_unique::<u32>().unwrap(), None);
    assert_eq!((seg.num_unique_objects(), seg.num_named_objects()), (2, 1));
    assert_eq!(
        *seg.find_or_construct(Unique, || Config { workers: 0 })
            .unwrap(),
        Config { workers: 4 }
    );

    assert!(seg.destroy_unique::<Config>().unwrap());
    assert!(!seg.destroy_unique::<Config>().unwrap());
    assert_eq!(seg.find_unique::<Config>().unwrap(), None);
    assert_eq!(seg.num_unique_objects(), 1);
}

#[test]
fn anonymous_instances_are_never_found_only_destroyed_by_pointer() {
    let mut seg = heap();
    let a: *const u64 = seg.construct_anonymous(11u64).unwrap();
    let b: *const [u64] = seg.construct_array(Anonymous, 3, 12u64).unwrap();
    assert_eq!((seg.num_named_objects(), seg.num_unique_objects()), (0, 0));
    assert_eq!(seg.named_objects().unwrap().count(), 0);

    // Not an object: a stack value, an element other than the first, the wrong type.
    let local = 5u64;
    for bad in [&raw const local, b.cast::<u64>().wrapping_add(1)] {
        let err = seg.destroy_ptr(bad).unwrap_err();
        assert!(matches!(err, Error::NotAnObject { .. }), "{err}");
    }
    assert!(matches!(
        seg.destroy_ptr(a.cast::<i64>()),
        Err(Error::NotAnObject { .. })
    ));
    seg.destroy_ptr(a).unwrap();
    assert!(
        matches!(seg.destroy_ptr(a), Err(Error::NotAnObject { .. })),
        "destroyed twice"
    );
    seg.destroy_ptr(b.cast::<u64>()).unwrap();
    assert!(seg.all_memory_deallocated());
}

/// The reference's example: name, kind and length of a named, a unique and an anonymous
/// object, then `destroy_ptr` on each.
#[test]
fn instance_name_kind_and_length_as_in_the_reference() {
    #[repr(C)]
    #[derive(Clone, Default)]
    struct MyClass(u8);
    // SAFETY: one byte.
    unsafe impl ShmSafe for MyClass {}

    let mut seg = heap();
    let named: *const MyClass = &seg.construct_array("Object name", 1, MyClass(0)).unwrap()[0];
    let unique: *const MyClass = &seg.construct_array(Unique, 2, MyClass(0)).unwrap()[0];
    let anon: *const MyClass = &seg.construct_array(Anonymous, 3, MyClass(0)).unwrap()[0];
    // SAFETY: all three are live objects of `seg`, which is not changed while they are read.
    let (n, u, a) = unsafe { (&*named, &*unique, &*anon) };

    assert_eq!(seg.instance_name(n).as_deref(), Some("Object name"));
    assert_eq!(
        seg.instance_name(u).as_deref(),
        Some(std::any::type_name::<MyClass>())
    );
    assert_eq!(seg.instance_name(a).as_deref(), None);
    assert_eq!(seg.instance_kind(n), Some(ObjectKind::Named));
    assert_eq!(seg.instance_kind(u), Some(ObjectKind::Unique));
    assert_eq!(seg.instance_kind(a), Some(ObjectKind::Anonymous));
    assert_eq!(seg.instance_length(n), Some(1));
    assert_eq!(seg.instance_length(u), Some(2));
    assert_eq!(seg.instance_length(a), Some(3));
    // Not an object of the segment.
    let local = MyClass(0);
    assert_eq!(seg.instance_kind(&local), None);

    for p in [named, unique, anon] {
        seg.destroy_ptr(p).unwrap();
    }
    assert!(seg.all_memory_deallocated());
}

/// A field after padding is not an object: the bytes before it are the padding
/// (uninitialised), which the lookup must never read (Miri checks that it does not).
#[test]
fn a_field_after_padding_is_not_an_object_of_any_kind() {
    #[repr(C)]
    struct Padded {
        a: u8,
        b: u64,
    }
    // SAFETY: a byte and a `u64`; no pointers.
    unsafe impl ShmSafe for Padded {}

    let mut seg = heap();
    let named: *const Padded = seg.construct("padded", Padded { a: 1, b: 2 }).unwrap();
    let unique: *const Padded = seg.construct(Unique, Padded { a: 3, b: 4 }).unwrap();
    let anon: *const Padded = seg.construct_anonymous(Padded { a: 5, b: 6 }).unwrap();
    for p in [named, unique, anon] {
        // SAFETY: a live object of `seg`, which is not changed while it is read.
        let obj = unsafe { &*p };
        assert_eq!((obj.a % 2, obj.b % 2), (1, 0));
        assert_eq!(seg.instance_name(&obj.b), None);
        assert_eq!(seg.instance_kind(&obj.b), None);
        assert_eq!(seg.instance_length(&obj.b), None);
        assert!(seg.instance_kind(obj).is_some());
        let err = seg.destroy_ptr(&raw const obj.b).unwrap_err();
        assert!(matches!(err, Error::NotAnObject { .. }), "{err}");
    }
    // SAFETY: as above.
    let n = unsafe { &*named };
    assert_eq!(seg.instance_name(n).as_deref(), Some("padded"));
    for p in [named, unique, anon] {
        seg.destroy_ptr(p).unwrap();
    }
    assert!(seg.all_memory_deallocated());
}

// ----- atomic_func, counts, iteration, reserve -------------------------------------------

#[test]
fn atomic_func_blocks_object_operations_of_others_but_not_raw_allocation() {
    let seg = Arc::new(heap());
    let (inside_tx, inside_rx) = std::sync::mpsc::channel();
    let (alloc_tx, alloc_rx) = std::sync::mpsc::channel();
    let finished = Arc::new(AtomicUsize::new(0));
    let worker = {
        let (seg, finished) = (seg.clone(), finished.clone());
        std::thread::spawn(move || {
            inside_rx.recv().unwrap();
            // Raw allocation proceeds while the other thread is inside atomic_func...
            let p = seg.allocate(64).unwrap();
            alloc_tx.send(()).unwrap();
            // SAFETY: allocated just above, not used afterwards.
            unsafe { seg.deallocate(p).unwrap() };
            // ...but finding waits until it returns.
            let found = seg.find::<u64>("a").unwrap().copied();
            (found, finished.load(Ordering::SeqCst))
        })
    };
    seg.atomic_func(|| {
        seg.construct("a", 1u64).unwrap();
        inside_tx.send(()).unwrap();
        alloc_rx.recv().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        // Object operations of this thread work inside.
        assert_eq!(seg.find::<u64>("a").unwrap(), Some(&1));
        seg.construct("b", 2u64).unwrap();
        finished.store(1, Ordering::SeqCst);
    })
    .unwrap();
    let (found, finished_when_found) = worker.join().unwrap();
    assert_eq!(found, Some(1));
    assert_eq!(
        finished_when_found, 1,
        "the find ran only after atomic_func"
    );
}

fn counts_and_iteration<I: NamedIndex>(seg: &Heap<I>, n: usize) {
    for i in 0..n {
        seg.construct(format!("obj_{i}").as_str(), i as u64)
            .unwrap();
    }
    seg.construct_array("arr", 3, Point { x: 1, y: 1 }).unwrap();
    seg.construct_unique(Config { workers: 2 }).unwrap();
    assert_eq!(seg.num_named_objects(), n + 1);
    assert_eq!(seg.num_unique_objects(), 1);

    let named: Vec<_> = seg.named_objects().unwrap().collect();
    assert_eq!(named.len(), n + 1);
    for info in &named {
        assert_eq!(info.kind, ObjectKind::Named);
        if info.name == "arr" {
            assert_eq!(
                (info.length, info.type_name.as_str()),
                (3, std::any::type_name::<Point>())
            );
            continue;
        }
        let i: u64 = info.name["obj_".len()..].parse().unwrap();
        let found = seg.find::<u64>(&info.name).unwrap().unwrap();
        assert_eq!(*found, i);
        assert_eq!(
            info.address.as_ptr().cast_const(),
            std::ptr::from_ref(found).cast::<u8>()
        );
        assert_eq!((info.length, info.type_name.as_str()), (1, "u64"));
    }
    let unique: Vec<_> = seg.unique_objects().unwrap().collect();
    assert_eq!(unique.len(), 1);
    assert_eq!(unique[0].name, std::any::type_name::<Config>());
    assert_eq!(unique[0].kind, ObjectKind::Unique);
}

#[test]
fn counts_and_iteration_agree_hash() {
    counts_and_iteration(&heap(), if cfg!(miri) { 20 } else { 500 });
}

#[test]
fn counts_and_iteration_agree_and_iteration_is_ordered_ordered() {
    let seg = ManagedHeapMemory::options()
        .index::<OrderedIndex>()
        .create(SIZE)
        .unwrap();
    counts_and_iteration(&seg, if cfg!(miri) { 20 } else { 500 });
    let names: Vec<String> = seg.named_objects().unwrap().map(|i| i.name).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}

#[test]
fn reserve_named_objects_prepares_the_hash_buckets() {
    let n = if cfg!(miri) { 40 } else { 1000 };
    let seg = heap();
    let before = seg.free_memory();
    seg.reserve_named_objects(n).unwrap();
    seg.reserve_unique_objects(4).unwrap();
    let reserved = before - seg.free_memory();
    assert!(reserved >= n * 8, "{reserved} bytes for {n} buckets");
    // The first object of a type also records the type.
    seg.construct("r0000", 0u64).unwrap();
    let free = seg.free_memory();
    for i in 1..n {
        seg.construct(format!("r{i:04}").as_str(), 0u64).unwrap();
    }
    // Every construct cost one entry block, no bucket growth: all entries are equal.
    let per_object = (free - seg.free_memory()) as f64 / (n - 1) as f64;
    assert_eq!(per_object, 56.0, "{per_object} bytes each");
    // The ordered index has nothing to reserve: a no-op.
    ManagedHeapMemory::options()
        .index::<OrderedIndex>()
        .create(SIZE)
        .unwrap()
        .reserve_named_objects(10)
        .unwrap();
}

// ----- Boost's named allocation test -------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Order {
    Direct,
    Reverse,
    Mixed,
}

/// Constructs named objects until the segment is full, checks what instance information,
/// counts and iteration say, destroys them in `order`, and checks that nothing is left.
fn fill_and_empty<I: NamedIndex>(seg: &mut Heap<I>, order: Order) {
    let mut names = Vec::new();
    loop {
        let name = format!("named_object_{}", names.len());
        match seg.construct_array(name.as_str(), names.len() % 7 + 1, names.len() as u64) {
            Ok(obj) => {
                assert_eq!(seg.instance_name(&obj[0]).as_deref(), Some(name.as_str()));
                assert_eq!(seg.instance_kind(&obj[0]), Some(ObjectKind::Named));
                assert_eq!(seg.instance_length(&obj[0]), Some(names.len() % 7 + 1));
                names.push(name);
            }
            Err(Error::OutOfMemory { .. }) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(names.len() > 20, "only {} objects fit", names.len());
    assert_eq!(seg.num_named_objects(), names.len());
    let listed: std::collections::HashSet<String> =
        seg.named_objects().unwrap().map(|i| i.name).collect();
    assert_eq!(listed.len(), names.len());
    assert!(names.iter().all(|n| listed.contains(n)));

    let mut order_of: Vec<usize> = (0..names.len()).collect();
    match order {
        Order::Direct => {}
        Order::Reverse => order_of.reverse(),
        Order::Mixed => order_of.sort_by_key(|i| (i % 2, *i)),
    }
    for (k, &i) in order_of.iter().enumerate() {
        assert!(
            seg.destroy::<u64>(names[i].as_str()).unwrap(),
            "{}",
            names[i]
        );
        assert_eq!(seg.num_named_objects(), names.len() - k - 1);
    }
    assert!(seg.all_memory_deallocated(), "{order:?}");
    assert!(seg.check_sanity());
}

fn named_allocation_test<I: NamedIndex>() {
    let size = if cfg!(miri) { 8 * 1024 } else { 64 * 1024 };
    let mut seg = ManagedHeapMemory::options()
        .index::<I>()
        .create(size)
        .unwrap();
    for order in [Order::Direct, Order::Reverse, Order::Mixed] {
        fill_and_empty(&mut seg, order);
    }
}

#[test]
fn boost_named_allocation_test_hash() {
    named_allocation_test::<HashIndex>();
}

#[test]
fn boost_named_allocation_test_ordered() {
    named_allocation_test::<OrderedIndex>();
}

// ----- index kinds, buffers -----------------------------------------------------------------

#[test]
fn a_null_index_segment_holds_anonymous_objects_only() {
    let mut seg = ManagedHeapMemory::options()
        .index::<NullIndex>()
        .create(SIZE)
        .unwrap();
    let p: *const u32 = seg.construct(Anonymous, 3u32).unwrap();
    assert_eq!(
        // SAFETY: a live object of `seg`.
        seg.instance_kind(unsafe { &*p }),
        Some(ObjectKind::Anonymous)
    );
    assert_eq!(seg.num_named_objects(), 0);
    seg.destroy_ptr(p).unwrap();
    assert!(seg.all_memory_deallocated());
}

fn reopen_as<I: IndexKind>(image: &AlignedBuffer) -> Result<(), Error> {
    ManagedHeapMemory::options()
        .index::<I>()
        .from_image(image)
        .map(drop)
}

#[test]
fn opening_with_another_index_kind_is_an_index_mismatch() {
    let mut seg = heap();
    seg.construct("x", 1u8).unwrap();
    let image = AlignedBuffer::from_image(seg.image());
    let err = reopen_as::<OrderedIndex>(&image).unwrap_err();
    assert!(matches!(err, Error::IndexMismatch { .. }), "{err}");
    assert!(err.to_string().contains("hash index") && err.to_string().contains("ordered index"));
    assert!(matches!(
        reopen_as::<NullIndex>(&image),
        Err(Error::IndexMismatch { .. })
    ));
    reopen_as::<HashIndex>(&image).unwrap();
}

#[test]
fn objects_survive_copying_the_segment_bytes() {
    let mut a = AlignedBuffer::new(SIZE);
    {
        let seg = ManagedExternalBuffer::create(&mut a).unwrap();
        seg.construct_array_with("squares", 10, |i| (i * i) as u32)
            .unwrap();
        seg.construct_unique(Point { x: 3, y: 4 }).unwrap();
    }
    let mut b = AlignedBuffer::from_image(&a);
    let mut seg = ManagedExternalBuffer::open(&mut b).unwrap();
    assert_eq!(seg.find_slice::<u32>("squares").unwrap().unwrap()[9], 81);
    assert_eq!(
        seg.find_unique::<Point>().unwrap(),
        Some(&Point { x: 3, y: 4 })
    );
    assert!(seg.destroy::<u32>("squares").unwrap());
    drop(seg);
    // A read-only view of the original finds without the lock.
    let ro = ManagedExternalBuffer::options()
        .read_only()
        .open(&a)
        .unwrap();
    assert_eq!(ro.find_slice::<u32>("squares").unwrap().unwrap().len(), 10);
    assert_eq!(ro.num_named_objects(), 1);
    assert_eq!(ro.named_objects().unwrap().count(), 1);
    let ordered = ManagedExternalBuffer::options()
        .index::<OrderedIndex>()
        .open(&mut a);
    assert!(matches!(ordered, Err(Error::IndexMismatch { .. })));
}

// ----- both indexes against a model ------------------------------------------------------

/// Random constructs and destroys on a small pool of names, checked against a `BTreeMap`:
/// finds, counts and iteration (in name order for the ordered index) agree throughout.
fn matches_a_model<I: NamedIndex>(ordered: bool) {
    let (pool, ops) = if cfg!(miri) { (40, 300) } else { (300, 6000) };
    let mut seg = ManagedHeapMemory::options()
        .index::<I>()
        .create(SIZE)
        .unwrap();
    let mut model = std::collections::BTreeMap::new();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for op in 0..ops {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let name = format!("n{}", x % pool);
        if model.remove(&name).is_some() {
            assert!(seg.destroy::<u64>(name.as_str()).unwrap(), "{name}");
        } else {
            seg.construct(name.as_str(), op).unwrap();
            model.insert(name, op);
        }
        if op % 97 == 0 || op == ops - 1 {
            for k in 0..pool {
                let name = format!("n{k}");
                assert_eq!(seg.find::<u64>(name.as_str()).unwrap(), model.get(&name));
            }
            assert_eq!(seg.num_named_objects(), model.len());
            let mut listed: Vec<String> = seg.named_objects().unwrap().map(|i| i.name).collect();
            if !ordered {
                listed.sort();
            }
            assert!(listed.iter().eq(model.keys()), "iteration after op {op}");
        }
    }
    for name in model.keys() {
        assert!(seg.destroy::<u64>(name.as_str()).unwrap());
    }
    assert!(seg.all_memory_deallocated());
}

#[test]
fn random_constructs_and_destroys_match_a_model_hash() {
    matches_a_model::<HashIndex>(false);
}

#[test]
fn random_constructs_and_destroys_match_a_model_ordered() {
    matches_a_model::<OrderedIndex>(true);
}

// ----- small segments ----------------------------------------------------------------------

#[test]
fn a_1000_byte_segment_holds_a_few_named_objects() {
    // Boost's examples create segments of 1,000 bytes.
    let mut seg = ManagedHeapMemory::new(1000).unwrap();
    seg.construct("answer", 42u32).unwrap();
    seg.construct_array("row", 4, 7u16).unwrap();
    seg.construct("point", Point { x: 1, y: 2 }).unwrap();
    assert_eq!(seg.find::<u32>("answer").unwrap(), Some(&42));
    assert_eq!(seg.find_slice::<u16>("row").unwrap(), Some(&[7u16; 4][..]));
    assert_eq!(
        seg.find::<Point>("point").unwrap(),
        Some(&Point { x: 1, y: 2 })
    );
    assert!(seg.destroy::<u32>("answer").unwrap());
    assert!(seg.destroy::<u16>("row").unwrap());
    assert!(seg.destroy::<Point>("point").unwrap());
    assert_eq!(seg.num_named_objects(), 0);
    seg.check().unwrap();
}

#[test]
fn the_smallest_segment_size_is_named_in_the_error() {
    let min = shmkit_runtime::MIN_SEGMENT_SIZE;
    assert!(min <= 1024, "{min}");
    let seg = ManagedHeapMemory::new(min).unwrap();
    seg.construct("x", 1u64).unwrap();
    let err = ManagedHeapMemory::new(min - 1).unwrap_err();
    assert!(
        matches!(err, Error::InvalidSize { size, ref reason }
            if size == min as u64 - 1 && reason.contains(&min.to_string())),
        "{err}"
    );
}

// ----- shrinking the indexes ---------------------------------------------------------------

/// Boost's segment-manager test: reserve index room, shrink the indexes, and nothing is
/// allocated any more; then the same after objects came and went.
/// `buckets`: whether the index keeps room beyond its entries (the hash index does).
fn shrink_to_fit_indexes_frees_what_is_unused<I: NamedIndex>(buckets: bool) {
    let n = if cfg!(miri) { 12 } else { 100 };
    let mut seg = ManagedHeapMemory::options()
        .index::<I>()
        .create(SIZE)
        .unwrap();
    seg.reserve_named_objects(n).unwrap();
    seg.reserve_unique_objects(n).unwrap();
    seg.shrink_to_fit_indexes().unwrap();
    assert!(seg.all_memory_deallocated());

    let names: Vec<String> = (0..n).map(|i| format!("obj{i}")).collect();
    for name in &names {
        seg.construct(name.as_str(), 0u32).unwrap();
    }
    seg.construct_unique(1u8).unwrap();
    // A few objects left: the buckets shrink to what they need, and the objects stay.
    for name in &names[3..] {
        assert!(seg.destroy::<u32>(name.as_str()).unwrap());
    }
    let before = seg.free_memory();
    seg.shrink_to_fit_indexes().unwrap();
    assert_eq!(seg.free_memory() > before, buckets);
    for name in &names[..3] {
        assert_eq!(seg.find::<u32>(name.as_str()).unwrap(), Some(&0));
    }
    assert_eq!(seg.find_unique::<u8>().unwrap(), Some(&1));
    for name in &names[..3] {
        assert!(seg.destroy::<u32>(name.as_str()).unwrap());
    }
    assert!(seg.destroy_unique::<u8>().unwrap());
    seg.shrink_to_fit_indexes().unwrap();
    assert!(seg.all_memory_deallocated());
    seg.check().unwrap();
    // The index tables come back with the next object.
    seg.construct("again", 2u64).unwrap();
    assert_eq!(seg.find::<u64>("again").unwrap(), Some(&2));
}

#[test]
fn shrink_to_fit_indexes_frees_what_is_unused_hash() {
    shrink_to_fit_indexes_frees_what_is_unused::<HashIndex>(true);
}

#[test]
fn shrink_to_fit_indexes_frees_what_is_unused_ordered() {
    shrink_to_fit_indexes_frees_what_is_unused::<OrderedIndex>(false);
}

// ----- regressions from the second review of the object layer ----------------------------
// Each test names the bug it guards against and asserts the fixed behaviour.

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
    let seg = ManagedHeapMemory::new(1 << 16).unwrap();
    let w = forged_anonymous_words();
    let arr = seg.construct_from_iter("arr", w.clone()).unwrap();
    let fake = arr[6..].as_ptr();
    let mut seg = seg;
    let r = seg.destroy_ptr::<u64>(fake);
    assert!(matches!(r, Err(Error::NotAnObject { .. })), "{r:?}");
    seg.check().unwrap();
    assert_eq!(seg.find_slice::<u64>("arr").unwrap(), Some(&w[..]));
    assert_eq!(seg.num_named_objects(), 1);
}

/// Bug 1 (HIGH), the other side: genuine anonymous objects are still destroyed through
/// their pointer, on every index kind.
#[test]
fn destroy_ptr_still_destroys_genuine_anonymous_objects() {
    fn run<I: IndexKind>(mut seg: ManagedSegment<HeapMemory, Exclusive, I>) {
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
    run(ManagedHeapMemory::new(1 << 20).unwrap());
    run(ManagedHeapMemory::options()
        .index::<OrderedIndex>()
        .create(1 << 20)
        .unwrap());
    run(ManagedHeapMemory::options()
        .index::<NullIndex>()
        .create(1 << 20)
        .unwrap());
}

/// Bug 2 (HIGH): `reserve_named_objects(usize::MAX)` overflowed the table size (a panic in
/// debug builds, a tiny table claiming 2^61 slots in release builds). It is now refused.
#[test]
fn reserving_more_objects_than_the_segment_holds_is_refused() {
    let seg = ManagedHeapMemory::new(1 << 16).unwrap();
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

/// Bug 4 (MEDIUM): `instance_name` (and kind, length) accepted a forged header inside an
/// array of atomics and returned a `&str` into memory safe code can change. Forged
/// entries are now refused and names are returned as copies.
#[test]
fn instance_functions_refuse_forged_entries() {
    let seg = ManagedHeapMemory::new(1 << 16).unwrap();
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
#[cfg_attr(
    miri,
    ignore = "22,000 locked operations on two threads: hours under Miri"
)]
fn instance_functions_take_the_index_lock() {
    let seg = ManagedHeapMemory::options()
        .index::<OrderedIndex>()
        .create(1 << 20)
        .unwrap();
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
#[cfg_attr(miri, ignore = "a wall-clock deadlock detector, too slow under Miri")]
fn object_operations_under_the_allocator_lock_are_refused() {
    let seg = std::sync::Arc::new(ManagedHeapMemory::new(1 << 20).unwrap());
    seg.construct("x", 1u64).unwrap();
    let bar = std::sync::Arc::new(std::sync::Barrier::new(2));
    let (s1, b1) = (seg.clone(), bar.clone());
    let t1 = std::thread::spawn(move || {
        s1.with_lock(|| {
            b1.wait();
            let found = s1.find::<u64>("x");
            assert!(
                matches!(found, Err(Error::LockReentered { .. })),
                "{found:?}"
            );
            let made = s1.construct("y", 2u64);
            assert!(matches!(made, Err(Error::LockReentered { .. })), "{made:?}");
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

/// Bug 9 (LOW): `named_objects()` reserved as many elements as the count word said, and
/// panicked (capacity overflow) on a corrupted count.
#[test]
fn listing_objects_with_a_corrupt_count_does_not_panic() {
    let seg = ManagedHeapMemory::options()
        .index::<OrderedIndex>()
        .create(1 << 16)
        .unwrap();
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

/// Issue 8 (attack8): an entry's count forged to reach past its block, in an external
/// buffer (the heap-image variant is in `tests/segment/forged.rs`). A cold open checks
/// every entry against its block, so no slice over other blocks is ever handed out.
#[test]
#[cfg_attr(miri, ignore = "the image leaves through a memfd")]
fn an_entry_count_beyond_its_block_is_refused_in_an_external_buffer() {
    let mut seg = heap();
    seg.construct_array("a", 8, 0xAAu8).unwrap();
    let mut bytes = shmkit_test_support::internals::image_bytes(&mut seg);
    shmkit_test_support::internals::forge_entry_count(&mut bytes, 8, 4096);
    let mut buf = AlignedBuffer::from_image(&bytes[..]);
    let err = ManagedExternalBuffer::open(&mut buf).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupted { reason, .. } if reason.contains("past its block")),
        "{err:?}"
    );
}

/// Padded values: a `(u8, u64)` stores 7 bytes of padding, uninitialised after the store.
type Padded = (u8, u64);
const PADDED: [Padded; 4] = [(1, 10), (2, 20), (3, 30), (4, 40)];

/// A heap segment whose object "p" holds `PADDED`, and the offset of its data.
fn padded_segment() -> (ManagedHeapMemory, usize) {
    let seg = heap();
    let p = seg.construct_from_iter("p", PADDED).unwrap().as_ptr();
    let data = p.addr() - seg.base_address().as_ptr().addr();
    (seg, data)
}

/// Recovery follows the registry's offset only once the chain of blocks says it starts a
/// used block: a forged one aiming past padding is dropped, not read as a table (Miri).
#[test]
fn recovery_never_reads_padding_through_a_forged_registry_offset() {
    let (mut seg, data) = padded_segment();
    // The word before `forged` holds the first element's `u8` and its padding.
    let pad = std::mem::offset_of!(Padded, 0) & !7;
    let forged = (data + pad + 8) as u64;
    corrupt(&mut seg, offsets::ENTRIES, &forged.to_ne_bytes());
    corrupt(&mut seg, offsets::NAMED_ROOT, &forged.to_ne_bytes());
    // A cold open checks the indexes and refuses them, reading nothing there.
    let mut copy = AlignedBuffer::from_image(seg.image());
    let err = ManagedExternalBuffer::open(&mut copy).unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err:?}");
    // A copy taken while the index lock was held rebuilds its indexes at open instead,
    // following both words.
    corrupt(&mut seg, offsets::INDEX_LOCK, &1u32.to_ne_bytes());
    let mut image = AlignedBuffer::from_image(seg.image());
    let seg = ManagedExternalBuffer::open(&mut image).expect("recovered");
    seg.check().unwrap();
    // The forged root was dropped with the index it named: the object is lost, not misread.
    assert_eq!(seg.find_slice::<Padded>("p").unwrap(), None);
}

/// Padding never reaches safe code as bytes: an image travels as `MaybeUninit` bytes, a
/// buffer a writable segment used stays `MaybeUninit`, and both reopen (Miri).
#[test]
fn padded_objects_survive_images_and_buffers() {
    let (mut seg, _) = padded_segment();
    let mut buf = AlignedBuffer::from_image(seg.image());
    {
        let rw = ManagedExternalBuffer::open(&mut buf).unwrap();
        rw.construct("q", (5u8, 50u64)).unwrap();
    }
    let ro = ManagedExternalBuffer::options()
        .read_only()
        .open(&buf)
        .unwrap();
    assert_eq!(ro.find_slice::<Padded>("p").unwrap(), Some(&PADDED[..]));
    assert_eq!(ro.find::<Padded>("q").unwrap(), Some(&(5, 50)));
    let copy = ManagedHeapMemory::from_image(&buf).unwrap();
    assert_eq!(copy.find_slice::<Padded>("p").unwrap(), Some(&PADDED[..]));
}

/// The kernel reads the bytes: an image with padding goes out through a file descriptor
/// and comes back through an aligned receive buffer.
#[test]
#[cfg_attr(miri, ignore = "memfd_create")]
fn an_image_with_padding_goes_through_a_file_descriptor() {
    use std::io::Seek;
    let mut seg = heap();
    seg.construct_from_iter("p", PADDED).unwrap();
    let mut file = std::fs::File::from(
        rustix::fs::memfd_create("image", rustix::fs::MemfdFlags::CLOEXEC).unwrap(),
    );
    seg.write_image_to(&file).unwrap();
    file.rewind().unwrap();
    let mut buf = AlignedBuffer::read_from(&file, seg.size()).unwrap();
    let copy = ManagedExternalBuffer::open(&mut buf).unwrap();
    assert_eq!(copy.find_slice::<Padded>("p").unwrap(), Some(&PADDED[..]));
    let mut out = std::fs::File::from(
        rustix::fs::memfd_create("again", rustix::fs::MemfdFlags::CLOEXEC).unwrap(),
    );
    drop(copy);
    buf.write_to(&out).unwrap();
    out.rewind().unwrap();
    let again = AlignedBuffer::read_from(&out, seg.size()).unwrap();
    assert!(
        AlignedBuffer::read_from(&out, 1).is_err(),
        "nothing follows"
    );
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&again)
        .unwrap();
    assert_eq!(reader.find_slice::<Padded>("p").unwrap(), Some(&PADDED[..]));
}
