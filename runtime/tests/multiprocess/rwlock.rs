//! `RwLock` between real processes (the child is the helper binary's `rwlock-hold` role,
//! `tests/bin/child/rwlock.rs`): a child process holding a read lock shares it with the
//! parent's readers and keeps the parent's writer waiting while it lives; SIGKILLed, it
//! is cleared from its slot and the writer gets in, unpoisoned. A child holding the write
//! lock keeps readers out while it lives; SIGKILLed, the next reader takes the lock over,
//! poisoned with `OwnerDied`. Every wait has a timeout, and a kill loop repeats both.

use std::time::{Duration, Instant};

use shmkit_runtime::sync::{LockError, PoisonCause, RwLock, TryLockError, LIVENESS_POLL};
use shmkit_test_support::{on_both_devices, ChildProc, Seg, ShmTarget, Target};

use crate::child;

const SIZE: usize = 64 * 1024;
const CHILD_LIMIT: Duration = Duration::from_secs(20);
/// How long the parent's waiter must stay blocked while the holder lives.
const STILL_WAITING: Duration = Duration::from_millis(300);
/// How soon after the holder's death the waiter must be through.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(5);
/// Rounds of the kill loop (half of them readers, half writers).
const KILL_ROUNDS: u64 = 50;

on_both_devices!(
    a_killed_reader_process_keeps_no_writer_out,
    a_killed_writer_process_poisons_the_lock,
);

/// Starts a child holding `lock` ("read" or "write", writing `value`) and waits until it
/// says it holds it.
fn holder<T: Target>(t: &T, lock: &str, value: u64) -> ChildProc {
    let mut c = child(
        t,
        "rwlock-hold",
        &[
            ("SHMKIT_LOCK", lock.into()),
            ("SHMKIT_VALUE", value.to_string()),
        ],
    );
    let said = c.expect_message(CHILD_LIMIT);
    let expected = match lock {
        "read" => "reading",
        _ => "writing",
    };
    assert!(said.starts_with(expected), "the child said {said:?}");
    c
}

/// Runs `wait` (a lock call with a timeout) on another thread while the child holds the
/// lock, checks it still waits after `still`, SIGKILLs the child, and returns what `wait`
/// returned and how long after the kill.
fn waiter_through_a_kill<R: Send>(
    mut c: ChildProc,
    still: Duration,
    wait: impl FnOnce() -> R + Send,
) -> (R, Duration) {
    std::thread::scope(|s| {
        let waiter = s.spawn(move || {
            let r = wait();
            (r, Instant::now())
        });
        std::thread::sleep(still);
        assert!(
            !waiter.is_finished(),
            "the waiter did not wait for a live holder"
        );
        c.kill();
        let killed = Instant::now();
        let (r, through) = waiter.join().unwrap();
        (r, through.saturating_duration_since(killed))
    })
}

/// A child reads (the parent reads beside it), the parent's writer waits, the child is
/// killed, the writer gets in clean.
fn reader_round<T: Target>(t: &T, lock: &RwLock<u64>, still: Duration) {
    let value = *lock.read().unwrap();
    let c = holder(t, "read", 0);
    assert_eq!(c.transcript.last().unwrap(), &format!("reading {value}"));
    assert_eq!(
        *lock.try_read().expect("readers share across processes"),
        value
    );
    let (wrote, after) =
        waiter_through_a_kill(c, still, || match lock.write_timeout(CHILD_LIMIT) {
            Ok(mut g) => {
                *g += 1;
                Ok(())
            }
            Err(e) => Err(format!("{e}")),
        });
    assert!(
        wrote.is_ok(),
        "a dead reader neither blocks nor poisons: {wrote:?}"
    );
    assert!(
        after < TAKEOVER_LIMIT,
        "the writer got in {after:?} after the kill"
    );
    assert_eq!(*lock.read().unwrap(), value + 1);
}

/// A child writes `value`, the parent's reader waits, the child is killed, the reader
/// takes the lock over poisoned and sees `value`.
fn writer_round<T: Target>(t: &T, lock: &RwLock<u64>, value: u64, still: Duration) {
    let c = holder(t, "write", value);
    assert!(matches!(lock.try_write(), Err(TryLockError::WouldBlock)));
    let (read, after) = waiter_through_a_kill(c, still, || match lock.read_timeout(CHILD_LIMIT) {
        Err(TryLockError::Poisoned(p)) => Ok((p.cause(), *p.into_inner())),
        Ok(g) => Err(format!("not poisoned (read {})", *g)),
        Err(e) => Err(format!("{e}")),
    });
    assert_eq!(read, Ok((PoisonCause::OwnerDied, value)));
    assert!(
        after < TAKEOVER_LIMIT,
        "the reader got in {after:?} after the kill"
    );
    match lock.write() {
        Err(LockError::Poisoned(p)) => assert_eq!(p.cause(), PoisonCause::OwnerDied),
        other => panic!("the poison stays until cleared: {other:?}"),
    }
    lock.clear_poison();
}

fn fresh<T: Target>(t: &T) -> Seg<T> {
    let seg = Seg::<T>::create(t.name(), SIZE).unwrap();
    seg.construct::<RwLock<u64>>("rwlock", RwLock::new(7))
        .unwrap();
    seg
}

fn a_killed_reader_process_keeps_no_writer_out<T: Target>() {
    let t = T::new();
    let seg = fresh(&t);
    let lock = seg.find::<RwLock<u64>>("rwlock").unwrap().unwrap();
    reader_round(&t, lock, STILL_WAITING);
}

fn a_killed_writer_process_poisons_the_lock<T: Target>() {
    let t = T::new();
    let seg = fresh(&t);
    let lock = seg.find::<RwLock<u64>>("rwlock").unwrap().unwrap();
    writer_round(&t, lock, 42, STILL_WAITING);
    assert_eq!(*lock.read().unwrap(), 42);
}

#[test]
fn kill_loop_of_readers_and_writers() {
    let t = ShmTarget::new();
    let seg = fresh(&t);
    let lock = seg.find::<RwLock<u64>>("rwlock").unwrap().unwrap();
    for round in 0..KILL_ROUNDS {
        // Killed sleeping (past a few polls) or still spinning, in turn.
        let still = if round % 4 < 2 {
            3 * LIVENESS_POLL
        } else {
            Duration::ZERO
        };
        if round % 2 == 0 {
            reader_round(&t, lock, still);
        } else {
            writer_round(&t, lock, 1000 + round, still);
        }
    }
    assert!(!lock.is_poisoned());
    assert!(format!("{lock:?}").contains("readers: 0"));
}
