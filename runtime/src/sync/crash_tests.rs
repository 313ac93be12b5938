//! Crash sweeps of the user locks, with real threads, the real futex and real owner ids: a
//! victim thread runs an operation crashing at its first, second, … crash point (see
//! `robust::crash`) and ends, which releases its owner id as a killed process's would;
//! then every other thread must get the lock within [`PATIENCE`] (never hang), poisoned
//! exactly when the victim died holding it. The model tests (`tests/loom.rs`) sweep the
//! same points through every interleaving; these sweep them on the kernel.
//!
//! A new primitive adds a scenario: a function of `n` that sets the primitive up, runs the
//! victim with [`victim`], checks that the others proceed, and returns the victim's
//! outcome; [`sweep`] runs it for every `n`.

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::{Mutex, PoisonCause, TryLockError};
use crate::robust::crash::crashes_at;

/// How long a thread may wait for a lock a crashed victim left: far beyond the liveness
/// poll, so only a hang exceeds it.
const PATIENCE: Duration = Duration::from_secs(10);

/// Runs `op` on a thread of its own, crashing it at its `n`-th crash point; the thread has
/// ended (its owner id released) when this returns. The step it crashed at, if it did.
fn victim(n: u32, op: impl FnOnce() + Send) -> Option<&'static str> {
    thread::scope(|s| s.spawn(|| crashes_at(n, op).err()).join().unwrap())
}

/// Runs `scenario(n)` for n = 0, 1, … until its victim completes; the steps it crashed at.
fn sweep(scenario: impl Fn(u32) -> Option<&'static str>) -> BTreeSet<&'static str> {
    let mut steps = BTreeSet::new();
    for n in 0.. {
        match scenario(n) {
            Some(step) => steps.insert(step),
            None => return steps,
        };
    }
    unreachable!("the sweep ends when the victim completes")
}

/// Waits (at most [`PATIENCE`]) until `done`.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "waited in vain for {what}");
        thread::sleep(Duration::from_micros(100));
    }
}

/// The steps of lock and unlock at which the thread holds the lock.
const HOLDING: &[&str] = &[
    "lock: taken from a free word",
    "lock: taken after waiting",
    "lock: taken over from a dead owner",
    "mutex: taken over, not yet poisoned",
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

fn held_at(step: Option<&str>) -> bool {
    step.is_some_and(|step| HOLDING.contains(&step))
}

/// Takes the lock within [`PATIENCE`]: whether it came poisoned by a death.
fn take(m: &Mutex<u64>) -> bool {
    match m.lock_timeout(PATIENCE) {
        Ok(_) => false,
        Err(TryLockError::Poisoned(p)) => {
            assert_eq!(p.cause(), PoisonCause::OwnerDied);
            true
        }
        Err(TryLockError::WouldBlock) => panic!("a lock was not granted in {PATIENCE:?}"),
        Err(TryLockError::Failed(e)) => panic!("lock failed: {e}"),
    }
}

/// Two threads take the lock after the victim: both within [`PATIENCE`], poisoned as said.
fn others_proceed(m: &Mutex<u64>, poisoned: bool, step: Option<&str>) {
    thread::scope(|s| {
        let others = [s.spawn(|| take(m)), s.spawn(|| take(m))];
        for other in others {
            assert_eq!(other.join().unwrap(), poisoned, "crashed at {step:?}");
        }
    });
}

/// The victim locks and unlocks a free lock.
fn alone(n: u32) -> Option<&'static str> {
    let m = Mutex::new(0);
    let step = victim(n, || drop(m.lock()));
    others_proceed(&m, held_at(step), step);
    step
}

/// The victim locks while this thread holds the lock, which it releases once the victim
/// announced that it sleeps (or died first); then the victim unlocks.
fn against_a_holder(n: u32) -> Option<&'static str> {
    let m = Mutex::new(0);
    let step = thread::scope(|s| {
        let guard = m.lock().unwrap();
        let victim = s.spawn(|| victim(n, || drop(m.lock())));
        wait_until("the victim to sleep or die", || {
            m.raw.has_waiters() || victim.is_finished()
        });
        drop(guard);
        victim.join().unwrap()
    });
    others_proceed(&m, held_at(step), step);
    step
}

/// The victim holds the lock while another thread sleeps on it, then unlocks: the sleeper
/// gets the lock within [`PATIENCE`].
fn with_a_sleeper(n: u32) -> Option<&'static str> {
    let m = &Mutex::new(0);
    let (locked, holding) = mpsc::channel();
    let step = thread::scope(|s| {
        let victim = s.spawn(|| {
            victim(n, move || {
                let guard = m.lock();
                locked.send(()).unwrap();
                wait_until("the sleeper to announce itself", || m.raw.has_waiters());
                drop(guard);
            })
        });
        // The victim holds the lock, or died (and dropped its sender) trying.
        let _ = holding.recv();
        let sleeper = s.spawn(|| take(m));
        let step = victim.join().unwrap();
        assert_eq!(
            sleeper.join().unwrap(),
            held_at(step),
            "crashed at {step:?}"
        );
        step
    });
    others_proceed(m, held_at(step), step);
    step
}

/// The victim takes the lock over from a thread that exited holding it, then unlocks: the
/// lock is poisoned whatever step the victim died at.
fn after_a_dead_holder(n: u32) -> Option<&'static str> {
    let m = Mutex::new(0);
    thread::scope(|s| s.spawn(|| std::mem::forget(m.lock())).join().unwrap());
    let step = victim(n, || drop(m.lock()));
    others_proceed(&m, true, step);
    step
}

#[test]
fn a_crash_at_any_step_of_lock_or_unlock_stops_nobody() {
    let mut steps = BTreeSet::new();
    for scenario in [alone, against_a_holder, with_a_sleeper, after_a_dead_holder] {
        steps.extend(sweep(scenario));
    }
    let all: BTreeSet<_> = HOLDING.iter().chain(NOT_HOLDING).copied().collect();
    assert_eq!(steps, all);
}

/// A crash unwinds through the guards the victim holds, which release nothing: its other
/// locks are a dead owner's too (poisoned as by a death, not as by a panic).
#[test]
fn a_crashed_thread_keeps_the_other_locks_it_held() {
    let (outer, m) = (Mutex::new(0), Mutex::new(0));
    // Points 0 and 1 are `outer`'s lock; 2 is the first of `m`'s.
    let step = victim(2, || {
        let _held = outer.lock();
        drop(m.lock());
    });
    assert_eq!(step, Some("lock: trying a free word"));
    others_proceed(&outer, true, step);
    others_proceed(&m, false, step);
}
