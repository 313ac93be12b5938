//! Segment deques in shared memory: behind shmkit's `Mutex`, read by a child process that
//! maps the segment at other addresses.

use std::time::Duration;

use shmkit_containers::{Deque, DequeExt, Vec};
use shmkit_runtime::sync::Mutex;
use shmkit_runtime::{ManagedSharedMemory, Result};
use shmkit_test_support::{spawn_child, ShmGuard};

const CHILD: &str = env!("CARGO_BIN_EXE_shmkit-containers-child");
const LIMIT: Duration = Duration::from_secs(30);

/// The random sequences of `model`, through the guards of two locks in shared memory.
#[test]
fn random_operations_match_std_through_lock_guards() -> Result<()> {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 4 << 20)?;
    let a = seg.construct("a", Mutex::new(Deque::<u64>::new()))?;
    let b = seg.construct("b", Mutex::new(Deque::<u64>::new()))?;
    crate::model::run(&mut [a.lock()?, b.lock()?], 0x10c4, crate::model::OPS);
    Ok(())
}

/// A child process reads the parent's deque of vectors (a ring that wraps), front to back
/// and back to front, through mappings of its own at other addresses than the parent's.
#[test]
fn a_child_reads_a_deque_of_vectors_at_other_addresses() -> Result<()> {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 1 << 20)?;
    let rows = seg.construct("rows", Mutex::new(Deque::<Vec<u64>>::new()))?;
    {
        let mut rows = rows.lock()?;
        for n in 0..20 {
            rows.push_back(0..n)?;
        }
        let full = rows.capacity() as u64;
        for n in 20..full {
            rows.push_back(0..n)?;
        }
        for n in full..full + 6 {
            rows.pop_front_with(|_| ());
            rows.push_back(0..n)?;
        }
        assert!(!rows.as_slices().1.is_empty(), "the ring wraps");
    }
    let row = |r: &Vec<u64>| format!("{}:{}", r.len(), r.iter().sum::<u64>());
    let (forward, backward) = {
        let rows = rows.lock()?;
        let forward: std::vec::Vec<String> = rows.iter().map(row).collect();
        let backward: std::vec::Vec<String> = rows.iter().rev().map(row).collect();
        (forward.join(" "), backward.join(" "))
    };
    let mut child = spawn_child(CHILD, "read-deque", &[("SHMKIT_NAME", name.get().into())]);
    let mut addresses = std::vec::Vec::new();
    for _ in 0..2 {
        let line = child.expect_message(LIMIT);
        let (at, read) = line
            .strip_prefix("at ")
            .and_then(|l| l.split_once(" rows "))
            .unwrap_or_else(|| panic!("unexpected message {line:?}"));
        assert_eq!(read, format!("{forward} rev {backward}"), "read at {at}");
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
