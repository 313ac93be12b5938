//! `Condvar` with shmkit's `Mutex`: hand-offs between threads on a segment, broadcasts,
//! timeouts, predicates, poison passing through a wait, and what `Debug` shows. A wait here
//! may also be ended by the liveness poll; the unit tests in `src/sync/condvar.rs` prove
//! the wake-ups themselves with the poll out of the way. Killed waiters (real processes):
//! `tests/multiprocess/condvar.rs`.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use shmkit_runtime::sync::{Condvar, LockError, Mutex, PoisonCause, LIVENESS_POLL};
use shmkit_runtime::ManagedHeapMemory;

/// What a wait that must end may take, on a loaded machine.
const GENEROUS: Duration = Duration::from_secs(20);

fn heap() -> ManagedHeapMemory {
    ManagedHeapMemory::new(64 * 1024).unwrap()
}

fn rounds(normal: u64) -> u64 {
    if cfg!(miri) {
        20
    } else {
        normal
    }
}

/// The waiters hint `Debug` shows.
fn waiters_hint(cv: &Condvar) -> u32 {
    let shown = format!("{cv:?}");
    let (_, after) = shown
        .split_once("waiters_hint: ")
        .unwrap_or_else(|| panic!("no hint in {shown}"));
    after.trim_end_matches([' ', '}']).parse().unwrap()
}

/// Blocks until `n` waiters are counted asleep on `cv`.
fn await_sleepers(cv: &Condvar, n: u32) {
    let deadline = Instant::now() + GENEROUS;
    while waiters_hint(cv) != n {
        assert!(Instant::now() < deadline, "{n} waiters never slept: {cv:?}");
        std::thread::yield_now();
    }
}

/// A bounded queue under one mutex: `[slot 0..4, head, len, popped, sum of popped]`.
type Queue = [u64; 8];
const CAP: u64 = 4;
const HEAD: usize = 4;
const LEN: usize = 5;
const POPPED: usize = 6;
const SUM: usize = 7;

#[test]
fn producers_and_consumers_on_a_segment_lose_no_item_and_no_wake_up() {
    let seg = heap();
    let q = seg
        .construct::<Mutex<Queue>>("q", Mutex::new([0; 8]))
        .unwrap();
    let not_empty = seg
        .construct::<Condvar>("not_empty", Condvar::new())
        .unwrap();
    let not_full = seg
        .construct::<Condvar>("not_full", Condvar::new())
        .unwrap();
    let per_producer = rounds(10_000);
    let total = 2 * per_producer;
    std::thread::scope(|s| {
        for p in 0..2u64 {
            s.spawn(move || {
                for i in 1..=per_producer {
                    let g = q.lock().unwrap();
                    let (mut g, waited) = not_full
                        .wait_timeout_while(g, GENEROUS, |q| q[LEN] == CAP)
                        .unwrap();
                    assert!(!waited.timed_out(), "a producer was never woken");
                    let tail = ((g[HEAD] + g[LEN]) % CAP) as usize;
                    g[tail] = p * per_producer + i;
                    g[LEN] += 1;
                    drop(g);
                    not_empty.notify_one();
                }
            });
        }
        for _ in 0..2 {
            s.spawn(move || loop {
                let g = q.lock().unwrap();
                let (mut g, waited) = not_empty
                    .wait_timeout_while(g, GENEROUS, |q| q[LEN] == 0 && q[POPPED] < total)
                    .unwrap();
                assert!(!waited.timed_out(), "a consumer was never woken");
                if g[POPPED] == total {
                    break;
                }
                let head = g[HEAD] as usize;
                g[SUM] += g[head];
                g[HEAD] = (g[HEAD] + 1) % CAP;
                g[LEN] -= 1;
                g[POPPED] += 1;
                let last = g[POPPED] == total;
                drop(g);
                not_full.notify_one();
                if last {
                    // The other consumer may wait for an item that will not come.
                    not_empty.notify_all();
                }
            });
        }
    });
    let g = q.lock().unwrap();
    assert_eq!((g[POPPED], g[LEN]), (total, 0));
    assert_eq!(g[SUM], total * (total + 1) / 2, "every item once");
}

#[test]
fn notify_all_wakes_every_waiter() {
    let seg = heap();
    let flag = seg.construct::<Mutex<u64>>("flag", Mutex::new(0)).unwrap();
    let cv = seg.construct::<Condvar>("cv", Condvar::new()).unwrap();
    std::thread::scope(|s| {
        let (tx, woken) = mpsc::channel();
        for _ in 0..4 {
            let tx = tx.clone();
            s.spawn(move || {
                let (g, waited) = cv
                    .wait_timeout_while(flag.lock().unwrap(), GENEROUS, |f| *f == 0)
                    .unwrap();
                tx.send((*g, waited.timed_out())).unwrap();
            });
        }
        await_sleepers(cv, 4);
        *flag.lock().unwrap() = 1;
        cv.notify_all();
        for _ in 0..4 {
            let got = woken
                .recv_timeout(GENEROUS)
                .expect("a waiter missed notify_all");
            assert_eq!(got, (1, false));
        }
    });
    assert_eq!(waiters_hint(cv), 0);
}

#[test]
fn wait_timeout_times_out_after_its_time_and_not_much_later() {
    let m = Mutex::new(7u64);
    let cv = Condvar::new();
    for timeout in [Duration::ZERO, Duration::from_millis(30)] {
        let started = Instant::now();
        let (g, waited) = cv.wait_timeout(m.lock().unwrap(), timeout).unwrap();
        let took = started.elapsed();
        assert!(waited.timed_out());
        assert_eq!(*g, 7, "the mutex is held again");
        assert!(took >= timeout, "returned after {took:?} of {timeout:?}");
        if !cfg!(miri) {
            assert!(
                took < timeout + Duration::from_secs(1),
                "{took:?} of {timeout:?}"
            );
        }
    }
    let started = Instant::now();
    let timeout = Duration::from_millis(30);
    let (g, waited) = cv
        .wait_timeout_while(m.lock().unwrap(), timeout, |_| true)
        .unwrap();
    assert!(waited.timed_out() && started.elapsed() >= timeout);
    drop(g);
    assert!(m.try_lock().is_ok(), "the guard released the mutex");
}

#[test]
fn a_notified_timed_wait_does_not_time_out() {
    let m = Mutex::new(0u64);
    let cv = Condvar::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            await_sleepers(&cv, 1);
            *m.lock().unwrap() = 1;
            cv.notify_one();
        });
        let (g, waited) = cv
            .wait_timeout_while(m.lock().unwrap(), GENEROUS, |v| *v == 0)
            .unwrap();
        assert_eq!((*g, waited.timed_out()), (1, false));
    });
}

#[test]
fn wait_while_returns_once_the_predicate_fails_and_lends_the_data_mutably() {
    let seg = heap();
    // [value, predicate calls]
    let m = seg
        .construct::<Mutex<[u64; 2]>>("m", Mutex::new([0; 2]))
        .unwrap();
    let cv = seg.construct::<Condvar>("cv", Condvar::new()).unwrap();
    let target = rounds(1000);
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..target {
                m.lock().unwrap()[0] += 1;
                cv.notify_one();
            }
        });
        let g = cv
            .wait_while(m.lock().unwrap(), |mut v| {
                v[1] += 1;
                v[0] < target
            })
            .unwrap();
        assert_eq!(g[0], target);
        assert!((1..=target + 1).contains(&g[1]), "checked {} times", g[1]);
    });
}

#[test]
fn a_holder_that_panics_poisons_the_relock_of_a_waiter() {
    let seg = heap();
    let m = seg.construct::<Mutex<u64>>("m", Mutex::new(0)).unwrap();
    let cv = seg.construct::<Condvar>("cv", Condvar::new()).unwrap();
    std::thread::scope(|s| {
        let panicker = s.spawn(|| {
            await_sleepers(cv, 1);
            let mut g = m.lock().unwrap();
            *g = 1;
            cv.notify_one();
            panic!("while holding the lock");
        });
        let Err(LockError::Poisoned(p)) = cv.wait_while(m.lock().unwrap(), |v| *v == 0) else {
            panic!("the relock after a panicking holder must be poisoned");
        };
        assert_eq!(p.cause(), PoisonCause::Panicked);
        assert_eq!(*p.into_inner(), 1, "the guard comes inside");
        assert!(panicker.join().is_err());
    });
}

#[test]
fn a_holder_that_dies_poisons_the_relock_of_a_timed_waiter() {
    let seg = heap();
    let m = seg.construct::<Mutex<u64>>("m", Mutex::new(0)).unwrap();
    let cv = seg.construct::<Condvar>("cv", Condvar::new()).unwrap();
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            await_sleepers(cv, 1);
            let mut g = m.lock().unwrap();
            *g = 1;
            cv.notify_one();
            // The thread exits holding the lock.
            std::mem::forget(g);
        });
        let Err(LockError::Poisoned(p)) = cv.wait_timeout(m.lock().unwrap(), GENEROUS) else {
            panic!("the relock after a holder died must be poisoned");
        };
        assert_eq!(p.cause(), PoisonCause::OwnerDied);
        let (g, waited) = p.into_inner();
        assert_eq!((*g, waited.timed_out()), (1, false));
    });
    assert!(
        started.elapsed() < 50 * LIVENESS_POLL,
        "taken over after {:?}",
        started.elapsed()
    );
}

#[test]
fn debug_shows_the_sequence_and_the_waiters_hint_and_zero_bytes_are_fresh() {
    let cv = Condvar::default();
    assert_eq!(
        format!("{cv:?}"),
        "Condvar { sequence: 0, waiters_hint: 0 }"
    );
    // SAFETY: a Condvar is atomics only; all-zero bytes are documented as a fresh one.
    let zeroed: Condvar = unsafe { std::mem::zeroed() };
    assert_eq!(format!("{zeroed:?}"), format!("{cv:?}"));
    cv.notify_one();
    cv.notify_all();
    assert_eq!(
        format!("{cv:?}"),
        "Condvar { sequence: 2, waiters_hint: 0 }"
    );
}
