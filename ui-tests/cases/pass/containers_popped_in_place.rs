//! What `fail/containers_pop_position_dependent.rs` and `..._remove_position_dependent.rs`
//! refuse, done right: a position-dependent element is handed to a closure in place (as a
//! `ShmMut`, or a `&` for a set's) and dropped there; a set's `remove` drops it in place.
use shmkit::containers::Vec;
use shmkit::containers::{hash_map, map, Box, Deque, HashMap, HashSet, List, Map, Set, String};
use shmkit::prelude::*;
use shmkit::sync::Mutex;
use shmkit::ManagedHeapMemory;

fn main() -> shmkit::Result<()> {
    let mut seg = ManagedHeapMemory::new(1 << 20)?;
    seg.construct("names", Vec::<String>::new())?;
    let mut names = seg.find_mut::<Vec<String>>("names")?.unwrap();
    names.extend(["ada", "bob", "cy"])?;
    assert_eq!(
        names.pop_with(|s| s.as_str().to_owned()).as_deref(),
        Some("cy")
    );
    assert_eq!(names.remove_with(0, |s| s.len()), Some(3));
    assert_eq!(names[..], ["bob"]);
    drop(names);

    let rows = seg.construct_anonymous(Mutex::new(List::<Vec<u8>>::new()))?;
    rows.lock()?.extend([&b"ab"[..], b"cd", b"ef"])?;
    assert_eq!(
        rows.lock()?.pop_front_with(|r| r.to_vec()),
        Some(b"ab".to_vec())
    );
    assert_eq!(rows.lock()?.pop_back_with(|r| r.len()), Some(2));
    let removed = rows
        .lock()?
        .cursor_front_mut()
        .remove_current_with(|r| r[0]);
    assert_eq!((removed, rows.lock()?.len()), (Some(b'c'), 0));

    let queue = seg.construct_anonymous(Mutex::new(Deque::<String>::new()))?;
    queue.lock()?.extend(["ada", "bob"])?;
    assert_eq!(queue.lock()?.pop_back_with(|s| s.len()), Some(3));
    assert_eq!(
        queue.lock()?.pop_front_with(|s| s.as_str() == "ada"),
        Some(true)
    );

    let boxed = seg.construct_anonymous(Mutex::new(Box::<String>::new()))?;
    boxed.lock()?.insert("ada")?;
    assert_eq!(boxed.lock()?.take_with(|s| s.len()), Some(3));
    assert!(boxed.lock()?.is_none());

    let rows = seg.construct_anonymous(Mutex::new(Map::<u64, Vec<u8>>::new()))?;
    rows.lock()?.extend([(1u64, [1u8]), (2, [2]), (3, [3])])?;
    assert_eq!(
        rows.lock()?.remove_with(&1, |k, v| (*k, v[0])),
        Some((1, 1))
    );
    assert_eq!(
        rows.lock()?.insert_with(2u64, [9u8], |old| old[0])?,
        Some(2)
    );
    assert_eq!(rows.lock()?.pop_first_with(|k, _| *k), Some(2));
    if let map::Entry::Occupied(e) = rows.lock()?.entry(3u64)? {
        assert_eq!(e.remove_with(|_, v| v.len()), 1);
    }
    assert!(rows.lock()?.is_empty());

    let names = seg.construct_anonymous(Mutex::new(Set::<String>::new()))?;
    names.lock()?.extend(["ada", "bob"])?;
    assert_eq!(names.lock()?.pop_last_with(|s| s.len()), Some(3));
    assert!(names.lock()?.remove("ada"));
    assert!(names.lock()?.is_empty());

    let names = seg.construct_anonymous(Mutex::new(HashMap::<u64, String>::new()))?;
    names.lock()?.extend([(1u64, "ada"), (2, "bob")])?;
    assert_eq!(names.lock()?.remove_with(&1, |_, v| v.len()), Some(3));
    assert_eq!(
        names.lock()?.insert_with(2u64, "cy", |old| old.len())?,
        Some(3)
    );
    if let hash_map::Entry::Occupied(e) = names.lock()?.entry(2u64)? {
        assert!(e.remove_with(|_, v| v.as_str() == "cy"));
    }
    assert!(names.lock()?.is_empty());

    let names = seg.construct_anonymous(Mutex::new(HashSet::<String>::new()))?;
    names.lock()?.insert("ada")?;
    assert!(names.lock()?.remove("ada"));
    assert!(names.lock()?.is_empty());
    Ok(())
}
