//! Segment maps in shared memory: behind shmkit's `Mutex`, shared by threads and by a
//! child process that maps the segment at other addresses.

use std::time::Duration;

use shmkit_containers::{HashMap, HashMapExt, Vec, VecExt};
use shmkit_runtime::sync::Mutex;
use shmkit_runtime::{ManagedHeapMemory, ManagedSharedMemory, Result};
use shmkit_test_support::{spawn_child, ShmGuard};

const CHILD: &str = env!("CARGO_BIN_EXE_shmkit-containers-child");
const LIMIT: Duration = Duration::from_secs(30);

/// The random sequences of `model`, through the guards of two locks in shared memory.
#[test]
fn random_operations_match_std_through_lock_guards() -> Result<()> {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 8 << 20)?;
    let a = seg.construct("a", Mutex::new(HashMap::<u64, u64>::new()))?;
    let b = seg.construct("b", Mutex::new(HashMap::<u64, u64>::new()))?;
    crate::model::run(&mut [a.lock()?, b.lock()?], 0x10c4, crate::model::OPS);
    Ok(())
}

/// Threads insert distinct keys and count shared ones under one lock: every key arrives
/// once, every count adds up.
fn threads_insert_under(shared: &Mutex<HashMap<u64, u64>>) -> Result<()> {
    const THREADS: u64 = 4;
    const EACH: u64 = 2000;
    std::thread::scope(|s| {
        let threads: std::vec::Vec<_> = (0..THREADS)
            .map(|t| {
                s.spawn(move || -> Result<()> {
                    for x in t * EACH..(t + 1) * EACH {
                        let mut map = shared.lock()?;
                        assert_eq!(map.insert(1000 + x, x)?, None);
                        *map.entry(x % 10)?.or_insert(0)? += 1;
                    }
                    Ok(())
                })
            })
            .collect();
        threads
            .into_iter()
            .try_for_each(|t| t.join().expect("an inserting thread panicked"))
    })?;
    let map = shared.lock()?;
    assert_eq!(map.len() as u64, THREADS * EACH + 10);
    assert!((0..THREADS * EACH).all(|x| map.get(&(1000 + x)) == Some(&x)));
    assert!((0..10).all(|k| map[&k] == THREADS * EACH / 10));
    Ok(())
}

#[test]
fn threads_insert_under_one_lock_on_a_heap_segment() -> Result<()> {
    let seg = ManagedHeapMemory::new(4 << 20)?;
    threads_insert_under(seg.construct("shared", Mutex::new(HashMap::new()))?)
}

#[test]
fn threads_insert_under_one_lock_in_shared_memory() -> Result<()> {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 4 << 20)?;
    threads_insert_under(seg.construct("shared", Mutex::new(HashMap::new()))?)
}

/// A child process reads the parent's map of vectors through mappings of its own, at
/// other addresses than the parent's.
#[test]
fn a_child_reads_a_map_of_vectors_at_other_addresses() -> Result<()> {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 1 << 20)?;
    let index = seg.construct("index", Mutex::new(HashMap::<u64, Vec<u64>>::new()))?;
    {
        let mut index = index.lock()?;
        for n in 0..40 {
            index.insert_with(n, 0..n, |_| ())?;
        }
        index.value_mut(&3).expect("inserted").push(100)?;
    }
    let expected: std::vec::Vec<String> = (0..40u64)
        .map(|n| match n {
            3 => "3:4:103".to_owned(),
            n => format!("{n}:{n}:{}", n * n.saturating_sub(1) / 2),
        })
        .collect();
    let mut child = spawn_child(CHILD, "read-map", &[("SHMKIT_NAME", name.get().into())]);
    let mut addresses = std::vec::Vec::new();
    for _ in 0..2 {
        let line = child.expect_message(LIMIT);
        let (at, summary) = line
            .strip_prefix("at ")
            .and_then(|l| l.split_once(" map "))
            .unwrap_or_else(|| panic!("unexpected message {line:?}"));
        assert_eq!(summary, expected.join(" "), "read at {at}");
        addresses.push(at.to_owned());
    }
    let ours = format!("{:#x}", seg.base_address().as_ptr() as usize);
    assert!(
        addresses.iter().any(|a| *a != ours),
        "{addresses:?} vs {ours}"
    );
    assert!(child.wait(LIMIT).success());
    Ok(())
}

/// The parent and a child process count into one `Mutex<HashMap<u64, u64>>` at the same
/// time: the totals add up.
#[test]
fn a_parent_and_a_child_count_under_one_lock() -> Result<()> {
    const EACH: u64 = 3000;
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 4 << 20)?;
    let counts = seg.construct("counts", Mutex::new(HashMap::<u64, u64>::new()))?;
    let mut child = spawn_child(
        CHILD,
        "count",
        &[
            ("SHMKIT_NAME", name.get().into()),
            ("SHMKIT_FROM", EACH.to_string()),
            ("SHMKIT_TO", (2 * EACH).to_string()),
        ],
    );
    assert_eq!(child.expect_message(LIMIT), "ready");
    child.release();
    for x in 0..EACH {
        let mut counts = counts.lock()?;
        *counts.entry(x % 50)?.or_insert(0)? += 1;
        counts.insert(1_000_000 + x, x)?;
    }
    assert_eq!(child.expect_message(LIMIT), "done");
    assert!(child.wait(LIMIT).success());
    let counts = counts.lock()?;
    assert_eq!(counts.len() as u64, 2 * EACH + 50);
    assert_eq!((0..50).map(|k| counts[&k]).sum::<u64>(), 2 * EACH);
    assert!((0..2 * EACH).all(|x| counts.get(&(1_000_000 + x)) == Some(&x)));
    Ok(())
}
