//! Segment vectors in shared memory: behind shmkit's `Mutex`, shared by threads and by a
//! child process that maps the segment at other addresses.

use std::time::Duration;

use shmkit_containers::{Vec, VecExt};
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
    let a = seg.construct("a", Mutex::new(Vec::<u64>::new()))?;
    let b = seg.construct("b", Mutex::new(Vec::<u64>::new()))?;
    crate::model::run(&mut [a.lock()?, b.lock()?], 0x10c4, crate::model::OPS);
    Ok(())
}

/// Threads push under one lock: every value arrives once.
fn threads_push_under(shared: &Mutex<Vec<u64>>) -> Result<()> {
    const THREADS: u64 = 4;
    const EACH: u64 = 3000;
    std::thread::scope(|s| {
        let threads: std::vec::Vec<_> = (0..THREADS)
            .map(|t| {
                s.spawn(move || -> Result<()> {
                    for x in t * EACH..(t + 1) * EACH {
                        shared.lock()?.push(x)?;
                    }
                    Ok(())
                })
            })
            .collect();
        threads
            .into_iter()
            .try_for_each(|t| t.join().expect("a pushing thread panicked"))
    })?;
    let mut all = shared.lock()?.to_vec();
    all.sort_unstable();
    assert_eq!(all, (0..THREADS * EACH).collect::<std::vec::Vec<_>>());
    Ok(())
}

#[test]
fn threads_push_under_one_lock_on_a_heap_segment() -> Result<()> {
    let seg = shmkit_runtime::ManagedHeapMemory::new(4 << 20)?;
    threads_push_under(seg.construct("shared", Mutex::new(Vec::<u64>::new()))?)
}

#[test]
fn threads_push_under_one_lock_in_shared_memory() -> Result<()> {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 4 << 20)?;
    threads_push_under(seg.construct("shared", Mutex::new(Vec::<u64>::new()))?)
}

/// A child process reads the parent's nested vectors through mappings of its own, at other
/// addresses than the parent's.
#[test]
fn a_child_reads_nested_vectors_at_other_addresses() -> Result<()> {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 1 << 20)?;
    let rows = seg.construct("rows", Mutex::new(Vec::<Vec<u64>>::new()))?;
    {
        let mut rows = rows.lock()?;
        for n in 0..20 {
            rows.push(Vec::new())?;
            rows.last_mut().expect("pushed").extend(0..n)?;
        }
    }
    let expected: std::vec::Vec<String> = (0..20u64)
        .map(|n| format!("{n}:{}", n * n.saturating_sub(1) / 2))
        .collect();
    let mut child = spawn_child(CHILD, "read-rows", &[("SHMKIT_NAME", name.get().into())]);
    let mut addresses = std::vec::Vec::new();
    for _ in 0..2 {
        let line = child.expect_message(LIMIT);
        let (at, summary) = line
            .strip_prefix("at ")
            .and_then(|l| l.split_once(" rows "))
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

/// The parent and a child process push onto one `Mutex<Vec<u64>>` at the same time: the
/// totals add up.
#[test]
fn a_parent_and_a_child_push_under_one_lock() -> Result<()> {
    const EACH: u64 = 5000;
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 4 << 20)?;
    let shared = seg.construct("shared", Mutex::new(Vec::<u64>::new()))?;
    let mut child = spawn_child(
        CHILD,
        "push",
        &[
            ("SHMKIT_NAME", name.get().into()),
            ("SHMKIT_FROM", EACH.to_string()),
            ("SHMKIT_TO", (2 * EACH).to_string()),
        ],
    );
    assert_eq!(child.expect_message(LIMIT), "ready");
    child.release();
    for x in 0..EACH {
        shared.lock()?.push(x)?;
    }
    assert_eq!(child.expect_message(LIMIT), "done");
    assert!(child.wait(LIMIT).success());
    let all = shared.lock()?;
    assert_eq!(all.len() as u64, 2 * EACH);
    assert_eq!(all.iter().sum::<u64>(), (2 * EACH) * (2 * EACH - 1) / 2);
    let mut sorted = all.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len() as u64, 2 * EACH);
    Ok(())
}

/// A mapping checks that each buffer it validates is a block of its own from a walk of the
/// segment's blocks that it keeps for the next check; another mapping growing a vector
/// meanwhile must not make that walk refuse the new buffer.
#[test]
fn a_walk_kept_from_an_earlier_check_never_refuses_a_buffer_grown_since() -> Result<()> {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 4 << 20)?;
    seg.construct("m", Mutex::new(Vec::<u64>::new()))?;
    seg.construct("v", Mutex::new(Vec::<u64>::new()))?
        .lock()?
        .extend(0..100)?;
    let other = ManagedSharedMemory::open(name.get())?;
    let v = other
        .find::<Mutex<Vec<u64>>>("v")?
        .expect("constructed above");
    assert_eq!(v.lock()?.len(), 100);
    // The creating mapping grows "m" into new blocks, beyond the thread caches.
    seg.find::<Mutex<Vec<u64>>>("m")?
        .expect("constructed above")
        .lock()?
        .extend(0..10_000)?;
    let m = other
        .find::<Mutex<Vec<u64>>>("m")?
        .expect("constructed above");
    assert_eq!(m.lock()?.len(), 10_000);
    Ok(())
}
