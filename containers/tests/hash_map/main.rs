//! The segment `HashMap` and `HashSet`: against std's (seeded random operation sequences),
//! nested containers, allocation failure, dropping, colliding and ill-behaved keys, bytes
//! from elsewhere, and (not under Miri, which maps no shared memory and starts no process)
//! shared memory, threads and a child process.

#![allow(missing_docs)]

mod collisions;
mod crash;
mod failure;
mod model;
mod nested;
mod owned;
mod set;
#[cfg(not(miri))]
mod shared;
mod validate;

/// String keys: built in place from `&str`, looked up by `&str`.
#[test]
fn string_keys_are_inserted_and_found_by_str() {
    use shmkit_containers::{HashMap, HashMapExt, String, Vec, VecExt};
    let mut seg = shmkit_runtime::ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("m", HashMap::<String, Vec<String>>::new())
        .unwrap();
    let mut m = seg
        .find_mut::<HashMap<String, Vec<String>>>("m")
        .unwrap()
        .unwrap();
    // Position-dependent values: an old value would be handed to the closure in place.
    assert_eq!(m.insert_with("fruit", ["apple", "pear"], |_| ()), Ok(None));
    m.insert_with("veg", ["kale"], |_| ()).unwrap();
    assert_eq!(m.get("fruit").map(|v| v.len()), Some(2));
    assert_eq!(m["veg"][0], "kale");
    m.value_mut("veg").unwrap().push("leek").unwrap();
    assert_eq!(m.get("veg").unwrap()[1], "leek");
    assert!(m.get("meat").is_none());
    seg.destroy::<HashMap<String, Vec<String>>>("m").unwrap();
    assert!(seg.all_memory_deallocated());
}
