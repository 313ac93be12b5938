//! Segment lists in shared memory: behind shmkit's `Mutex`, read by a child process that
//! maps the segment at other addresses, and never linked across two mappings.

use std::time::Duration;

use shmkit_containers::{List, ListExt, Vec};
use shmkit_runtime::sync::Mutex;
use shmkit_runtime::{ManagedSharedMemory, Result};
use shmkit_test_support::{spawn_child, ShmGuard};

const CHILD: &str = env!("CARGO_BIN_EXE_shmkit-containers-child");
const LIMIT: Duration = Duration::from_secs(30);

/// The random sequences of `model`, through the guards of three locks in shared memory.
#[test]
fn random_operations_match_std_through_lock_guards() -> Result<()> {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 4 << 20)?;
    let all: std::vec::Vec<&Mutex<List<u64>>> = ["a", "b", "c"]
        .into_iter()
        .map(|n| seg.construct(n, Mutex::new(List::new())))
        .collect::<Result<_>>()?;
    let mut guards = std::vec::Vec::new();
    for list in all {
        guards.push(list.lock()?);
    }
    crate::model::run(&mut guards, 0x10c4, crate::model::OPS);
    Ok(())
}

/// A child process reads the parent's list of vectors, front to back and back to front,
/// through mappings of its own at other addresses than the parent's.
#[test]
fn a_child_reads_a_list_of_vectors_at_other_addresses() -> Result<()> {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 1 << 20)?;
    let rows = seg.construct("rows", Mutex::new(List::<Vec<u64>>::new()))?;
    {
        let mut rows = rows.lock()?;
        for n in 0..20 {
            if n % 3 == 0 {
                rows.push_front(0..n)?;
            } else {
                rows.push_back(0..n)?;
            }
        }
        let mut cursor = rows.cursor_front_mut();
        cursor.move_next();
        cursor.insert_after([5, 6])?;
    }
    let row = |r: &Vec<u64>| format!("{}:{}", r.len(), r.iter().sum::<u64>());
    let (forward, backward) = {
        let rows = rows.lock()?;
        let forward: std::vec::Vec<String> = rows.iter().map(row).collect();
        let backward: std::vec::Vec<String> = rows.iter().rev().map(row).collect();
        (forward.join(" "), backward.join(" "))
    };
    let mut child = spawn_child(CHILD, "read-list", &[("SHMKIT_NAME", name.get().into())]);
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

/// Two mappings of one segment in this process are two address ranges: a list found
/// through one cannot take the nodes of a list found through the other (its offsets would
/// aim into the other mapping).
#[test]
fn lists_in_two_mappings_of_one_segment_exchange_no_nodes() -> Result<()> {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 1 << 20)?;
    seg.construct("a", Mutex::new(List::<u64>::new()))?
        .lock()?
        .extend([1, 2])?;
    seg.construct("b", Mutex::new(List::<u64>::new()))?
        .lock()?
        .extend([3])?;
    let other = ManagedSharedMemory::open(name.get())?;
    let a = seg
        .find::<Mutex<List<u64>>>("a")?
        .expect("constructed above");
    let b_there = other
        .find::<Mutex<List<u64>>>("b")?
        .expect("constructed above");
    let (mut a, mut b) = (a.lock()?, b_there.lock()?);
    assert!(a.append(&mut b).is_err());
    assert!(*a == [1, 2] && *b == [3]);
    drop(b);
    // Through the same mapping it works.
    let b_here = seg
        .find::<Mutex<List<u64>>>("b")?
        .expect("constructed above");
    a.append(&mut b_here.lock()?).expect("same mapping");
    assert_eq!(*a, [1, 2, 3]);
    assert!(b_here.lock()?.is_empty());
    Ok(())
}
