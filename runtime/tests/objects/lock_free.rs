//! `find` of a named object without the index lock (hash index): what it finds while other
//! threads construct, grow the table and undo failed constructions is whole and exact; it
//! never sees part of what `atomic_func` publishes; and what it could have been reading is
//! given back once the segment is alone. Heap segments, so Miri runs these (`.ci/miri`),
//! its data-race detector checking every lookup's loads against the writers' stores.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use shmkit_runtime::{
    AlignedBuffer, Error, ManagedExternalBuffer, ManagedHeapMemory, OrderedIndex,
};
use shmkit_test_support::internals::image_bytes;
use shmkit_test_support::offsets;

/// Named objects the constructing thread makes (the first table has 4 slots: 40 objects
/// grow it four times, 600 eight times).
const OBJECTS: usize = if cfg!(miri) { 40 } else { 600 };
/// Constructions the undoing thread starts and undoes.
const UNDONE: usize = if cfg!(miri) { 6 } else { 100 };

/// Element `i` of object `j`: no two elements of any two objects are equal.
fn value(j: usize, i: usize) -> u64 {
    (j as u64) << 32 | i as u64
}

/// The length of object `j`: 1 to 4 elements.
fn len_of(j: usize) -> usize {
    1 + j % 4
}

/// Yields two elements but claims `len`: the construction is undone.
struct Short(usize, usize);
impl Iterator for Short {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        (self.0 < 2).then(|| {
            self.0 += 1;
            u64::MAX
        })
    }
}
impl ExactSizeIterator for Short {
    fn len(&self) -> usize {
        self.1
    }
}

/// Checks object `j` if found; true if it was.
fn check_found(seg: &ManagedHeapMemory, j: usize) -> bool {
    let Some(elems) = seg.find_slice::<u64>(format!("obj_{j}").as_str()).unwrap() else {
        return false;
    };
    assert_eq!(elems.len(), len_of(j), "object {j}");
    for (i, &v) in elems.iter().enumerate() {
        assert_eq!(v, value(j, i), "object {j}, element {i}");
    }
    true
}

#[test]
fn lookups_without_the_lock_find_whole_objects_while_others_construct_grow_and_undo() {
    let seg = Arc::new(ManagedHeapMemory::new(1 << 20).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let found = Arc::new(AtomicUsize::new(0));
    let finders = if cfg!(miri) { 1 } else { 2 };
    let start = Arc::new(Barrier::new(finders + 2));
    let finding: Vec<_> = (0..finders)
        .map(|_| {
            let (seg, done, found, start) =
                (seg.clone(), done.clone(), found.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                // Passes while the others work, and one after.
                loop {
                    let last = done.load(Ordering::Acquire);
                    for j in 0..OBJECTS {
                        if check_found(&seg, j) {
                            found.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    for k in 0..UNDONE {
                        let undone = seg.find_slice::<u64>(format!("bad_{k}").as_str());
                        assert_eq!(undone.unwrap(), None, "undone construction {k}");
                    }
                    if last {
                        break;
                    }
                }
            })
        })
        .collect();
    let constructing = {
        let (seg, start) = (seg.clone(), start.clone());
        std::thread::spawn(move || {
            start.wait();
            for j in 0..OBJECTS {
                let name = format!("obj_{j}");
                seg.construct_array_with(name.as_str(), len_of(j), |i| value(j, i))
                    .unwrap();
            }
        })
    };
    let undoing = {
        let (seg, start) = (seg.clone(), start.clone());
        std::thread::spawn(move || {
            start.wait();
            for k in 0..UNDONE {
                let name = format!("bad_{k}");
                if k % 2 == 0 {
                    let err = seg.construct_from_iter(name.as_str(), Short(0, 3 + k % 5));
                    assert!(
                        matches!(err, Err(Error::IteratorTooShort { .. })),
                        "{err:?}"
                    );
                } else {
                    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        seg.construct_array_with(name.as_str(), 3, |i| {
                            assert!(i < 2, "element 2 of an undone construction fails");
                            u64::MAX
                        })
                    }));
                    assert!(panicked.is_err());
                }
            }
        })
    };
    constructing.join().unwrap();
    undoing.join().unwrap();
    done.store(true, Ordering::Release);
    for f in finding {
        f.join().unwrap();
    }
    assert!(
        found.load(Ordering::Relaxed) >= finders * OBJECTS,
        "the finders missed objects in their last pass"
    );
    let mut seg = Arc::into_inner(seg).unwrap();
    for j in 0..OBJECTS {
        assert!(check_found(&seg, j), "object {j} is missing");
    }
    seg.check().unwrap();
    // The replaced tables and the undone entries were retired, and come back now that the
    // segment is alone (`&mut`): destroying every object gives back all memory.
    for j in 0..OBJECTS {
        assert!(seg.destroy::<u64>(format!("obj_{j}").as_str()).unwrap());
    }
    assert!(seg.all_memory_deallocated());
}

/// What a lookup without the lock may be reading when the lock holder unlinks it, an
/// undone construction's entry (linked while it is built) and a hash table replaced by a
/// larger one, is not freed until the segment is alone with `&mut`; an ordered index,
/// which lookups always search under the lock, frees the entry at once.
#[test]
fn what_lookups_without_the_lock_may_read_is_given_back_once_the_segment_is_alone() {
    let mut hash = ManagedHeapMemory::new(64 * 1024).unwrap();
    let ordered = ManagedHeapMemory::options()
        .index::<OrderedIndex>()
        .create(64 * 1024)
        .unwrap();
    hash.construct("a", 1u64).unwrap();
    ordered.construct("a", 1u64).unwrap();
    let (hash_free, ordered_free) = (hash.free_memory(), ordered.free_memory());
    for short in [
        hash.construct_from_iter("short", Short(0, 4)).map(drop),
        ordered.construct_from_iter("short", Short(0, 4)).map(drop),
    ] {
        assert!(
            matches!(short, Err(Error::IteratorTooShort { .. })),
            "{short:?}"
        );
    }
    assert_eq!(ordered.free_memory(), ordered_free);
    assert!(
        hash.free_memory() < hash_free,
        "the undone entry is retired"
    );
    hash.check().unwrap();
    hash.shrink_to_fit_indexes().unwrap();
    assert_eq!(hash.free_memory(), hash_free);

    // Three more objects: the fourth grows the first table (4 slots) to 8 slots, which
    // still fit them, so what shrinking gives back is the replaced table.
    for name in ["b", "c", "d"] {
        hash.construct(name, 2u64).unwrap();
    }
    let grown = hash.free_memory();
    hash.shrink_to_fit_indexes().unwrap();
    assert!(hash.free_memory() > grown, "the replaced table was retired");
    for name in ["a", "b", "c", "d"] {
        assert!(hash.find::<u64>(name).unwrap().is_some());
        assert!(hash.destroy::<u64>(name).unwrap());
    }
    assert!(hash.all_memory_deallocated());
}

/// A named object that is there is found without the index lock: even where taking that
/// lock is refused (inside `with_lock`, which holds the allocator lock that comes after
/// it). What the lookup cannot decide alone (a missing name, another type) still takes
/// the lock, and is refused.
#[test]
fn a_named_object_that_is_there_is_found_without_the_index_lock() {
    let seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    seg.construct("x", 7u64).unwrap();
    seg.with_lock(|| {
        assert_eq!(seg.find::<u64>("x").unwrap(), Some(&7));
        assert_eq!(seg.find_slice::<u64>("x").unwrap(), Some(&[7][..]));
        for refused in [
            seg.find::<u64>("y").map(drop),
            seg.find::<u32>("x").map(drop),
        ] {
            assert!(
                matches!(refused, Err(Error::LockReentered { .. })),
                "{refused:?}"
            );
        }
    })
    .unwrap();
}

/// What `atomic_func` constructs is seen all or none by lookups without the lock: one that
/// finds an object made inside defers to the lock while it is held, so no lookup returns
/// the first object while the second is still to come.
#[test]
fn lookups_without_the_lock_see_all_or_none_of_an_atomic_func() {
    let seg = Arc::new(ManagedHeapMemory::new(64 * 1024).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    // 1 + the round whose atomic_func has made its first object but not its second.
    let between = Arc::new(AtomicUsize::new(0));
    let rounds = if cfg!(miri) { 3 } else { 20 };
    let finder = {
        let (seg, done, between) = (seg.clone(), done.clone(), between.clone());
        std::thread::spawn(move || {
            let mut pairs = 0;
            // Passes while the pairs are made, and one after.
            loop {
                let last = done.load(Ordering::Acquire);
                for r in 0..rounds {
                    if seg
                        .find::<u64>(format!("first_{r}").as_str())
                        .unwrap()
                        .is_none()
                    {
                        continue;
                    }
                    assert_ne!(
                        between.load(Ordering::Relaxed),
                        r + 1,
                        "round {r}: found the first object while atomic_func was at work"
                    );
                    let second = seg.find::<u64>(format!("second_{r}").as_str()).unwrap();
                    assert_eq!(second, Some(&2), "round {r}: the first without the second");
                    pairs += 1;
                }
                if last {
                    break;
                }
            }
            pairs
        })
    };
    for r in 0..rounds {
        seg.atomic_func(|| {
            seg.construct(format!("first_{r}").as_str(), 1u64).unwrap();
            between.store(r + 1, Ordering::Relaxed);
            // The finder has time to come across the first alone.
            std::thread::sleep(std::time::Duration::from_millis(2));
            between.store(0, Ordering::Relaxed);
            seg.construct(format!("second_{r}").as_str(), 2u64).unwrap();
        })
        .unwrap();
    }
    done.store(true, Ordering::Release);
    assert!(
        finder.join().unwrap() >= rounds,
        "the last pass missed pairs"
    );
}

/// The retired list of bytes from elsewhere is checked before anything frees what it
/// names. A sound one is accepted and freed by a private copy; a link to the hash table,
/// into an object, or back to its own block is refused by a cold open (`Corrupted`, naming
/// the retired block), and cut by recovery, which keeps every object and frees nothing in
/// use.
#[test]
#[cfg_attr(miri, ignore = "the image leaves through a memfd")]
fn a_forged_retired_list_is_refused_cold_and_cut_by_recovery() {
    let mut seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    seg.construct("a", 1u64).unwrap();
    seg.construct("b", 2u64).unwrap();
    let short = seg.construct_from_iter("short", Short(0, 4));
    assert!(
        matches!(short, Err(Error::IteratorTooShort { .. })),
        "{short:?}"
    );
    let data_of_a = seg.find::<u64>("a").unwrap().unwrap() as *const u64 as usize
        - seg.base_address().as_ptr() as usize;
    let image = image_bytes(&mut seg);
    let word = |at: usize| u64::from_ne_bytes(image[at..at + 8].try_into().unwrap());
    let (retired, table) = (word(offsets::RETIRED), word(offsets::NAMED_ROOT));
    assert_ne!(retired, 0, "the undone entry is retired");

    let mut sound = AlignedBuffer::from_image(&image[..]);
    let copy = ManagedExternalBuffer::open(&mut sound).unwrap();
    copy.check().unwrap();
    assert!(
        copy.free_memory() > seg.free_memory(),
        "the copy freed the retired entry"
    );
    drop(copy);

    let forged = |at: usize, v: u64, held: bool| {
        let mut bytes = image.clone();
        bytes[at..at + 8].copy_from_slice(&v.to_ne_bytes());
        if held {
            bytes[offsets::INDEX_LOCK..offsets::INDEX_LOCK + 4]
                .copy_from_slice(&1u32.to_ne_bytes());
        }
        AlignedBuffer::from_image(&bytes[..])
    };
    for (at, v) in [
        (offsets::RETIRED, table),
        (offsets::RETIRED, data_of_a as u64),
        (retired as usize, retired),
    ] {
        let mut buf = forged(at, v, false);
        let err = ManagedExternalBuffer::open(&mut buf).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupted { reason, .. } if reason.contains("retired block")),
            "{err:?}"
        );
        let mut buf = forged(at, v, true);
        let copy = ManagedExternalBuffer::open(&mut buf).expect("recovered");
        copy.check().unwrap();
        assert_eq!(copy.find::<u64>("a").unwrap(), Some(&1));
        assert_eq!(copy.find::<u64>("b").unwrap(), Some(&2));
        for name in ["c", "d", "e", "f"] {
            copy.construct(name, 3u64).unwrap();
        }
        copy.check().unwrap();
    }
}
