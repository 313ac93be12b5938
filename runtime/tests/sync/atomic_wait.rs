//! `atomic_wait` / `atomic_notify_*` between threads: a changed value returns at once, a
//! notify wakes, a timeout times out, `notify_all` wakes everyone.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmkit_runtime::sync::{atomic_notify_all, atomic_notify_one, atomic_wait, WaitOutcome};
use shmkit_runtime::ManagedHeapMemory;

#[test]
fn a_value_other_than_expected_returns_at_once() {
    let a = AtomicU32::new(1);
    assert_eq!(atomic_wait(&a, 0, None), WaitOutcome::Changed);
    assert_eq!(
        atomic_wait(&a, 0, Some(Duration::from_secs(10))),
        WaitOutcome::Changed
    );
}

#[test]
fn a_wait_without_a_notify_times_out() {
    let a = AtomicU32::new(0);
    let timeout = Duration::from_millis(30);
    let started = Instant::now();
    assert_eq!(atomic_wait(&a, 0, Some(timeout)), WaitOutcome::TimedOut);
    assert!(started.elapsed() >= timeout);
    assert_eq!(
        atomic_wait(&a, 0, Some(Duration::ZERO)),
        WaitOutcome::TimedOut
    );
}

/// A doorbell in a segment: the waiter loops on its condition, as the docs say to.
#[test]
fn a_store_and_notify_wakes_the_waiter() {
    let seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    let bell = seg.construct("bell", AtomicU32::new(0)).unwrap();
    let rounds = if cfg!(miri) { 5 } else { 1_000 };
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 1..=rounds {
                while bell.load(Ordering::Acquire) < i {
                    atomic_wait(bell, i - 1, None);
                }
            }
        });
        for i in 1..=rounds {
            bell.store(i, Ordering::Release);
            atomic_notify_one(bell);
        }
    });
    assert_eq!(bell.load(Ordering::Relaxed), rounds);
}

#[test]
fn notify_all_wakes_every_waiter() {
    let gate = AtomicU32::new(0);
    let woken = AtomicU32::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                while gate.load(Ordering::Acquire) == 0 {
                    atomic_wait(&gate, 0, None);
                }
                woken.fetch_add(1, Ordering::Relaxed);
            });
        }
        std::thread::sleep(Duration::from_millis(10));
        gate.store(1, Ordering::Release);
        atomic_notify_all(&gate);
    });
    assert_eq!(woken.load(Ordering::Relaxed), 4);
}
