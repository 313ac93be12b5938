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

use shmkit_runtime::sync::{
    LockError, Mutex, PoisonCause, RwLock, RwLockUpgradableReadGuard, TryLockError,
};
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

// ----- RwLock ------------------------------------------------------------------------------

/// A counter behind a `RwLock`: readers read it, writers increment it, and loom checks that
/// the lock orders every access.
type Shared = Arc<RwLock<UnsafeCell<u32>>>;

fn shared() -> Shared {
    Arc::new(RwLock::new(UnsafeCell::new(0)))
}

/// Adds one under the write lock; whether it came poisoned by a dead writer.
fn write_once(l: &RwLock<UnsafeCell<u32>>) -> bool {
    let (guard, poisoned) = match l.write() {
        Ok(guard) => (guard, false),
        Err(LockError::Poisoned(p)) => {
            assert_eq!(p.cause(), PoisonCause::OwnerDied);
            (p.into_inner(), true)
        }
        Err(LockError::Failed(e)) => panic!("write lock failed: {e}"),
    };
    // SAFETY: the write lock is held (loom checks that it orders every access).
    guard.with_mut(|n| unsafe { *n += 1 });
    poisoned
}

/// The value under a read lock, poisoned or not.
fn read_once(l: &RwLock<UnsafeCell<u32>>) -> u32 {
    let guard = l.read().unwrap_or_else(|p| match p {
        LockError::Poisoned(p) => p.into_inner(),
        LockError::Failed(e) => panic!("read lock failed: {e}"),
    });
    // SAFETY: a read lock is held: no writer.
    guard.with(|n| unsafe { *n })
}

/// A writer against a reader: every access ordered (the writers against each other are
/// the crash sweep's, whose last round crashes nobody).
#[test]
fn rwlock_a_reader_and_a_writer_exclude_each_other() {
    check(|| {
        let l = shared();
        let writer = {
            let l = l.clone();
            thread::spawn(move || assert!(!write_once(&l)))
        };
        assert!(read_once(&l) <= 1);
        writer.join().unwrap();
        assert_eq!(read_once(&l), 1);
    });
}

/// Two readers asleep behind a writer are both woken by its release.
#[test]
fn rwlock_readers_behind_a_writer_all_finish() {
    check(|| {
        let l = shared();
        let guard = l.write().unwrap();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let l = l.clone();
                thread::spawn(move || read_once(&l))
            })
            .collect();
        // SAFETY: the write lock is held.
        guard.with_mut(|n| unsafe { *n = 7 });
        drop(guard);
        for r in readers {
            assert_eq!(r.join().unwrap(), 7);
        }
    });
}

/// An upgradable reader upgrades with no writer in between: what it read is what it
/// then changes, whatever a racing writer does.
#[test]
fn rwlock_an_upgrade_lets_no_writer_in_between() {
    check(|| {
        let l = shared();
        let writer = {
            let l = l.clone();
            thread::spawn(move || assert!(!write_once(&l)))
        };
        let up = l.upgradable_read().unwrap();
        // SAFETY: the upgradable read lock excludes writers.
        let seen = up.with(|n| unsafe { *n });
        let w = RwLockUpgradableReadGuard::upgrade(up).unwrap();
        // SAFETY: the write lock is held.
        w.with_mut(|n| unsafe {
            assert_eq!(*n, seen);
            *n += 1;
        });
        drop(w);
        writer.join().unwrap();
        assert_eq!(read_once(&l), 2);
    });
}

/// A reader that exits with its guard leaked is a dead reader: a writer gets in, and the
/// lock is not poisoned.
#[test]
fn rwlock_a_dead_reader_blocks_no_writer() {
    check(|| {
        let l = shared();
        let dying = {
            let l = l.clone();
            thread::spawn(move || {
                std::mem::forget(l.read().unwrap());
                model::killed();
            })
        };
        let writer = {
            let l = l.clone();
            thread::spawn(move || write_once(&l))
        };
        dying.join().unwrap();
        assert!(!writer.join().unwrap());
        assert!(!l.is_poisoned());
    });
}

/// A writer that exits with its guard leaked is a dead writer: a reader takes it over,
/// poisoned, and sees what it wrote.
#[test]
fn rwlock_a_dead_writer_is_taken_over_with_poison() {
    check(|| {
        let l = shared();
        let dying = {
            let l = l.clone();
            thread::spawn(move || {
                let guard = l.write().unwrap();
                // SAFETY: the write lock is held.
                guard.with_mut(|n| unsafe { *n += 1 });
                std::mem::forget(guard);
                model::killed();
            })
        };
        let reader = {
            let l = l.clone();
            thread::spawn(move || read_once(&l))
        };
        dying.join().unwrap();
        assert!(reader.join().unwrap() <= 1);
        assert_eq!(read_once(&l), 1);
        assert_eq!(l.poison_cause(), Some(PoisonCause::OwnerDied));
    });
}

/// Crashes one thread's write-and-unlock, then its read-and-unlock, at their first,
/// second, … crash point, in every interleaving with a second thread writing: the second
/// always finishes, and the lock is poisoned exactly when the crashed thread died writing.
#[test]
fn rwlock_a_crash_at_any_step_of_read_or_write_stops_nobody() {
    for writes in [true, false] {
        let crashed_at = StdArc::new(StdMutex::new(BTreeSet::new()));
        for n in 0.. {
            let reached = StdArc::new(AtomicBool::new(false));
            let (crashed_at2, reached2) = (crashed_at.clone(), reached.clone());
            check(move || {
                let l = shared();
                let victim = {
                    let l = l.clone();
                    thread::spawn(move || {
                        let crashed = model::crashes_at(n, || {
                            if writes {
                                assert!(!write_once(&l));
                            } else {
                                read_once(&l);
                            }
                        });
                        model::killed();
                        crashed.err()
                    })
                };
                let other = {
                    let l = l.clone();
                    thread::spawn(move || write_once(&l))
                };
                let step = victim.join().unwrap();
                let poisoned = other.join().unwrap();
                let writing = step.is_some_and(|step| RWLOCK_WRITING.contains(&step));
                // A read lock takes a dead victim's lock over, if nobody did yet.
                let added = u32::from(writes && step.is_none_or(|s| RWLOCK_WROTE.contains(&s)));
                assert_eq!(read_once(&l), 1 + added, "crashed at {step:?}");
                assert_eq!(l.is_poisoned(), writing, "crashed at {step:?}");
                assert!(!poisoned || writing, "crashed at {step:?}");
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
        let expected: &[&str] = if writes {
            RWLOCK_WRITE_STEPS
        } else {
            RWLOCK_READ_STEPS
        };
        for step in expected {
            assert!(crashed_at.contains(step), "never crashed at {step:?}");
        }
    }
}

/// The steps at which a writer has begun to write and not finished: a death poisons.
const RWLOCK_WRITING: &[&str] = &["rwlock write: writing", "rwlock write: ending"];
/// The steps at which a writer's increment is done (or as good as: "writing" is past the
/// store of `writing`, before the increment, so it does not count).
const RWLOCK_WROTE: &[&str] = &[
    "rwlock write: ending",
    "rwlock write: ended",
    "rwlock state release: before the swap",
    "rwlock state: let go, sleepers not yet woken",
    "rwlock state release: released",
];
/// Steps a crashed writer must have been stopped at, in some interleaving.
const RWLOCK_WRITE_STEPS: &[&str] = &[
    "rwlock state: trying a free word",
    "rwlock state: taken from a free word",
    "rwlock state: taken after waiting",
    "rwlock state: waiters bit set, about to sleep",
    "rwlock state: awake",
    "rwlock write: readers drained, not yet writing",
    "rwlock write: writing",
    "rwlock write: ending",
    "rwlock write: ended",
    "rwlock state release: before the swap",
    "rwlock state: let go, sleepers not yet woken",
    "rwlock state release: released",
];
/// Steps a crashed reader must have been stopped at, in some interleaving.
const RWLOCK_READ_STEPS: &[&str] = &[
    "rwlock slot: claiming",
    "rwlock slot: claimed, the writer bit not yet checked",
    "rwlock read: admitted",
    "rwlock state: waiters bit set, about to sleep",
    "rwlock state: awake",
    "rwlock slot release: before the swap",
    "rwlock slot: freed, sleepers not yet woken",
    "rwlock slot release: released",
];
