//! Segment maps in shared memory: behind shmkit's `Mutex`, changed by threads, and read by
//! a child process that maps the segment at other addresses.

use std::time::Duration;

use shmkit_containers::{Map, MapExt, Vec};
use shmkit_runtime::sync::Mutex;
use shmkit_runtime::{ManagedSharedMemory, Result};
use shmkit_test_support::{spawn_child, ShmGuard};

const CHILD: &str = env!("CARGO_BIN_EXE_shmkit-containers-child");
const LIMIT: Duration = Duration::from_secs(30);

/// The random sequences of `model`, through the guards of two locks in shared memory.
#[test]
fn random_operations_match_std_through_lock_guards() -> Result<()> {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 8 << 20)?;
    let a = seg.construct("a", Mutex::new(Map::<u64, u64>::new()))?;
    let b = seg.construct("b", Mutex::new(Map::<u64, u64>::new()))?;
    crate::model::run(&mut [a.lock()?, b.lock()?], 0x10c4, crate::model::OPS, 700);
    Ok(())
}

/// Threads insert and remove under one lock: the keys each inserted and kept are there.
#[test]
fn threads_change_one_map_under_a_lock() -> Result<()> {
    const THREADS: u64 = 4;
    const EACH: u64 = 3000;
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 8 << 20)?;
    let shared = seg.construct("shared", Mutex::new(Map::<u64, u64>::new()))?;
    std::thread::scope(|s| {
        let threads: std::vec::Vec<_> = (0..THREADS)
            .map(|t| {
                s.spawn(move || -> Result<()> {
                    for x in (t..THREADS * EACH).step_by(THREADS as usize) {
                        shared.lock()?.insert(x, t)?;
                        if x % 3 == 0 {
                            assert_eq!(shared.lock()?.remove(&x), Some(t));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        threads
            .into_iter()
            .try_for_each(|t| t.join().expect("a thread panicked"))
    })?;
    let map = shared.lock()?;
    assert!(map.iter().map(|(k, v)| (*k, *v)).eq((0..THREADS * EACH)
        .filter(|x| x % 3 != 0)
        .map(|x| (x, x % THREADS))));
    Ok(())
}

/// A child process reads the parent's map of vectors through mappings of its own, at other
/// addresses than the parent's.
#[test]
fn a_child_reads_a_map_at_other_addresses() -> Result<()> {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 1 << 20)?;
    let index = seg.construct("index", Mutex::new(Map::<u64, Vec<u64>>::new()))?;
    let keys = (0..300u64).map(|i| i * 37 % 301);
    {
        let mut index = index.lock()?;
        for k in keys.clone() {
            index.insert_with(k, 0..k % 9, |_| ())?;
        }
    }
    let mut sorted: std::vec::Vec<u64> = keys.collect();
    sorted.sort_unstable();
    let elements: std::vec::Vec<String> = sorted
        .iter()
        .map(|k| format!("{k}:{}:{}", k % 9, (k % 9) * (k % 9).saturating_sub(1) / 2))
        .collect();
    let range: std::vec::Vec<String> = sorted
        .iter()
        .rev()
        .filter(|k| (100..200).contains(*k))
        .map(u64::to_string)
        .collect();
    let expected = format!("{} range {}", elements.join(" "), range.join(" "));
    let mut child = spawn_child(
        CHILD,
        "read-ordered-map",
        &[("SHMKIT_NAME", name.get().into())],
    );
    let mut addresses = std::vec::Vec::new();
    for _ in 0..2 {
        let line = child.expect_message(LIMIT);
        let (at, summary) = line
            .strip_prefix("at ")
            .and_then(|l| l.split_once(" map "))
            .unwrap_or_else(|| panic!("unexpected message {line:?}"));
        assert_eq!(summary, expected, "read at {at}");
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
