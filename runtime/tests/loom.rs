//! The lock algorithms' own source, model-checked with loom through every interleaving (up
//! to `LOOM_MAX_PREEMPTIONS`, 3 by default here): exclusion (loom's `UnsafeCell` reports
//! any access not ordered by the lock), no lost wake-up (a waiter never woken is a deadlock
//! loom reports), dead owners taken over, and a crash at every step of lock and unlock.
//!
//! `RUSTFLAGS="--cfg loom" cargo test -p shmkit-runtime --test loom --release`
//! (use another `CARGO_TARGET_DIR` to keep the normal build). What the model stands in for
//! the kernel, and how time passes in it, is in `robust/model.rs`.
#![cfg(loom)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc as StdArc, Mutex as StdMutex};

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

use shmkit_runtime::sync::{LockError, Mutex, PoisonCause, TryLockError};
use shmkit_runtime::test_hooks::model::{self, Acquired};

/// Runs `f` through every interleaving loom explores.
fn check(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound.get_or_insert(3);
    builder.check(f);
}

/// A counter behind a `Mutex`: each increment is a read and a write that loom checks.
type Counter = Arc<Mutex<UnsafeCell<u32>>>;

fn counter() -> Counter {
    Arc::new(Mutex::new(UnsafeCell::new(0)))
}

/// Adds one under the lock; whether the lock came poisoned by a dead holder.
fn increment(m: &Mutex<UnsafeCell<u32>>) -> bool {
    let (guard, poisoned) = match m.lock() {
        Ok(guard) => (guard, false),
        Err(LockError::Poisoned(p)) => {
            assert_eq!(p.cause(), PoisonCause::OwnerDied);
            (p.into_inner(), true)
        }
        Err(LockError::Failed(e)) => panic!("lock failed: {e}"),
    };
    // SAFETY: the lock is held (loom checks that it orders every access).
    guard.with_mut(|n| unsafe { *n += 1 });
    poisoned
}

fn value(m: &Mutex<UnsafeCell<u32>>) -> u32 {
    let guard = m.lock().unwrap_or_else(|p| match p {
        LockError::Poisoned(p) => p.into_inner(),
        LockError::Failed(e) => panic!("lock failed: {e}"),
    });
    // SAFETY: the lock is held.
    guard.with(|n| unsafe { *n })
}

#[test]
fn two_threads_exclude_each_other_twice_each() {
    check(|| {
        let m = counter();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || {
                    for _ in 0..2 {
                        assert!(!increment(&m));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(value(&m), 4);
    });
}

/// Three contending threads: two of them may sleep at once, so every unlock must wake the
/// next sleeper; a lost wake-up leaves one asleep for good, which loom reports as a deadlock.
#[test]
fn three_contending_threads_all_finish() {
    check(|| {
        let m = counter();
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || assert!(!increment(&m)))
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(value(&m), 3);
    });
}

#[test]
fn try_lock_takes_a_free_lock_and_never_waits() {
    check(|| {
        let m = counter();
        let holder = {
            let m = m.clone();
            thread::spawn(move || assert!(!increment(&m)))
        };
        let took = match m.try_lock() {
            Ok(guard) => {
                // SAFETY: the lock is held.
                guard.with_mut(|n| unsafe { *n += 1 });
                true
            }
            Err(TryLockError::WouldBlock) => false,
            Err(_) => panic!("try_lock failed"),
        };
        holder.join().unwrap();
        assert_eq!(value(&m), 1 + u32::from(took));
    });
}

/// A thread that exits holding the lock (its guard leaked) is a dead owner: the others take
/// the lock over, poisoned, and see what it wrote.
#[test]
fn a_dead_holder_is_taken_over_with_poison() {
    check(|| {
        let m = counter();
        let dying = {
            let m = m.clone();
            thread::spawn(move || {
                let guard = m.lock().unwrap();
                // SAFETY: the lock is held.
                guard.with_mut(|n| unsafe { *n += 1 });
                std::mem::forget(guard);
                model::killed();
            })
        };
        let other = {
            let m = m.clone();
            thread::spawn(move || increment(&m))
        };
        dying.join().unwrap();
        other.join().unwrap();
        assert_eq!(value(&m), 2);
        assert!(m.is_poisoned());
    });
}

/// The internal locks (segment and index): a holder found dead is recovered from exactly
/// once, by whichever thread takes the lock over.
#[test]
fn an_internal_lock_is_recovered_once_from_a_dead_holder() {
    check(|| {
        const DEAD: u32 = 1000;
        assert!(!model::alive(DEAD));
        let lock = Arc::new((model::held_by(DEAD), UnsafeCell::new(0u32)));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let lock = lock.clone();
                thread::spawn(move || {
                    let _guard = model::lock_internal(&lock.0, || {
                        // SAFETY: recovery runs under the lock.
                        lock.1.with_mut(|n| unsafe { *n += 1 });
                        Ok(())
                    })
                    .unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // SAFETY: every thread is joined.
        assert_eq!(lock.1.with(|n| unsafe { *n }), 1);
        assert_eq!(lock.0.owner(), None);
    });
}

/// A failed recovery poisons the internal lock for good: the other thread is refused.
#[test]
fn a_failed_recovery_poisons_an_internal_lock_for_everyone() {
    check(|| {
        let lock = Arc::new(model::held_by(1000));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let lock = lock.clone();
                thread::spawn(move || {
                    model::lock_internal(&lock, || {
                        Err(shmkit_runtime::Error::Corrupted {
                            what: "model data".into(),
                            reason: "beyond repair".into(),
                        })
                    })
                    .map(drop)
                    .map_err(|e| e.to_string())
                })
            })
            .collect();
        let errors: Vec<String> = threads
            .into_iter()
            .map(|t| t.join().unwrap().unwrap_err())
            .collect();
        assert_eq!(
            errors
                .iter()
                .filter(|e| e.contains("beyond repair"))
                .count(),
            1
        );
        assert_eq!(errors.iter().filter(|e| e.contains("poisoned")).count(), 1);
        assert_eq!(
            lock.lock(model::thread_id(), model::alive),
            Acquired::Poisoned
        );
    });
}

/// Crashes one thread's lock-and-unlock at its first, second, … crash point, in every
/// interleaving with a second thread doing the same unharmed: the second always finishes,
/// and the lock is poisoned exactly when the crashed thread died holding it. Stops at the
/// first point no interleaving reaches; every step of lock and unlock must have been hit.
#[test]
fn a_crash_at_any_step_of_lock_or_unlock_stops_nobody() {
    let crashed_at = StdArc::new(StdMutex::new(BTreeSet::new()));
    for n in 0.. {
        let reached = StdArc::new(AtomicBool::new(false));
        let (crashed_at2, reached2) = (crashed_at.clone(), reached.clone());
        check(move || {
            let m = counter();
            let victim = {
                let m = m.clone();
                thread::spawn(move || {
                    let crashed = model::crashes_at(n, || {
                        let guard = m.lock().unwrap();
                        // SAFETY: the lock is held.
                        guard.with_mut(|n| unsafe { *n += 1 });
                    });
                    model::killed();
                    crashed.err()
                })
            };
            let other = {
                let m = m.clone();
                thread::spawn(move || increment(&m))
            };
            let step = victim.join().unwrap();
            other.join().unwrap();
            let added = step.is_none_or(|step| step.starts_with("unlock"));
            assert_eq!(value(&m), 1 + u32::from(added), "crashed at {step:?}");
            let held = step.is_some_and(|step| HOLDING.contains(&step));
            assert_eq!(m.is_poisoned(), held, "crashed at {step:?}");
            if let Some(step) = step {
                reached2.store(true, Ordering::Relaxed);
                crashed_at2.lock().unwrap().insert(step);
            }
        });
        if !reached.load(Ordering::Relaxed) {
            break;
        }
    }
    let crashed_at = crashed_at.lock().unwrap();
    for step in HOLDING.iter().chain(NOT_HOLDING) {
        assert!(crashed_at.contains(step), "never crashed at {step:?}");
    }
}

/// The steps of lock and unlock at which the thread holds the lock.
const HOLDING: &[&str] = &[
    "lock: taken from a free word",
    "lock: taken after waiting",
    "unlock: before the swap",
];
/// The steps at which it does not (yet, or any more).
const NOT_HOLDING: &[&str] = &[
    "lock: trying a free word",
    "lock: waiters bit set, about to sleep",
    "lock: awake",
    "unlock: released, a waiter not yet woken",
    "unlock: released",
];
