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

use super::{
    Condvar, LockError, LockResult, Mutex, MutexGuard, PoisonCause, ReadError, RwLock,
    RwLockUpgradableReadGuard, RwLockWriteGuard, Semaphore, SeqLock, TryLockError,
};
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

/// Sweeps `scenario` until it crashed at each of `steps`: the path a victim takes, and so
/// the steps it passes, depends on how the threads ran, so a few sweeps may be needed. Under
/// Miri, whose scheduler follows few paths, one sweep checks what happens at the steps it
/// reaches (the model tests, `tests/loom.rs`, reach every step).
fn sweep_covering(scenario: impl Fn(u32) -> Option<&'static str>, steps: &[&str]) {
    let mut seen = BTreeSet::new();
    for _ in 0..if cfg!(miri) { 1 } else { 5 } {
        seen.extend(sweep(&scenario));
        if steps.iter().all(|step| seen.contains(step)) {
            return;
        }
    }
    if !cfg!(miri) {
        let missed: Vec<_> = steps.iter().filter(|step| !seen.contains(*step)).collect();
        panic!("never crashed at {missed:?}");
    }
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

/// Runs `op` like [`victim`], on a thread of its own that the caller joins (`join`
/// returns once the thread has ended, its owner id released).
fn spawn_victim<'scope>(
    s: &'scope thread::Scope<'scope, '_>,
    n: u32,
    op: impl FnOnce() + Send + 'scope,
) -> thread::ScopedJoinHandle<'scope, Option<&'static str>> {
    s.spawn(move || crashes_at(n, op).err())
}

/// The guard, whether or not a death poisoned the lock.
fn unpoisoned<G>(locked: LockResult<G>) -> G {
    locked.unwrap_or_else(|e| match e {
        LockError::Poisoned(p) => p.into_inner(),
        LockError::Failed(e) => panic!("lock failed: {e}"),
    })
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

// ----- Condvar, Semaphore, SeqLock -------------------------------------------------------

/// A `Mutex<bool>` flag and a `Condvar` over it.
type Flag = (Mutex<bool>, Condvar);

/// Waits (at most [`PATIENCE`]) until the flag is set, through poison.
fn await_flag(f: &Flag) {
    let guard = unpoisoned(f.0.lock());
    let (_guard, waited) = unpoisoned(f.1.wait_timeout_while(guard, PATIENCE, |set| !*set));
    assert!(
        !waited.timed_out(),
        "a condvar waiter was not woken in {PATIENCE:?}"
    );
}

fn raise(f: &Flag) -> MutexGuard<'_, bool> {
    let mut guard = unpoisoned(f.0.lock());
    *guard = true;
    guard
}

/// The steps of a condition wait at which the waiter holds the mutex (besides the mutex's
/// own).
const CONDVAR_HOLDING: &[&str] = &["condvar wait: sequence read, mutex held"];
/// The steps of `notify_one` after the notification was made.
const CONDVAR_NOTIFIED: &[&str] = &[
    "condvar notify: sequence moved",
    "condvar notify: about to wake",
];

/// The victim waits on the flag beside another waiter; once both sleep (or the victim
/// died), this thread raises it and notifies one: the other waiter returns within
/// [`PATIENCE`] even when the victim took the wake-up and died, and the mutex is poisoned
/// exactly when the victim died holding it.
fn condvar_waiter(n: u32) -> Option<&'static str> {
    let f = &(Mutex::new(false), Condvar::new());
    let step = thread::scope(|s| {
        let victim = spawn_victim(s, n, || await_flag(f));
        let other = s.spawn(|| await_flag(f));
        wait_until("the waiters to sleep or the victim to die", || {
            f.1.waiters_hint() >= 2 || victim.is_finished()
        });
        drop(raise(f));
        f.1.notify_one();
        other.join().unwrap();
        f.1.notify_all();
        victim.join().unwrap()
    });
    let held = held_at(step) || step.is_some_and(|step| CONDVAR_HOLDING.contains(&step));
    let poisoned = match f.0.lock_timeout(PATIENCE) {
        Ok(_) => false,
        Err(TryLockError::Poisoned(_)) => true,
        Err(_) => panic!("the mutex was not granted in {PATIENCE:?}"),
    };
    assert_eq!(poisoned, held, "crashed at {step:?}");
    step
}

/// The victim raises the flag and notifies while another thread sleeps on it: the
/// sleeper returns within [`PATIENCE`] once the notification was made (this thread makes
/// it when the victim died before).
fn condvar_notifier(n: u32) -> Option<&'static str> {
    let f = &(Mutex::new(false), Condvar::new());
    thread::scope(|s| {
        let waiter = s.spawn(|| await_flag(f));
        wait_until("the waiter to sleep", || f.1.waiters_hint() >= 1);
        let step = victim(n, || {
            drop(raise(f));
            f.1.notify_one();
        });
        if step.is_some_and(|step| !CONDVAR_NOTIFIED.contains(&step)) {
            drop(raise(f));
            f.1.notify_one();
        }
        waiter.join().unwrap();
        step
    })
}

#[test]
fn a_crash_at_any_step_of_a_condition_wait_or_notification_stops_nobody() {
    sweep_covering(
        condvar_waiter,
        &[
            CONDVAR_HOLDING[0],
            "condvar wait: mutex released",
            "condvar wait: counting in",
            "condvar wait: counted in",
            "condvar wait: about to sleep",
            "condvar wait: awake",
            "condvar wait: counting out",
            "condvar wait: counted out",
            "condvar wait: about to relock",
        ],
    );
    sweep_covering(
        condvar_notifier,
        &[
            "condvar notify: before moving the sequence",
            CONDVAR_NOTIFIED[0],
            CONDVAR_NOTIFIED[1],
        ],
    );
}

/// Takes a unit within [`PATIENCE`].
fn take_unit(sem: &Semaphore) {
    assert!(sem.wait_timeout(PATIENCE), "no unit in {PATIENCE:?}");
}

/// The victim waits for a unit beside another waiter; once both sleep (or the victim
/// died), this thread posts two: the other gets one within [`PATIENCE`] even when the
/// victim used up a wake-up and died, and the victim's unit is lost exactly when it died
/// after taking it (a unit has no owner).
fn semaphore_waiter(n: u32) -> Option<&'static str> {
    let sem = &Semaphore::new(0);
    let step = thread::scope(|s| {
        let victim = spawn_victim(s, n, || take_unit(sem));
        let other = s.spawn(|| take_unit(sem));
        wait_until("the waiters to sleep or the victim to die", || {
            sem.waiters_hint() >= 2 || victim.is_finished()
        });
        sem.post().unwrap();
        sem.post().unwrap();
        other.join().unwrap();
        victim.join().unwrap()
    });
    let took = step.is_none_or(|step| step == "semaphore wait: unit taken");
    assert_eq!(sem.value(), 1 - u32::from(took), "crashed at {step:?}");
    step
}

/// The victim posts while another thread sleeps for a unit: a unit it added reaches the
/// sleeper within [`PATIENCE`] (at its liveness poll if the wake-up died with the victim);
/// one it did not add, this thread posts.
fn semaphore_poster(n: u32) -> Option<&'static str> {
    let sem = &Semaphore::new(0);
    let step = thread::scope(|s| {
        let waiter = s.spawn(|| take_unit(sem));
        wait_until("the waiter to sleep", || sem.waiters_hint() >= 1);
        let step = victim(n, || sem.post().unwrap());
        if step == Some("semaphore post: before the increment") {
            sem.post().unwrap();
        }
        waiter.join().unwrap();
        step
    });
    assert_eq!(sem.value(), 0, "crashed at {step:?}");
    step
}

#[test]
fn a_crash_at_any_step_of_a_semaphore_wait_or_post_stops_nobody() {
    sweep_covering(
        semaphore_waiter,
        &[
            "semaphore wait: before the decrement",
            "semaphore wait: unit taken",
            "semaphore wait: counting in",
            "semaphore wait: counted in, about to sleep",
            "semaphore wait: awake",
            "semaphore wait: counted out",
        ],
    );
    sweep_covering(
        semaphore_poster,
        &[
            "semaphore post: before the increment",
            "semaphore post: incremented",
            "semaphore post: about to wake",
        ],
    );
}

const WORDS: usize = 4;
/// The steps of a seqlock write between its odd and its even sequence.
const SEQLOCK_TORN: &[&str] = &[
    "seqlock publish: storing a word",
    "seqlock publish: before the even sequence",
];

/// The victim writes a seqlock: readers get the old or the new value whole, or
/// `WriterDied` (within [`PATIENCE`]) exactly when it died in the middle of the copy; the
/// next writer's lock is poisoned exactly when it died holding the lock, and holds what it
/// left (new words a prefix); publishing that makes the value readable again.
fn seqlock_writer(n: u32) -> Option<&'static str> {
    let lock = SeqLock::new([7u64; WORDS]);
    let step = victim(n, || lock.write([9; WORDS]).unwrap());
    let torn = step.is_some_and(|step| SEQLOCK_TORN.contains(&step));
    match lock.read_timeout(PATIENCE) {
        Ok(value) => assert!(!torn && (value == [7; WORDS] || value == [9; WORDS])),
        Err(e) => assert!(torn && e == ReadError::WriterDied, "{e:?} at {step:?}"),
    }
    let held = held_at(step) || step.is_some_and(|step| step.starts_with("seqlock"));
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
    let new = left.iter().take_while(|&&word| word == 9).count();
    assert!(left[new..].iter().all(|&word| word == 7), "left {left:?}");
    assert!(
        torn || new == 0 || new == WORDS,
        "left {left:?} at {step:?}"
    );
    assert_eq!(lock.read_timeout(PATIENCE), Ok(left), "crashed at {step:?}");
    assert!(!lock.is_poisoned());
    step
}

#[test]
fn a_crash_at_any_step_of_a_seqlock_write_is_detected_and_repaired() {
    sweep_covering(
        seqlock_writer,
        &[
            "seqlock publish: before the odd sequence",
            SEQLOCK_TORN[0],
            SEQLOCK_TORN[1],
            "seqlock publish: even again, poison not yet cleared",
        ],
    );
}

// ----- RwLock ------------------------------------------------------------------------------

/// The steps at which a writer has begun to write and not finished: a death there poisons.
const RW_WRITING: &[&str] = &["rwlock write: writing", "rwlock write: ending"];

/// A read lock and then the write lock within [`PATIENCE`]: whether they came poisoned.
fn rw_take(l: &RwLock<u64>) -> bool {
    let poisoned = |cause: PoisonCause| {
        assert_eq!(cause, PoisonCause::OwnerDied);
        true
    };
    let read = match l.read_timeout(PATIENCE) {
        Ok(_) => false,
        Err(TryLockError::Poisoned(p)) => poisoned(p.cause()),
        Err(e) => panic!("a read lock was not granted in {PATIENCE:?}: {e:?}"),
    };
    let write = match l.write_timeout(PATIENCE) {
        Ok(_) => false,
        Err(TryLockError::Poisoned(p)) => poisoned(p.cause()),
        Err(e) => panic!("the write lock was not granted in {PATIENCE:?}: {e:?}"),
    };
    assert_eq!(read, write);
    read
}

/// Two threads read and write after the victim: poisoned exactly when it died writing (or
/// `dead_writer_before`: a writer died before the victim came).
fn rw_others_proceed(l: &RwLock<u64>, step: Option<&str>, dead_writer_before: bool) {
    let poisoned = dead_writer_before || step.is_some_and(|s| RW_WRITING.contains(&s));
    thread::scope(|s| {
        let others = [s.spawn(|| rw_take(l)), s.spawn(|| rw_take(l))];
        for other in others {
            assert_eq!(other.join().unwrap(), poisoned, "crashed at {step:?}");
        }
    });
}

/// What the victim does with the lock.
#[derive(Clone, Copy)]
enum RwOp {
    Read,
    Write,
    /// Upgradable read, then upgrade, then release.
    Upgrade,
    /// Write, downgrade to a read, release.
    Downgrade,
    /// Write, downgrade to the upgradable read, release.
    DowngradeToUpgradable,
}

impl RwOp {
    const ALL: [RwOp; 5] = [
        RwOp::Read,
        RwOp::Write,
        RwOp::Upgrade,
        RwOp::Downgrade,
        RwOp::DowngradeToUpgradable,
    ];

    /// Runs the operation; a poisoned lock is used anyway.
    fn run(self, l: &RwLock<u64>) {
        match self {
            RwOp::Read => drop(unpoisoned(l.read())),
            RwOp::Write => drop(unpoisoned(l.write())),
            RwOp::Upgrade => {
                let up = unpoisoned(l.upgradable_read());
                drop(RwLockUpgradableReadGuard::upgrade(up).unwrap());
            }
            RwOp::Downgrade => drop(RwLockWriteGuard::downgrade(unpoisoned(l.write()))),
            RwOp::DowngradeToUpgradable => drop(RwLockWriteGuard::downgrade_to_upgradable(
                unpoisoned(l.write()),
            )),
        }
    }
}

/// The victim runs `op` on a free lock.
fn rw_alone(op: RwOp, n: u32) -> Option<&'static str> {
    let l = RwLock::new(0);
    let step = victim(n, || op.run(&l));
    rw_others_proceed(&l, step, false);
    step
}

/// The victim runs `op` while this thread holds `what` (a read or the write lock), which it
/// releases once the victim announced that it sleeps (or died first).
fn rw_against(op: RwOp, write: bool, n: u32) -> Option<&'static str> {
    let l = RwLock::new(0);
    let step = thread::scope(|s| {
        let (read, written) = if write {
            (None, Some(l.write().unwrap()))
        } else {
            (Some(l.read().unwrap()), None)
        };
        let victim = s.spawn(|| victim(n, || op.run(&l)));
        wait_until("the victim to sleep or die", || {
            l.raw.has_waiters() || victim.is_finished()
        });
        drop((read, written));
        victim.join().unwrap()
    });
    rw_others_proceed(&l, step, false);
    step
}

/// The victim holds what `op` takes while another thread sleeps on the lock (a writer
/// behind a read, a reader behind a write), then releases it: the sleeper gets in.
fn rw_with_a_sleeper(op: RwOp, n: u32) -> Option<&'static str> {
    let l = &RwLock::new(0);
    let (taken, holding) = mpsc::channel();
    let step = thread::scope(|s| {
        let victim = s.spawn(|| {
            victim(n, move || {
                let sleeper_in = || l.raw.has_waiters();
                match op {
                    RwOp::Read => {
                        let _g = l.read();
                        taken.send(()).unwrap();
                        wait_until("the writer to sleep", sleeper_in);
                    }
                    _ => {
                        let _g = l.write();
                        taken.send(()).unwrap();
                        wait_until("the reader to sleep", sleeper_in);
                    }
                }
            })
        });
        // The victim holds the lock, or died (and dropped its sender) trying.
        let _ = holding.recv();
        let sleeper = s.spawn(|| match op {
            RwOp::Read => rw_take(l),
            _ => match l.read_timeout(PATIENCE) {
                Ok(_) => false,
                Err(TryLockError::Poisoned(_)) => true,
                Err(e) => panic!("a read lock was not granted in {PATIENCE:?}: {e:?}"),
            },
        });
        let step = victim.join().unwrap();
        let poisoned = step.is_some_and(|s| RW_WRITING.contains(&s));
        assert_eq!(sleeper.join().unwrap(), poisoned, "crashed at {step:?}");
        step
    });
    rw_others_proceed(l, step, false);
    step
}

/// The victim runs `op` after a thread exited holding a read lock: a writer clears it.
fn rw_after_a_dead_reader(op: RwOp, n: u32) -> Option<&'static str> {
    let l = RwLock::new(0);
    thread::scope(|s| s.spawn(|| std::mem::forget(l.read())).join().unwrap());
    let step = victim(n, || op.run(&l));
    rw_others_proceed(&l, step, false);
    step
}

/// The victim runs `op` after a thread exited holding the write lock: the lock is poisoned
/// whatever step the victim died at.
fn rw_after_a_dead_writer(op: RwOp, n: u32) -> Option<&'static str> {
    let l = RwLock::new(0);
    thread::scope(|s| s.spawn(|| std::mem::forget(l.write())).join().unwrap());
    let step = victim(n, || op.run(&l));
    rw_others_proceed(&l, step, true);
    step
}

#[test]
fn a_crash_at_any_step_of_a_rwlock_operation_stops_nobody() {
    let mut steps = BTreeSet::new();
    for op in RwOp::ALL {
        steps.extend(sweep(|n| rw_alone(op, n)));
        steps.extend(sweep(|n| rw_against(op, true, n)));
        steps.extend(sweep(|n| rw_with_a_sleeper(op, n)));
    }
    for op in [RwOp::Write, RwOp::Upgrade] {
        steps.extend(sweep(|n| rw_against(op, false, n)));
        steps.extend(sweep(|n| rw_after_a_dead_reader(op, n)));
    }
    for op in [RwOp::Read, RwOp::Write] {
        steps.extend(sweep(|n| rw_after_a_dead_writer(op, n)));
    }
    let all: BTreeSet<&str> = include_str!("rwlock/raw.rs")
        .split("point(\"")
        .skip(1)
        .filter_map(|rest| rest.split_once('"').map(|(step, _)| step))
        .filter(|step| step.starts_with("rwlock"))
        .collect();
    assert_eq!(all.len(), 27, "the crash points of rwlock/raw.rs");
    let missed: Vec<_> = all.difference(&steps).collect();
    assert!(missed.is_empty(), "never crashed at {missed:?}");
}

/// A crash unwinds through the `RwLock` guards the victim holds, which release nothing:
/// its write lock is a dead writer's (poisoned as by a death, not by a panic), its read
/// and upgradable read locks a dead reader's.
#[test]
fn a_crashed_thread_keeps_the_rwlocks_it_held() {
    let (written, read, upgradable, m) = (
        RwLock::new(0),
        RwLock::new(0),
        RwLock::new(0),
        Mutex::new(0),
    );
    // Points 0 to 8 are those of the three rwlocks; 9 is the first of `m`'s.
    let step = victim(9, || {
        let _w = written.write();
        let _r = read.read();
        let _u = upgradable.upgradable_read();
        drop(m.lock());
    });
    assert_eq!(step, Some("lock: trying a free word"));
    rw_others_proceed(&written, step, true);
    rw_others_proceed(&read, step, false);
    rw_others_proceed(&upgradable, step, false);
}
