//! `SegmentObserver`: a read-only mapping that lets writers in, reading a `SeqLock` a
//! child process writes (the helper binary's `seqlock-write` role). The observer attaches
//! cold (no writer yet: it validates, then lets writers in) or warm (a writer attached);
//! its reads are never torn; a `ReadOnly` mapping is still refused while the writer lives;
//! a writer SIGKILLed mid-write is reported to the observer, not a hang; lookups racing a
//! writer process that churns the index find only what is there.

use std::time::{Duration, Instant};

use shmkit_runtime::sync::{ReadError, SeqLock};
use shmkit_runtime::{Error, ManagedSharedMemory, SharedMemoryObserver};
use shmkit_test_support::{spawn_child, ChildProc, ShmGuard};

const LIMIT: Duration = Duration::from_secs(20);
/// Words of the child's values (`tests/bin/child/seqlock.rs`).
const SMALL: usize = 16;

fn writer(name: &ShmGuard) -> ChildProc {
    let mut child = spawn_child(
        env!("CARGO_BIN_EXE_shmkit-test-child"),
        "seqlock-write",
        &[("SHMKIT_NAME", name.get().to_owned())],
    );
    assert_eq!(child.expect_message(LIMIT), "writing");
    child
}

/// A segment holding the child's seqlock, with no mapping of this process left.
fn made() -> ShmGuard {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 64 * 1024).unwrap();
    seg.construct("seq", SeqLock::new([0u64; SMALL])).unwrap();
    name
}

/// Reads until 100,000 reads overlapped more than 10 writes: whole values, never going back.
fn watch(observer: &SharedMemoryObserver) {
    let seq = observer
        .find::<SeqLock<[u64; SMALL]>>("seq")
        .unwrap()
        .expect("constructed");
    let (mut last, mut changes, mut reads) = (0, 0, 0);
    let started = Instant::now();
    while reads < 100_000 || (changes <= 10 && started.elapsed() < LIMIT) {
        let v = seq.read_timeout(LIMIT).unwrap();
        assert!(v.iter().all(|w| *w == v[0]), "torn: {:?}", &v[..4]);
        assert!(v[0] >= last, "went back from {last} to {}", v[0]);
        changes += u32::from(v[0] != last);
        last = v[0];
        reads += 1;
    }
    assert!(changes > 10, "{reads} reads overlapped {changes} writes");
}

#[test]
fn an_observer_opened_before_the_writer_lets_it_in_and_reads_it_whole() {
    let name = made();
    let observer = SharedMemoryObserver::open(name.get()).unwrap();
    let mut child = writer(&name);
    watch(&observer);
    child.kill();
}

#[test]
fn an_observer_attaches_while_a_writer_writes_where_a_read_only_mapping_is_refused() {
    let name = made();
    let mut child = writer(&name);
    assert!(matches!(
        ManagedSharedMemory::options().read_only().open(name.get()),
        Err(Error::InUse { .. })
    ));
    let observer = SharedMemoryObserver::open(name.get()).unwrap();
    watch(&observer);
    child.kill();
}

#[test]
fn a_writer_killed_mid_write_is_reported_to_the_observer() {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 256 * 1024).unwrap();
    seg.construct("seq", SeqLock::new([0u64; 4096])).unwrap();
    drop(seg);
    let observer = SharedMemoryObserver::open(name.get()).unwrap();
    let seq = observer
        .find::<SeqLock<[u64; 4096]>>("seq")
        .unwrap()
        .unwrap();
    // Kill writers at varying moments until one dies inside a copy (most do: a copy of
    // 32 KiB is most of a write's time).
    for round in 0..50 {
        let mut child = spawn_child(
            env!("CARGO_BIN_EXE_shmkit-test-child"),
            "seqlock-write-big",
            &[("SHMKIT_NAME", name.get().to_owned())],
        );
        assert_eq!(child.expect_message(LIMIT), "writing");
        std::thread::sleep(Duration::from_micros(200 + 97 * round));
        child.kill();
        match seq.read_timeout(LIMIT) {
            Err(ReadError::WriterDied) => return,
            Ok(v) => assert!(v.iter().all(|w| *w == v[0]), "torn"),
            Err(e) => panic!("round {round}: {e}"),
        }
    }
    panic!("no writer of 50 died inside a copy");
}

/// Lookups without the lock race a writer process that grows the hash table, undoes
/// constructions and publishes objects together (`test-support/src/churn.rs`): a kept
/// object found holds its own value, an undone one is never found, all are there at the
/// end. The observer attaches cold, before the writer.
#[test]
fn lookups_racing_a_writer_process_churning_the_index_find_only_what_is_there() {
    use shmkit_test_support::churn;
    const N: usize = 20_000;
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 16 << 20).unwrap();
    seg.construct(churn::MADE, std::sync::atomic::AtomicU64::new(0))
        .unwrap();
    drop(seg);
    let observer = SharedMemoryObserver::open(name.get()).unwrap();
    let mut child = spawn_child(
        env!("CARGO_BIN_EXE_shmkit-test-child"),
        "observer-churn",
        &[
            ("SHMKIT_NAME", name.get().to_owned()),
            ("SHMKIT_COUNT", N.to_string()),
        ],
    );
    assert_eq!(child.expect_message(LIMIT), "churning");
    churn::watch(&observer, N, 6 * LIMIT);
    child.assert_success(LIMIT);
}
