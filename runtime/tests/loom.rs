//! The lock algorithms' own source, model-checked with loom through every interleaving (up
//! to `LOOM_MAX_PREEMPTIONS`, 3 by default here): exclusion (loom's `UnsafeCell` reports
//! any access not ordered by the lock), no lost wake-up (a waiter never woken is a deadlock
//! loom reports), dead owners taken over, and a crash at every step of lock and unlock, of
//! a condition wait and notification, of a semaphore's post and wait, and of a seqlock's
//! write.
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
    Condvar, LockError, LockResult, Mutex, MutexGuard, PoisonCause, ReadError, RwLock,
    RwLockUpgradableReadGuard, Semaphore, SeqLock, TryLockError,
};
use shmkit_runtime::test_hooks::model::{self, Acquired};

/// Runs `f` through every interleaving loom explores.
fn check(f: impl Fn() + Sync + Send + 'static) {
    check_bounded(3, f);
}

/// As [`check`], with at most `most` preemptions.
fn check_bounded(most: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    let bound = builder.preemption_bound.get_or_insert(3);
    *bound = (*bound).min(most);
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
    let guard = unpoisoned(m.lock());
    // SAFETY: the lock is held.
    guard.with(|n| unsafe { *n })
}

/// The guard, whether or not a dead holder poisoned the lock.
fn unpoisoned<G>(locked: LockResult<G>) -> G {
    locked.unwrap_or_else(|p| match p {
        LockError::Poisoned(p) => p.into_inner(),
        LockError::Failed(e) => panic!("lock failed: {e}"),
    })
}

/// Runs `scenario(n)` through every interleaving with at most `most` preemptions, for
/// n = 0, 1, … until no interleaving reaches the victim's n-th crash point: the steps it
/// crashed at. (Each crash point is an exploration of its own: the sweeps of three threads
/// take two preemptions, as three would take minutes.)
fn sweep(
    most: usize,
    scenario: impl Fn(u32) -> Option<&'static str> + Send + Sync + Copy + 'static,
) -> BTreeSet<&'static str> {
    let crashed_at = StdArc::new(StdMutex::new(BTreeSet::new()));
    for n in 0.. {
        let reached = StdArc::new(AtomicBool::new(false));
        let (crashed_at, reached2) = (crashed_at.clone(), reached.clone());
        check_bounded(most, move || {
            if let Some(step) = scenario(n) {
                reached2.store(true, Ordering::Relaxed);
                crashed_at.lock().unwrap().insert(step);
            }
        });
        if !reached.load(Ordering::Relaxed) {
            break;
        }
    }
    let steps = crashed_at.lock().unwrap().clone();
    steps
}

/// Spawns the victim: `op` on `shared`, crashed at its `n`-th crash point; then the thread
/// ends as a killed process's (time passes for the others). Joined, it says where it
/// crashed. `op` borrows what it shares, so that the crash unwinds through no step of the
/// model (a loom `Arc` dropped): loom's threads share the OS thread's panic count, and
/// another thread run meanwhile would act as if it panicked.
fn victim<S: 'static>(
    n: u32,
    shared: S,
    op: impl FnOnce(&S) + 'static,
) -> thread::JoinHandle<Option<&'static str>> {
    thread::spawn(move || {
        let crashed = model::crashes_at(n, || op(&shared));
        model::killed();
        crashed.err()
    })
}

/// Asserts that the sweep crashed at each of `steps`.
fn crashed_at_each(crashed_at: &BTreeSet<&'static str>, steps: &[&str]) {
    for step in steps {
        assert!(crashed_at.contains(step), "never crashed at {step:?}");
    }
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
/// and the lock is poisoned exactly when the crashed thread died holding it. Every step of
/// lock and unlock must have been hit.
#[test]
fn a_crash_at_any_step_of_lock_or_unlock_stops_nobody() {
    let crashed_at = sweep(3, |n| {
        let m = counter();
        let victim = victim(n, m.clone(), |m| {
            let guard = m.lock().unwrap();
            // SAFETY: the lock is held.
            guard.with_mut(|n| unsafe { *n += 1 });
        });
        let other = {
            let m = m.clone();
            thread::spawn(move || increment(&m))
        };
        let step = victim.join().unwrap();
        other.join().unwrap();
        let added = step.is_none_or(|step| step.starts_with("unlock"));
        assert_eq!(value(&m), 1 + u32::from(added), "crashed at {step:?}");
        assert_eq!(m.is_poisoned(), holding(step), "crashed at {step:?}");
        step
    });
    crashed_at_each(&crashed_at, HOLDING);
    crashed_at_each(&crashed_at, NOT_HOLDING);
}

/// Whether a thread that crashed at `step` died holding a `Mutex`.
fn holding(step: Option<&str>) -> bool {
    step.is_some_and(|step| HOLDING.contains(&step))
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

/// A `Mutex` and a `Condvar` over it, shared by the model threads.
type Guarded<T> = Arc<(Mutex<T>, Condvar)>;

fn guarded<T: shmkit_runtime::ShmSafe>(value: T) -> Guarded<T> {
    Arc::new((Mutex::new(value), Condvar::new()))
}

/// Waits on `s` while `blocked` holds, through poison.
fn wait_while<'a, T>(s: &'a Guarded<T>, blocked: impl Fn(&T) -> bool) -> MutexGuard<'a, T> {
    let guard = unpoisoned(s.0.lock());
    unpoisoned(s.1.wait_while(guard, |value| blocked(&value)))
}

/// Two consumers take one item each, handed over with `notify_one` after each: every item
/// wakes a consumer (two may sleep at once, so a notification that woke nobody leaves one
/// asleep for good, a deadlock loom reports).
#[test]
fn condvar_notify_one_wakes_a_waiter_for_each_item() {
    check(|| {
        let s = guarded(0u32);
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                thread::spawn(move || *wait_while(&s, |items| *items == 0) -= 1)
            })
            .collect();
        for _ in 0..2 {
            *s.0.lock().unwrap() += 1;
            s.1.notify_one();
        }
        for c in consumers {
            c.join().unwrap();
        }
        assert_eq!(*s.0.lock().unwrap(), 0);
    });
}

/// One `notify_all` wakes both waiters.
#[test]
fn condvar_notify_all_wakes_every_waiter() {
    check(|| {
        let s = guarded(0u32);
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                thread::spawn(move || drop(wait_while(&s, |ready| *ready == 0)))
            })
            .collect();
        *s.0.lock().unwrap() = 1;
        s.1.notify_all();
        for w in waiters {
            w.join().unwrap();
        }
    });
}

/// The steps of a condition wait at which the waiter holds the mutex (besides the mutex's
/// own, in its unlock and relock).
const CONDVAR_HOLDING: &[&str] = &["condvar wait: sequence read, mutex held"];
/// The steps of a condition wait in between.
const CONDVAR_WAITING: &[&str] = &[
    "condvar wait: mutex released",
    "condvar wait: counting in",
    "condvar wait: counted in",
    "condvar wait: about to sleep",
    "condvar wait: awake",
    "condvar wait: counting out",
    "condvar wait: counted out",
    "condvar wait: about to relock",
];

/// A waiter killed at any step of its wait (holding the mutex, counted in, asleep, woken by
/// the one `notify_one`, relocking) keeps the other waiter from nothing: it returns (once
/// the victim is dead, at its liveness poll), and the mutex is poisoned exactly when the
/// victim died holding it.
#[test]
fn a_condvar_waiter_killed_at_any_step_blocks_no_notification() {
    let crashed_at = sweep(2, |n| {
        let s = guarded(0u32);
        let victim = victim(n, s.clone(), |s| drop(wait_while(s, |ready| *ready == 0)));
        let other = {
            let s = s.clone();
            thread::spawn(move || drop(wait_while(&s, |ready| *ready == 0)))
        };
        *unpoisoned(s.0.lock()) = 1;
        s.1.notify_one();
        // The one notification reaches the other waiter, even when the victim took its
        // wake-up and died (or ended: a model thread's end is a death).
        other.join().unwrap();
        s.1.notify_all();
        let step = victim.join().unwrap();
        let held = holding(step) || step.is_some_and(|step| CONDVAR_HOLDING.contains(&step));
        // Taking the lock takes a dead holder's over (poisoning it).
        drop(unpoisoned(s.0.lock()));
        assert_eq!(s.0.is_poisoned(), held, "crashed at {step:?}");
        step
    });
    crashed_at_each(&crashed_at, CONDVAR_HOLDING);
    crashed_at_each(&crashed_at, CONDVAR_WAITING);
}

/// A notifier killed at any step of `notify_one` after it moved the sequence (its
/// notification made, the wake-up perhaps not) leaves the waiter waiting only until its
/// liveness poll once the notifier is dead. (One killed before that notified nobody: this
/// thread notifies instead.)
#[test]
fn a_condvar_notifier_killed_at_any_step_strands_no_waiter() {
    let crashed_at = sweep(2, |n| {
        let s = guarded(0u32);
        let waiter = {
            let s = s.clone();
            thread::spawn(move || drop(wait_while(&s, |ready| *ready == 0)))
        };
        let victim = victim(n, s.clone(), |s| {
            *s.0.lock().unwrap() = 1;
            s.1.notify_one();
        });
        let step = victim.join().unwrap();
        if step.is_some_and(|step| !CONDVAR_NOTIFIED.contains(&step)) {
            // It died before its notification began: this thread notifies instead.
            *unpoisoned(s.0.lock()) = 1;
            s.1.notify_one();
        }
        waiter.join().unwrap();
        step
    });
    crashed_at_each(&crashed_at, &["condvar notify: before moving the sequence"]);
    crashed_at_each(&crashed_at, CONDVAR_NOTIFIED);
}

/// The steps of `notify_one` after the notification was made (the sequence moved).
const CONDVAR_NOTIFIED: &[&str] = &[
    "condvar notify: sequence moved",
    "condvar notify: about to wake",
];

/// Two waiters and two posts: each post wakes a waiter (a lost one leaves a waiter asleep
/// for good), each waiter takes one unit, and what was written before the posts is seen
/// after the waits (loom's `UnsafeCell` reports a post that does not release it).
#[test]
fn semaphore_posts_wake_waiters_and_publish_what_came_before() {
    check(|| {
        let s = Arc::new((Semaphore::new(0), UnsafeCell::new(0u32)));
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                thread::spawn(move || {
                    s.0.wait();
                    // SAFETY: written before the posts, only read since.
                    assert_eq!(s.1.with(|v| unsafe { *v }), 7);
                })
            })
            .collect();
        // SAFETY: nobody reads before the posts.
        s.1.with_mut(|v| unsafe { *v = 7 });
        s.0.post().unwrap();
        s.0.post().unwrap();
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(s.0.value(), 0);
    });
}

/// One unit, two takers: exactly one gets it.
#[test]
fn a_semaphore_unit_is_taken_once() {
    check(|| {
        let s = Arc::new(Semaphore::new(1));
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                thread::spawn(move || s.try_wait())
            })
            .collect();
        let took = takers
            .into_iter()
            .filter_map(|t| t.join().unwrap().then_some(()))
            .count();
        assert_eq!(took, 1);
        assert_eq!(s.value(), 0);
    });
}

/// One unit passed on: each waiter takes it and posts it back, and the victim is killed at
/// any step of its wait or its post. The other waiter always gets the unit: also when the
/// victim used up the post's wake-up and died without the unit (then only the other's
/// liveness poll finds it). A unit the victim died holding is lost (a unit has no owner),
/// and this thread posts another.
#[test]
fn a_semaphore_waiter_killed_at_any_step_stops_nobody() {
    let crashed_at = sweep(2, |n| {
        let s = Arc::new(Semaphore::new(0));
        let pass_on = |s: &Semaphore| {
            s.wait();
            s.post().unwrap();
        };
        let victim = victim(n, s.clone(), move |s| pass_on(s));
        let other = {
            let s = s.clone();
            thread::spawn(move || pass_on(&s))
        };
        s.post().unwrap();
        let step = victim.join().unwrap();
        if step.is_some_and(|step| SEMAPHORE_UNIT_LOST.contains(&step)) {
            s.post().unwrap();
        }
        other.join().unwrap();
        assert_eq!(s.value(), 1, "crashed at {step:?}");
        step
    });
    crashed_at_each(&crashed_at, SEMAPHORE_UNIT_LOST);
    crashed_at_each(
        &crashed_at,
        &[
            "semaphore wait: before the decrement",
            "semaphore wait: counting in",
            "semaphore wait: counted in, about to sleep",
            "semaphore wait: awake",
            "semaphore wait: counted out",
            "semaphore post: incremented",
        ],
    );
}

/// The steps of a wait and a post between which the thread holds a unit.
const SEMAPHORE_UNIT_LOST: &[&str] = &[
    "semaphore wait: unit taken",
    "semaphore post: before the increment",
];

/// A poster killed at any step of `post`: a unit it added reaches the sleeping waiter (at
/// its liveness poll once the poster is dead, if the wake-up died with it); one it did not
/// add is posted by this thread instead.
#[test]
fn a_semaphore_poster_killed_at_any_step_strands_no_waiter() {
    let crashed_at = sweep(2, |n| {
        let s = Arc::new(Semaphore::new(0));
        let waiter = {
            let s = s.clone();
            thread::spawn(move || s.wait())
        };
        let victim = victim(n, s.clone(), |s| s.post().unwrap());
        let step = victim.join().unwrap();
        if step == Some("semaphore post: before the increment") {
            s.post().unwrap();
        }
        waiter.join().unwrap();
        assert_eq!(s.value(), 0);
        step
    });
    crashed_at_each(
        &crashed_at,
        &[
            "semaphore post: before the increment",
            "semaphore post: incremented",
            "semaphore post: about to wake",
        ],
    );
}

/// A seqlock's value: two words, so that a copy can tear.
type Pair = [u32; 2];

fn whole(pair: Pair) -> bool {
    pair[0] == pair[1]
}

/// A writer publishes twice while a reader copies: every copy it returns is whole, and
/// the second no older than the first.
#[test]
fn seqlock_readers_never_return_a_torn_value() {
    check(|| {
        let lock = Arc::new(SeqLock::new([0u32; 2]));
        let writer = {
            let lock = lock.clone();
            thread::spawn(move || {
                lock.write([1; 2]).unwrap();
                lock.write([2; 2]).unwrap();
            })
        };
        let first = lock.try_read();
        let second = lock.read().unwrap();
        assert!(first.is_none_or(whole), "torn: {first:?}");
        assert!(whole(second), "torn: {second:?}");
        assert!(first.is_none_or(|first| first[0] <= second[0]));
        writer.join().unwrap();
    });
}

/// Two writers update both words: one at a time, so no update is lost.
#[test]
fn seqlock_writers_exclude_each_other() {
    check(|| {
        let lock = Arc::new(SeqLock::new([0u32; 2]));
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let lock = lock.clone();
                thread::spawn(move || {
                    lock.update(|v| {
                        v[0] += 1;
                        v[1] += 1;
                    })
                    .map_err(drop)
                    .unwrap();
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(lock.read(), Ok([2; 2]));
    });
}

/// The steps of a seqlock write between its odd and its even sequence.
const SEQLOCK_TORN: &[&str] = &[
    "seqlock publish: storing a word",
    "seqlock publish: before the even sequence",
];

/// A writer killed at any step of a write while a reader copies: the reader returns the
/// old or the new value whole, or (only when the writer died between its odd and even
/// sequence) `WriterDied`; the next writer's lock is poisoned exactly when the victim died
/// holding it, its guard holds what the victim left, and publishing it makes the value
/// readable again.
#[test]
fn a_seqlock_writer_killed_at_any_step_is_detected_and_repaired() {
    let crashed_at = sweep(2, |n| {
        let lock = Arc::new(SeqLock::new([0u32; 2]));
        let victim = victim(n, lock.clone(), |lock| lock.write([1; 2]).unwrap());
        let read = lock.read();
        let step = victim.join().unwrap();
        let torn = step.is_some_and(|step| SEQLOCK_TORN.contains(&step));
        match read {
            Ok(pair) => assert!(whole(pair), "torn: {pair:?}"),
            Err(e) => assert!(torn && e == ReadError::WriterDied, "{e:?} at {step:?}"),
        }
        let held = holding(step) || step.is_some_and(|step| step.starts_with("seqlock"));
        let left = match lock.lock() {
            Ok(guard) => {
                assert!(!held, "crashed at {step:?}");
                *guard
            }
            Err(LockError::Poisoned(p)) => {
                assert!(held, "crashed at {step:?}");
                assert_eq!(p.cause(), PoisonCause::OwnerDied);
                *p.into_inner()
            }
            Err(LockError::Failed(e)) => panic!("lock failed: {e}"),
        };
        // The new words are a prefix of what it left; whole unless it died in between.
        assert!(
            left[1] <= left[0] && left[0] <= 1,
            "left {left:?} at {step:?}"
        );
        assert!(torn || whole(left), "left {left:?} at {step:?}");
        // Publishing what it left (the guard, dropped) made the value readable again.
        assert_eq!(lock.read(), Ok(left), "crashed at {step:?}");
        assert!(!lock.is_poisoned(), "crashed at {step:?}");
        step
    });
    crashed_at_each(&crashed_at, SEQLOCK_TORN);
    crashed_at_each(
        &crashed_at,
        &[
            "seqlock publish: before the odd sequence",
            "seqlock publish: even again, poison not yet cleared",
        ],
    );
}
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
        let crashed_at = sweep(3, move |n| {
            let l = shared();
            let victim = victim(n, l.clone(), move |l| {
                if writes {
                    assert!(!write_once(l));
                } else {
                    read_once(l);
                }
            });
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
            step
        });
        let expected = if writes {
            RWLOCK_WRITE_STEPS
        } else {
            RWLOCK_READ_STEPS
        };
        crashed_at_each(&crashed_at, expected);
    }
}

/// A writer waits behind a reader and keeps a second reader out (writer preference): the
/// first reader's release lets the writer in, and the writer's the second reader; nobody
/// is left asleep.
#[test]
fn rwlock_writer_preference_leaves_nobody_asleep() {
    check(|| {
        let l = shared();
        let first = l.read().unwrap();
        let writer = {
            let l = l.clone();
            thread::spawn(move || assert!(!write_once(&l)))
        };
        let reader = {
            let l = l.clone();
            thread::spawn(move || read_once(&l))
        };
        drop(first);
        writer.join().unwrap();
        assert!(reader.join().unwrap() <= 1);
        assert_eq!(read_once(&l), 1);
    });
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
