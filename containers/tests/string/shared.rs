//! Strings and `Arc`s in shared memory, behind shmkit's `Mutex`: a child process reads the
//! parent's strings at other addresses, and shares (and gives up) an `Arc` with counts the
//! parent sees.

use std::time::Duration;

use shmkit_containers::{Arc, ArcExt, String, Vec, VecExt};
use shmkit_runtime::sync::Mutex;
use shmkit_runtime::{ManagedSharedMemory, Result};
use shmkit_test_support::{spawn_child, ShmGuard};

const CHILD: &str = env!("CARGO_BIN_EXE_shmkit-containers-child");
const LIMIT: Duration = Duration::from_secs(30);

/// The random sequences of `model`, on strings behind locks in shared memory.
#[test]
fn random_operations_match_std_through_lock_guards() -> Result<()> {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 4 << 20)?;
    let a = seg.construct("a", Mutex::new(String::new()))?;
    let b = seg.construct("b", Mutex::new(String::new()))?;
    crate::model::run(&mut [a.lock()?, b.lock()?], 0x57a, crate::model::OPS);
    Ok(())
}

/// A child process reads the parent's `Vec<String>` through mappings of its own, at
/// other addresses than the parent's.
#[test]
fn a_child_reads_strings_at_other_addresses() -> Result<()> {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 1 << 20)?;
    let names = seg.construct("names", Mutex::new(Vec::<String>::new()))?;
    let expected: std::vec::Vec<std::string::String> = (0..50)
        .map(|i| format!("nämé{i}{}", "🦀".repeat(i % 4)))
        .collect();
    names.lock()?.extend(&expected)?;
    let mut child = spawn_child(CHILD, "read-strings", &[("SHMKIT_NAME", name.get().into())]);
    let mut addresses = std::vec::Vec::new();
    for _ in 0..2 {
        let line = child.expect_message(LIMIT);
        let (at, read) = line
            .strip_prefix("at ")
            .and_then(|l| l.split_once(" names "))
            .unwrap_or_else(|| panic!("unexpected message {line:?}"));
        assert_eq!(read, expected.join(","), "read at {at}");
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

/// A child process shares the parent's `Arc<String>` into another slot and empties the
/// parent's: the counts, changed by the other process, add up, and the value lives on.
#[test]
fn a_child_shares_and_gives_up_an_arc() -> Result<()> {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 1 << 20)?;
    let motto = seg.construct("motto", Mutex::new(Arc::<String>::new()))?;
    let copy = seg.construct("copy", Mutex::new(Arc::<String>::new()))?;
    motto.lock()?.insert("shared across processes")?;
    let mut child = spawn_child(CHILD, "share-arc", &[("SHMKIT_NAME", name.get().into())]);
    assert_eq!(
        child.expect_message(LIMIT),
        "strong 2 shared across processes"
    );
    assert!(child.wait(LIMIT).success());
    assert!(motto.lock()?.is_none());
    let copy = copy.lock()?;
    assert_eq!(
        (copy.strong_count(), copy.get().map(|s| s.as_str())),
        (1, Some("shared across processes"))
    );
    Ok(())
}
