//! `Condvar` between real processes (the children are the helper binary's `condvar-wait`
//! role, `tests/bin/child/condvar.rs`). Round after round, three waiters wait on a segment's
//! `Condvar` for its `Mutex<u64>` to leave 0: a child that is SIGKILLed, a child and a thread
//! of this process that must both get through. The victim dies asleep, after it was woken
//! (before it took the mutex back: the notifier holds it), or holding the mutex it took
//! back; the notification is `notify_one` or `notify_all`. The kernel picks whom
//! `notify_one` wakes, so across the rounds the victim is sometimes the one it woke. Every
//! wait is under a timeout, and the survivors must be through long before theirs: a
//! notification the victim took with it would be found only there.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use shmkit_runtime::sync::{Condvar, LockError, LockResult, Mutex, MutexGuard};
use shmkit_test_support as support;
use support::on_both_devices;
use support::{Seg, Target};

use crate::child;

const SIZE: usize = 64 * 1024;
/// Nine rounds of each of the six kinds.
const ROUNDS: usize = 54;
const CHILD_LIMIT: Duration = Duration::from_secs(20);
/// How soon after the notification the survivors must be through: far above the liveness
/// poll and a dead holder's takeover, far below their own timeouts.
const SURVIVOR_LIMIT: Duration = Duration::from_secs(5);
/// The surviving thread's own timeout.
const THREAD_LIMIT: Duration = Duration::from_secs(60);

on_both_devices!(a_killed_waiter_blocks_nobody_and_takes_no_notification_away);

/// When the victim is killed.
#[derive(Clone, Copy, Debug)]
enum Death {
    Asleep,
    /// Woken, waiting for the mutex the notifier holds.
    Woken,
    /// Holding the mutex it took back.
    HoldingTheMutex,
}

fn a_killed_waiter_blocks_nobody_and_takes_no_notification_away<T: Target>() {
    let t = T::new();
    let seg = Seg::<T>::create(t.name(), SIZE).unwrap();
    let m = seg.construct::<Mutex<u64>>("m", Mutex::new(0)).unwrap();
    let cv = seg.construct::<Condvar>("cv", Condvar::new()).unwrap();
    for round in 0..ROUNDS {
        let death = [Death::Asleep, Death::Woken, Death::HoldingTheMutex][round % 3];
        let broadcast = round % 6 >= 3;
        one_round(&t, m, cv, death, broadcast);
    }
}

fn one_round<T: Target>(t: &T, m: &Mutex<u64>, cv: &Condvar, death: Death, broadcast: bool) {
    let what = format!(
        "{} victim killed {death:?}",
        if broadcast {
            "notify_all,"
        } else {
            "notify_one,"
        }
    );
    *taken(m.lock()) = 0;
    m.clear_poison();
    // Waiters killed asleep in earlier rounds stay counted.
    let base = waiters_hint(cv);
    let then = match death {
        Death::HoldingTheMutex => "hold",
        Death::Asleep | Death::Woken => "report",
    };
    let mut victim = child(t, "condvar-wait", &[("SHMKIT_THEN", then.into())]);
    assert_eq!(victim.expect_message(CHILD_LIMIT), "waiting");
    await_hint(cv, |n| n == base + 1);
    let mut other = child(t, "condvar-wait", &[("SHMKIT_THEN", "report".into())]);
    assert_eq!(other.expect_message(CHILD_LIMIT), "waiting");
    await_hint(cv, |n| n == base + 2);
    std::thread::scope(|s| {
        let (tx, thread_done) = mpsc::channel();
        s.spawn(move || {
            let got = cv.wait_timeout_while(m.lock().unwrap(), THREAD_LIMIT, |v| *v == 0);
            let ((g, waited), _) = poisoned_or_not(got);
            tx.send((*g, waited.timed_out())).unwrap();
        });
        await_hint(cv, |n| n == base + 3);
        let notify = || {
            if broadcast {
                cv.notify_all();
            } else {
                cv.notify_one();
            }
        };
        match death {
            Death::Asleep => {
                assert!(!victim.kill().success());
                *taken(m.lock()) = 1;
                notify();
            }
            Death::Woken => {
                let mut g = taken(m.lock());
                *g = 1;
                notify();
                // Whoever was woken counts itself out, then waits for the mutex.
                await_hint(cv, |n| n <= base + 2);
                std::thread::sleep(Duration::from_millis(5));
                assert!(!victim.kill().success());
                drop(g);
            }
            Death::HoldingTheMutex => {
                *taken(m.lock()) = 1;
                notify();
                assert_eq!(victim.expect_message(CHILD_LIMIT), "holding", "{what}");
                assert!(!victim.kill().success());
            }
        }
        let notified = Instant::now();
        let got = thread_done
            .recv_timeout(SURVIVOR_LIMIT)
            .unwrap_or_else(|_| panic!("{what}: the waiting thread was not through"));
        assert_eq!(got, (1, false), "{what}");
        let said = other.expect_message(SURVIVOR_LIMIT.saturating_sub(notified.elapsed()));
        // After a death holding the mutex, whoever takes it next finds it poisoned.
        assert!(
            said == "woken 1 clean"
                || (matches!(death, Death::HoldingTheMutex) && said == "woken 1 poisoned"),
            "{what}: {said}"
        );
        other.assert_success(CHILD_LIMIT);
    });
}

/// The guard, poisoned or not, and whether it was.
fn poisoned_or_not<G>(got: LockResult<G>) -> (G, bool) {
    match got {
        Ok(g) => (g, false),
        Err(LockError::Poisoned(p)) => (p.into_inner(), true),
        Err(LockError::Failed(e)) => panic!("locking failed: {e}"),
    }
}

fn taken(got: LockResult<MutexGuard<'_, u64>>) -> MutexGuard<'_, u64> {
    poisoned_or_not(got).0
}

/// The waiters hint `Debug` shows.
fn waiters_hint(cv: &Condvar) -> u32 {
    let shown = format!("{cv:?}");
    let (_, after) = shown
        .split_once("waiters_hint: ")
        .unwrap_or_else(|| panic!("no hint in {shown}"));
    after.trim_end_matches([' ', '}']).parse().unwrap()
}

/// Blocks until the waiters hint satisfies `ok`.
fn await_hint(cv: &Condvar, ok: impl Fn(u32) -> bool) {
    let deadline = Instant::now() + CHILD_LIMIT;
    while !ok(waiters_hint(cv)) {
        assert!(
            Instant::now() < deadline,
            "the waiters never got there: {cv:?}"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}
