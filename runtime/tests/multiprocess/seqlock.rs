//! `SeqLock<T>` between real processes (the writers are the helper binary's `seqlock-*`
//! roles, `tests/bin/child/seqlock.rs`): 100,000 reads here of values a child writes are
//! never torn; a writer SIGKILLed in the middle of a write (a kill loop) leaves readers an
//! error instead of a hang or a torn value, and the next writer repairs it; a writer killed
//! inside `update`'s closure poisons the lock but tears nothing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmkit_runtime::sync::{LockError, PoisonCause, ReadError, SeqLock};
use shmkit_runtime::ManagedSharedMemory;
use shmkit_test_support::{spawn_child, ChildProc, Rng, ShmGuard};

const LIMIT: Duration = Duration::from_secs(20);
/// Words of the children's values (`tests/bin/child/seqlock.rs`).
const SMALL: usize = 16;
const BIG: usize = 4096;

fn child(name: &ShmGuard, role: &str) -> ChildProc {
    spawn_child(
        env!("CARGO_BIN_EXE_shmkit-test-child"),
        role,
        &[("SHMKIT_NAME", name.get().to_owned())],
    )
}

/// The value's word if all words agree; fails on a torn value.
fn whole(v: &[u64]) -> u64 {
    assert!(v.iter().all(|w| *w == v[0]), "torn: {:?}…", &v[..4]);
    v[0]
}

#[test]
fn reads_of_a_value_another_process_writes_are_never_torn() {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 64 * 1024).unwrap();
    let seq = seg.construct("seq", SeqLock::new([0u64; SMALL])).unwrap();
    let mut writer = child(&name, "seqlock-write");
    assert_eq!(writer.expect_message(LIMIT), "writing");
    let mut last = 0;
    let mut changes = 0;
    let mut reads = 0;
    // At least 100,000 reads, and on until they overlapped some writes (on a loaded machine
    // the writer may hardly have run during the first 100,000).
    let started = Instant::now();
    while reads < 100_000 || (changes <= 10 && started.elapsed() < LIMIT) {
        let v = whole(&seq.read_timeout(LIMIT).unwrap());
        assert!(v >= last, "went back from {last} to {v}");
        changes += u32::from(v != last);
        last = v;
        reads += 1;
    }
    writer.kill();
    assert!(
        changes > 10,
        "{reads} reads overlapped only {changes} writes"
    );
}

/// 50 rounds: a child writes 32 KiB values in a loop and is SIGKILLed at a random moment
/// (mostly inside a copy), while a reader thread here keeps reading. Reads give whole
/// values or `WriterDied`, never a torn value or a hang; after a death mid-write the next
/// writer (this process) is told, and its write makes the value whole again.
#[test]
fn a_writer_killed_mid_write_is_reported_and_repaired() {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 256 * 1024).unwrap();
    let seq = seg.construct("seq", SeqLock::new([0u64; BIG])).unwrap();
    let seed = Rng::time_seed();
    eprintln!("seed {seed}");
    let mut rng = Rng::new(seed);
    let stop = AtomicBool::new(false);
    let died_seen = AtomicU64::new(0);
    let mut torn_rounds = 0;
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                match seq.read_timeout(LIMIT) {
                    Ok(v) => {
                        whole(&v);
                    }
                    Err(ReadError::WriterDied) => {
                        died_seen.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(ReadError::TimedOut) => panic!("a reader waited {LIMIT:?}"),
                }
            }
        });
        // Stops the reader thread however this one ends (or the scope would wait for it).
        let _stop = StopOnDrop(&stop);
        for round in 0..50 {
            let mut writer = child(&name, "seqlock-write-big");
            assert_eq!(writer.expect_message(LIMIT), "writing");
            std::thread::sleep(Duration::from_micros(rng.range(0, 2_000)));
            writer.kill();
            let started = Instant::now();
            match seq.read_timeout(LIMIT) {
                Ok(v) => {
                    whole(&v);
                    assert!(!seq.is_poisoned(), "round {round}");
                }
                Err(ReadError::WriterDied) => {
                    torn_rounds += 1;
                    assert!(started.elapsed() < LIMIT / 2, "round {round}");
                    assert_eq!(seq.try_read(), None);
                    let Err(LockError::Poisoned(p)) = seq.lock() else {
                        panic!("round {round}: the next writer must be told");
                    };
                    assert_eq!(p.cause(), PoisonCause::OwnerDied);
                    let mut g = p.into_inner();
                    let v = g.iter().copied().max().unwrap_or_default();
                    *g = [v; BIG];
                    drop(g);
                    assert_eq!(whole(&seq.read().unwrap()), v, "round {round}: repaired");
                }
                Err(ReadError::TimedOut) => panic!("round {round}: a read waited {LIMIT:?}"),
            }
        }
    });
    eprintln!(
        "writers killed mid-write: {torn_rounds} of 50 (the reader thread saw it {} times)",
        died_seen.load(Ordering::Relaxed)
    );
    assert!(torn_rounds > 0, "no kill landed inside a write");
}

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_writer_killed_inside_update_poisons_the_lock_but_tears_nothing() {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 64 * 1024).unwrap();
    let seq = seg.construct("seq", SeqLock::new([3u64; SMALL])).unwrap();
    let mut writer = child(&name, "seqlock-stall-in-update");
    assert_eq!(writer.expect_message(LIMIT), "updating");
    assert_eq!(
        seq.read(),
        Ok([3; SMALL]),
        "readers go on while a writer holds the lock"
    );
    writer.kill();
    assert_eq!(
        seq.read(),
        Ok([3; SMALL]),
        "the closure's change was never published"
    );
    let Err(LockError::Poisoned(p)) = seq.lock() else {
        panic!("a writer that died holding the lock poisons it");
    };
    assert_eq!(p.cause(), PoisonCause::OwnerDied);
    assert_eq!(**p.get_ref(), [3; SMALL]);
    drop(p);
    assert!(!seq.is_poisoned());
}
