//! `RwLock<T>`: readers share, writers exclude, a waiting writer keeps new readers out,
//! dead readers and writers are got past (a dead writer poisons), upgrade and downgrade,
//! timeouts, a thread's own locks, readers beyond the slots, what `Debug` shows, and
//! forged lock bytes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shmkit_runtime::sync::{
    LockError, LockResult, PoisonCause, RwLock, RwLockUpgradableReadGuard, RwLockWriteGuard,
    TryLockError, TryLockResult, LIVENESS_POLL,
};
use shmkit_runtime::{Error, ManagedHeapMemory};
use shmkit_test_support::{corrupt, within, Rng};

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

/// How long a dead holder may keep a waiter out: many liveness polls, for a loaded machine.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(5);

/// Runs `f` with a time limit (a hang becomes a failure), on a lock that must outlive it.
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    within(Duration::from_secs(60), what, f)
}

#[test]
fn readers_hold_the_lock_together() {
    let seg = heap();
    let lock = seg.construct::<RwLock<u64>>("l", RwLock::new(7)).unwrap();
    let threads = 4;
    let inside = AtomicUsize::new(0);
    let all_in = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let g = lock.read().unwrap();
                assert_eq!(*g, 7);
                inside.fetch_add(1, Ordering::SeqCst);
                // Stay inside until every reader is: exclusive readers would never get there.
                let deadline = Instant::now() + Duration::from_secs(30);
                while inside.load(Ordering::SeqCst) < threads {
                    assert!(Instant::now() < deadline, "readers did not share the lock");
                    std::thread::yield_now();
                }
                all_in.store(true, Ordering::SeqCst);
            });
        }
    });
    assert!(all_in.load(Ordering::SeqCst));
    assert!(!lock.is_poisoned());
}

/// Reads the data again, as a racing writer would have changed it (not a value the
/// compiler may keep from the first read).
fn reread<T: Copy>(data: &T) -> T {
    // SAFETY: a reference is valid for reads.
    unsafe { std::ptr::read_volatile(data) }
}

/// A pause inside a critical section, for racing holders to show up in.
fn linger() {
    for _ in 0..20 {
        std::hint::spin_loop();
    }
}

#[test]
fn writers_exclude_writers_and_readers() {
    let seg = heap();
    let lock = seg
        .construct::<RwLock<[u64; 2]>>("l", RwLock::new([0; 2]))
        .unwrap();
    let per_thread = rounds(20_000);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..per_thread {
                    let mut g = lock.write().unwrap();
                    // Two plain writes that a racing writer or reader would see torn.
                    let v = g[0] + 1;
                    g[0] = v;
                    linger();
                    assert_eq!(reread(&g[0]), v, "another writer is inside");
                    g[1] = v;
                }
            });
        }
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..per_thread {
                    let g = lock.read().unwrap();
                    let seen = reread(&*g);
                    linger();
                    assert!(
                        seen[0] == seen[1] && reread(&*g) == seen,
                        "a writer was inside with a reader"
                    );
                }
            });
        }
        s.spawn(|| {
            for _ in 0..per_thread / 4 {
                let g = lock.upgradable_read().unwrap();
                let before = *g;
                assert_eq!(before[0], before[1]);
                let mut w = RwLockUpgradableReadGuard::upgrade(g).unwrap();
                assert_eq!(
                    *w, before,
                    "nobody wrote between the upgradable read and its upgrade"
                );
                w[0] += 1;
                w[1] = w[0];
            }
        });
    });
    let total = 2 * per_thread + per_thread / 4;
    assert_eq!(*lock.read().unwrap(), [total; 2]);
}

/// Two readers and a writer on `lock` through `writes` writes, the uncontended paths
/// against each other: no reader may be inside with the writer.
fn readers_race_a_writer(lock: &RwLock<[u64; 2]>, writes: u64) {
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    let g = lock.read().unwrap();
                    let seen = reread(&*g);
                    linger();
                    assert!(
                        seen[0] == seen[1] && reread(&*g) == seen,
                        "a writer was inside with a reader"
                    );
                }
            });
        }
        for _ in 0..writes {
            let mut g = lock.write().unwrap();
            let v = g[0] + 1;
            g[0] = v;
            linger();
            g[1] = v;
        }
        done.store(true, Ordering::Relaxed);
    });
}

/// The race a reader's second look at the state word closes: a reader that saw no writer,
/// then claims its slot just after a writer looked at that slot, must see the writer and
/// back off. It happens rarely (a few times a second on two busy cores), so this runs
/// many rounds.
#[test]
fn a_reader_racing_a_writer_for_the_lock_never_gets_in_beside_it() {
    let seg = heap();
    let lock = seg
        .construct::<RwLock<[u64; 2]>>("l", RwLock::new([0; 2]))
        .unwrap();
    readers_race_a_writer(lock, rounds(300_000));
}

/// The same race on a lock outside every segment, which Miri runs with weak-memory
/// emulation on (`.ci/miri`), so that it may reorder what the orderings allow.
#[test]
fn readers_racing_a_writer_outside_segments() {
    readers_race_a_writer(&RwLock::new([0; 2]), rounds(20_000));
}

#[test]
fn a_waiting_writer_keeps_new_readers_out() {
    let seg = heap();
    let lock = seg.construct::<RwLock<u64>>("l", RwLock::new(0)).unwrap();
    let (held_tx, held_rx) = mpsc::channel();
    let (leave_tx, leave_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let first_reader = s.spawn(move || {
            let g = lock.read().unwrap();
            held_tx.send(()).unwrap();
            leave_rx.recv().unwrap();
            *g
        });
        held_rx.recv().unwrap();
        let writer = s.spawn(|| *lock.write().unwrap() = 1);
        // Once the writer waits, a new reader is turned away though only a reader holds
        // the lock.
        let deadline = Instant::now() + Duration::from_secs(30);
        while lock.try_read().is_ok() {
            assert!(
                Instant::now() < deadline,
                "the writer never kept readers out"
            );
            std::thread::yield_now();
        }
        assert!(matches!(
            lock.read_timeout(Duration::from_millis(30)),
            Err(TryLockError::WouldBlock)
        ));
        let late_reader = s.spawn(|| *lock.read().unwrap());
        leave_tx.send(()).unwrap();
        assert_eq!(first_reader.join().unwrap(), 0);
        writer.join().unwrap();
        assert_eq!(
            late_reader.join().unwrap(),
            1,
            "the reader that came after the writer waited for it"
        );
    });
}

/// The median time from `release` (of what `hold` took) to the waiter's getting in, over
/// rounds where the waiter was asleep when the holder released: a lost wake-up would show
/// as a waiter that gets in only at its next liveness poll. What `release` returns is
/// kept until the waiter is in.
fn wake_latency<G, K>(
    hold: impl Fn() -> G + Sync,
    release: impl Fn(G) -> K + Sync,
    wait: impl Fn() + Sync,
) -> Duration {
    let mut latencies: Vec<Duration> = (0..15)
        .map(|_| {
            let (held_tx, held_rx) = mpsc::channel();
            std::thread::scope(|s| {
                let wait = &wait;
                let waiter = s.spawn(move || {
                    held_rx.recv().unwrap();
                    wait();
                    Instant::now()
                });
                let guard = hold();
                held_tx.send(()).unwrap();
                // Long enough for the waiter to spin out and sleep, short beside the poll.
                std::thread::sleep(Duration::from_millis(2));
                let released = Instant::now();
                let kept = release(guard);
                let got_in = waiter.join().unwrap();
                drop(kept);
                got_in.saturating_duration_since(released)
            })
        })
        .collect();
    latencies.sort();
    latencies[latencies.len() / 2]
}

#[test]
#[cfg_attr(miri, ignore = "timing")]
fn sleepers_are_woken_by_the_release_not_by_their_poll() {
    let lock = RwLock::new(0u64);
    let read = || drop(lock.read().unwrap());
    let write = || drop(lock.write().unwrap());
    let cases: [(&str, Duration); 5] = [
        (
            "a writer, by a reader leaving",
            wake_latency(|| lock.read().unwrap(), drop, write),
        ),
        (
            "a reader, by the writer leaving",
            wake_latency(|| lock.write().unwrap(), drop, read),
        ),
        (
            "a writer, by the upgradable reader leaving",
            wake_latency(|| lock.upgradable_read().unwrap(), drop, write),
        ),
        (
            "a reader, by the writer downgrading to the upgradable read",
            wake_latency(
                || lock.write().unwrap(),
                RwLockWriteGuard::downgrade_to_upgradable,
                read,
            ),
        ),
        (
            "a reader beyond the slots, by the readers leaving",
            wake_latency(
                || {
                    (0..RwLock::<u64>::READER_SLOTS)
                        .map(|_| lock.read().unwrap())
                        .collect::<Vec<_>>()
                },
                drop,
                read,
            ),
        ),
    ];
    for (what, latency) in cases {
        assert!(
            latency < LIVENESS_POLL / 2,
            "{what}: woken after {latency:?}"
        );
    }
}

#[test]
fn a_reader_whose_thread_exited_with_its_guard_leaked_does_not_block_a_writer() {
    static LOCK: RwLock<u64> = RwLock::new(3);
    // `join`, not a scope: the thread's owner id is given back at its very end.
    std::thread::spawn(|| std::mem::forget(LOCK.read().unwrap()))
        .join()
        .unwrap();
    let debug = format!("{LOCK:?}");
    assert!(
        debug.contains("readers: 1") && debug.contains("(dead)"),
        "{debug}"
    );
    let started = Instant::now();
    bounded("a writer past a dead reader", || {
        *LOCK.write().expect("a reader's death does not poison") += 1;
    });
    assert!(
        started.elapsed() < TAKEOVER_LIMIT,
        "after {:?}",
        started.elapsed()
    );
    assert_eq!(*LOCK.read().unwrap(), 4);
    assert!(format!("{LOCK:?}").contains("readers: 0"));
}

#[test]
fn a_reader_that_dies_while_a_writer_sleeps_on_it_is_noticed_within_the_poll() {
    static LOCK: RwLock<u64> = RwLock::new(0);
    let (held_tx, held_rx) = mpsc::channel();
    let (die_tx, die_rx) = mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        std::mem::forget(LOCK.read().unwrap());
        held_tx.send(()).unwrap();
        die_rx.recv().unwrap();
    });
    held_rx.recv().unwrap();
    let writer = std::thread::spawn(|| {
        let g = LOCK.write().unwrap();
        *g
    });
    // Let the writer spin out and sleep on the reader's slot.
    std::thread::sleep(3 * LIVENESS_POLL);
    assert!(
        !writer.is_finished(),
        "the writer did not wait for a live reader"
    );
    die_tx.send(()).unwrap();
    reader.join().unwrap();
    let started = Instant::now();
    assert_eq!(bounded("the writer", move || writer.join().unwrap()), 0);
    assert!(
        started.elapsed() < TAKEOVER_LIMIT,
        "after {:?}",
        started.elapsed()
    );
}

#[test]
fn a_writer_whose_thread_exited_with_its_guard_leaked_poisons_for_readers_and_writers() {
    static LOCK: RwLock<u64> = RwLock::new(1);
    std::thread::spawn(|| {
        let mut g = LOCK.write().unwrap();
        *g = 2;
        std::mem::forget(g);
    })
    .join()
    .unwrap();
    assert!(format!("{LOCK:?}").contains("(dead)"));
    let started = Instant::now();
    let read = bounded("a reader past a dead writer", || match LOCK.read() {
        Err(LockError::Poisoned(p)) => (p.cause(), *p.into_inner()),
        Ok(_) => panic!("a lock whose writer died must be poisoned"),
        Err(LockError::Failed(e)) => panic!("{e}"),
    });
    assert!(
        started.elapsed() < TAKEOVER_LIMIT,
        "after {:?}",
        started.elapsed()
    );
    assert_eq!(
        read,
        (PoisonCause::OwnerDied, 2),
        "the data is there anyway"
    );
    let Err(LockError::Poisoned(p)) = LOCK.write() else {
        panic!("the poison stays for writers too");
    };
    assert_eq!(p.cause(), PoisonCause::OwnerDied);
    drop(p);
    assert_eq!(LOCK.poison_cause(), Some(PoisonCause::OwnerDied));
    LOCK.clear_poison();
    assert_eq!(*LOCK.write().unwrap(), 2);
    assert!(!LOCK.is_poisoned());
}

#[test]
fn an_upgradable_reader_that_exited_with_its_guard_leaked_is_got_past_without_poison() {
    static LOCK: RwLock<u64> = RwLock::new(5);
    std::thread::spawn(|| std::mem::forget(LOCK.upgradable_read().unwrap()))
        .join()
        .unwrap();
    // Readers never waited for it.
    assert_eq!(*LOCK.try_read().unwrap(), 5);
    bounded("a writer past a dead upgradable reader", || {
        *LOCK.write().unwrap() = 6
    });
    assert_eq!(*LOCK.upgradable_read().unwrap(), 6);
}

#[test]
fn a_panicking_writer_poisons_and_a_panicking_reader_does_not() {
    let seg = heap();
    let lock = seg.construct::<RwLock<u64>>("l", RwLock::new(1)).unwrap();
    std::thread::scope(|s| {
        let r = s
            .spawn(|| {
                let _g = lock.read().unwrap();
                panic!("while reading");
            })
            .join();
        assert!(r.is_err());
    });
    assert!(!lock.is_poisoned(), "a reader changes nothing");
    std::thread::scope(|s| {
        let r = s
            .spawn(|| {
                let g = lock.upgradable_read().unwrap();
                let mut w = RwLockUpgradableReadGuard::upgrade(g).unwrap();
                *w = 2;
                panic!("while writing");
            })
            .join();
        assert!(r.is_err());
    });
    assert_eq!(lock.poison_cause(), Some(PoisonCause::Panicked));
    let Err(LockError::Poisoned(p)) = lock.read() else {
        panic!("a poisoned lock must say so to readers");
    };
    assert_eq!(p.cause(), PoisonCause::Panicked);
    assert_eq!(**p.get_ref(), 2);
    drop(p);
    let err: Error = lock.write().unwrap_err().into();
    assert!(err.to_string().contains("panicked"), "{err}");
    lock.clear_poison();
    assert_eq!(*lock.read().unwrap(), 2);
}

#[test]
fn an_upgradable_read_admits_readers_but_no_writer_and_upgrades_once_they_leave() {
    let seg = heap();
    let lock = seg.construct::<RwLock<u64>>("l", RwLock::new(10)).unwrap();
    let up = lock.upgradable_read().unwrap();
    assert!(matches!(lock.try_write(), Err(TryLockError::WouldBlock)));
    let (held_tx, held_rx) = mpsc::channel();
    let (leave_tx, leave_rx) = mpsc::channel::<()>();
    let left = AtomicBool::new(false);
    std::thread::scope(|s| {
        let left = &left;
        s.spawn(move || {
            assert!(matches!(
                lock.try_upgradable_read(),
                Err(TryLockError::WouldBlock)
            ));
            let g = lock
                .try_read()
                .expect("readers share with the upgradable reader");
            held_tx.send(*g).unwrap();
            leave_rx.recv().unwrap();
            left.store(true, Ordering::SeqCst);
            drop(g);
        });
        assert_eq!(held_rx.recv().unwrap(), 10);
        let up = RwLockUpgradableReadGuard::try_upgrade(up).expect_err("a reader is inside");
        let up = RwLockUpgradableReadGuard::upgrade_timeout(up, Duration::from_millis(20))
            .expect_err("the reader stays inside");
        // A failed upgrade leaves an upgradable read that readers still share.
        drop(lock.try_read().expect("readers get in again"));
        leave_tx.send(()).unwrap();
        let mut w = RwLockUpgradableReadGuard::upgrade(up).unwrap();
        assert!(
            left.load(Ordering::SeqCst),
            "upgraded only after the reader left"
        );
        *w = 11;
    });
    assert_eq!(*lock.read().unwrap(), 11);
}

#[test]
fn an_upgrade_keeps_new_readers_out_while_it_waits() {
    let seg = heap();
    let lock = seg.construct::<RwLock<u64>>("l", RwLock::new(0)).unwrap();
    let (held_tx, held_rx) = mpsc::channel();
    let (leave_tx, leave_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        s.spawn(move || {
            let _g = lock.read().unwrap();
            held_tx.send(()).unwrap();
            leave_rx.recv().unwrap();
        });
        held_rx.recv().unwrap();
        let upgrader = s.spawn(|| {
            let up = lock.upgradable_read().unwrap();
            *RwLockUpgradableReadGuard::upgrade(up).unwrap() = 1;
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while lock.try_read().is_ok() {
            assert!(
                Instant::now() < deadline,
                "the upgrade never kept readers out"
            );
            std::thread::yield_now();
        }
        let late_reader = s.spawn(|| *lock.read().unwrap());
        leave_tx.send(()).unwrap();
        upgrader.join().unwrap();
        assert_eq!(late_reader.join().unwrap(), 1);
    });
}

#[test]
fn downgrades_keep_writers_out_and_let_readers_in() {
    let seg = heap();
    let lock = seg.construct::<RwLock<u64>>("l", RwLock::new(0)).unwrap();
    let other_thread_reads =
        || std::thread::scope(|s| s.spawn(|| lock.try_read().map(|g| *g).ok()).join().unwrap());
    let other_thread_writes =
        || std::thread::scope(|s| s.spawn(|| lock.try_write().is_ok()).join().unwrap());

    let mut w = lock.write().unwrap();
    *w = 1;
    assert_eq!(other_thread_reads(), None);
    let r = RwLockWriteGuard::downgrade(w);
    assert_eq!(*r, 1);
    assert_eq!(other_thread_reads(), Some(1));
    assert!(!other_thread_writes());
    drop(r);

    let mut w = lock.write().unwrap();
    *w = 2;
    let up = RwLockWriteGuard::downgrade_to_upgradable(w);
    assert_eq!(other_thread_reads(), Some(2));
    assert!(!other_thread_writes());
    let r = RwLockUpgradableReadGuard::downgrade(up);
    assert!(!other_thread_writes(), "a read lock is still held");
    assert!(
        std::thread::scope(|s| s
            .spawn(|| lock.try_upgradable_read().is_ok())
            .join()
            .unwrap()),
        "the upgradable lock was given up"
    );
    drop(r);
    assert!(other_thread_writes());
    assert!(!lock.is_poisoned());
}

/// Runs `check` while another thread holds what `take` takes.
fn while_another_thread_holds<G>(take: impl FnOnce() -> G + Send, check: impl FnOnce()) {
    let (held_tx, held_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        // Dropped also when `check` panics, so that the holder ends and the scope with it.
        let done = done_tx;
        s.spawn(move || {
            let _held = take();
            held_tx.send(()).unwrap();
            let _ = done_rx.recv();
        });
        held_rx.recv().unwrap();
        check();
        done.send(()).unwrap();
    });
}

/// Asserts that `attempt` waited for `timeout`, not much longer, and gave up.
fn gives_up<G>(timeout: Duration, attempt: impl FnOnce(Duration) -> TryLockResult<G>) {
    let started = Instant::now();
    assert!(matches!(attempt(timeout), Err(TryLockError::WouldBlock)));
    let waited = started.elapsed();
    assert!(waited >= timeout, "gave up after {waited:?}");
    if !cfg!(miri) {
        assert!(waited < timeout * 20, "gave up only after {waited:?}");
    }
}

#[test]
fn timeouts_give_up_and_leave_the_lock_as_it_was() {
    let lock = RwLock::new(0u32);
    let t = Duration::from_millis(30);
    while_another_thread_holds(
        || lock.read().unwrap(),
        || {
            assert!(matches!(lock.try_write(), Err(TryLockError::WouldBlock)));
            gives_up(t, |t| lock.write_timeout(t));
            drop(
                lock.try_read()
                    .expect("a writer that gave up keeps no reader out"),
            );
            let up = lock.try_upgradable_read().unwrap();
            let up = RwLockUpgradableReadGuard::try_upgrade(up).expect_err("a reader is in");
            drop(up);
            drop(
                lock.try_read()
                    .expect("an upgrade that gave up keeps no reader out"),
            );
        },
    );
    while_another_thread_holds(
        || lock.upgradable_read().unwrap(),
        || {
            assert!(matches!(
                lock.try_upgradable_read(),
                Err(TryLockError::WouldBlock)
            ));
            gives_up(t, |t| lock.upgradable_read_timeout(t));
            gives_up(t, |t| lock.write_timeout(t));
            drop(
                lock.try_read()
                    .expect("readers share with the upgradable reader"),
            );
        },
    );
    while_another_thread_holds(
        || lock.write().unwrap(),
        || {
            assert!(matches!(lock.try_read(), Err(TryLockError::WouldBlock)));
            assert!(matches!(lock.try_write(), Err(TryLockError::WouldBlock)));
            assert!(matches!(
                lock.try_upgradable_read(),
                Err(TryLockError::WouldBlock)
            ));
            gives_up(t, |t| lock.read_timeout(t));
            gives_up(t, |t| lock.upgradable_read_timeout(t));
            gives_up(t, |t| lock.write_timeout(t));
        },
    );
    assert!(lock.try_write().is_ok());
}

fn would_deadlock<G>(r: LockResult<G>) {
    match r {
        Err(LockError::Failed(Error::WouldDeadlock { .. })) => {}
        Err(e) => panic!("expected WouldDeadlock, got {e:?}"),
        Ok(_) => panic!("expected WouldDeadlock, got the lock"),
    }
}

#[test]
fn a_thread_waiting_for_itself_gets_would_deadlock_not_a_hang() {
    let lock = RwLock::new(0u32);
    {
        let _r = lock.read().unwrap();
        let _again = lock.read().expect("a thread may read twice");
        would_deadlock(lock.write());
        assert!(matches!(lock.try_write(), Err(TryLockError::WouldBlock)));
        let up = lock
            .upgradable_read()
            .expect("an upgradable read beside a read is fine");
        would_deadlock(RwLockUpgradableReadGuard::upgrade(up).map_err(LockError::Failed));
    }
    {
        let _w = lock.write().unwrap();
        would_deadlock(lock.read());
        would_deadlock(lock.write());
        would_deadlock(lock.upgradable_read());
        assert!(matches!(lock.try_read(), Err(TryLockError::WouldBlock)));
    }
    {
        let _u = lock.upgradable_read().unwrap();
        would_deadlock(lock.upgradable_read());
        would_deadlock(lock.write());
        drop(lock.read().expect("reads beside the upgradable read"));
    }
    // A read, or an upgradable read, while a writer waits for this thread's other read.
    let (waiting_tx, waiting_rx) = mpsc::channel();
    std::thread::scope(|s| {
        let first = lock.read().unwrap();
        let writer = s.spawn(|| {
            waiting_tx.send(()).unwrap();
            drop(lock.write().unwrap());
        });
        waiting_rx.recv().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while lock.try_read().is_ok() {
            assert!(Instant::now() < deadline, "the writer never waited");
            std::thread::yield_now();
        }
        would_deadlock(lock.read());
        would_deadlock(lock.upgradable_read());
        drop(first);
        writer.join().unwrap();
    });
}

#[test]
fn readers_beyond_the_slots_wait_for_one_and_never_fail() {
    let seg = heap();
    let lock = seg.construct::<RwLock<u64>>("l", RwLock::new(9)).unwrap();
    let all: Vec<_> = (0..RwLock::<u64>::READER_SLOTS)
        .map(|_| lock.read().unwrap())
        .collect();
    assert!(format!("{lock:?}").contains(&format!("readers: {}", all.len())));
    match lock.read() {
        Err(LockError::Failed(Error::WouldDeadlock { .. })) => {}
        other => panic!("every slot is this thread's: expected WouldDeadlock, got {other:?}"),
    }
    let (tried_tx, tried_rx) = mpsc::channel();
    std::thread::scope(|s| {
        let late = s.spawn(|| {
            assert!(matches!(lock.try_read(), Err(TryLockError::WouldBlock)));
            assert!(matches!(
                lock.read_timeout(Duration::from_millis(20)),
                Err(TryLockError::WouldBlock)
            ));
            tried_tx.send(()).unwrap();
            *lock.read().unwrap()
        });
        tried_rx.recv().unwrap();
        drop(all);
        assert_eq!(late.join().unwrap(), 9);
    });
}

#[test]
fn debug_shows_holders_poison_and_waiters() {
    static LOCK: RwLock<u8> = RwLock::new(5);
    let free = format!("{LOCK:?}");
    for part in [
        "writer: None",
        "upgradable: None",
        "readers: 0",
        "waiters: false",
        "data: 5",
    ] {
        assert!(free.contains(part), "{part} in {free}");
    }
    let r1 = LOCK.read().unwrap();
    let r2 = LOCK.read().unwrap();
    let reading = format!("{LOCK:?}");
    assert!(
        reading.contains("readers: 2") && reading.matches("(this thread)").count() == 2,
        "{reading}"
    );
    drop((r1, r2));
    let up = LOCK.upgradable_read().unwrap();
    let upgradable = format!("{LOCK:?}");
    assert!(
        upgradable.contains("upgradable: Some(\"owner"),
        "{upgradable}"
    );
    let w = RwLockUpgradableReadGuard::upgrade(up).unwrap();
    let writing = format!("{LOCK:?}");
    assert!(
        writing.contains("writer: Some(\"owner") && writing.contains("<locked>"),
        "{writing}"
    );
    // A reader that waits: announced on the state word.
    std::thread::scope(|s| {
        let reader = s.spawn(|| *LOCK.read().unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        while !format!("{LOCK:?}").contains("waiters: true") {
            assert!(
                Instant::now() < deadline,
                "the reader never announced itself"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(w);
        assert_eq!(reader.join().unwrap(), 5);
    });
    // A writer that waits for a reader.
    let (waiting_tx, waiting_rx) = mpsc::channel();
    std::thread::scope(|s| {
        let r = LOCK.read().unwrap();
        s.spawn(|| {
            waiting_tx.send(()).unwrap();
            drop(LOCK.write().unwrap());
        });
        waiting_rx.recv().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !format!("{LOCK:?}").contains("waiting for the readers to leave") {
            assert!(
                Instant::now() < deadline,
                "the writer never showed as waiting"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(r);
    });
    std::thread::spawn(|| {
        let _w = LOCK.write().unwrap();
        panic!("poison it");
    })
    .join()
    .unwrap_err();
    let poisoned = format!("{LOCK:?}");
    assert!(
        poisoned.contains("poisoned: Some(Panicked)") && poisoned.contains("data: 5"),
        "{poisoned}"
    );
}

#[test]
fn a_write_guard_gives_plain_data_as_mut_and_anything_as_shm_mut() {
    let seg = heap();
    let lock = seg.construct::<RwLock<u64>>("l", RwLock::new(1)).unwrap();
    let mut g = lock.write().unwrap();
    *g += 1;
    g.as_shm_mut().set(10);
    drop(g);
    assert_eq!(
        seg.find::<RwLock<u64>>("l")
            .unwrap()
            .map(|l| *l.read().unwrap()),
        Some(10)
    );
    let mut owned = RwLock::new([1u64]);
    owned.get_mut().unwrap()[0] = 2;
    assert_eq!(owned.into_inner().unwrap(), [2]);
}

// ----- forged lock bytes -----------------------------------------------------------------

/// The lock's words, as `runtime/src/sync/rwlock/raw.rs` lays them out: state, poison,
/// writing, then the reader slots.
mod words {
    pub const STATE: usize = 0;
    pub const WRITING: usize = 8;
    pub const SLOTS: usize = 12;
    pub const WAITERS: u32 = 1 << 31;
    pub const WRITER: u32 = 1 << 30;
    /// The owner of private memory, which never dies.
    pub const PRIVATE: u32 = 1;
    /// An id no thread of this process has (private thread ids count up from 2).
    pub const DEAD: u32 = 0x3ABC_DEF0;
}

/// A heap segment holding the lock "l" = [0, 0] with `bytes` written over the lock's
/// words at `at`.
fn forged(at: usize, bytes: &[u8]) -> ManagedHeapMemory {
    let mut seg = heap();
    let offset = {
        let lock = seg
            .construct::<RwLock<[u64; 2]>>("l", RwLock::new([0; 2]))
            .unwrap();
        std::ptr::from_ref(lock).addr() - seg.base_address().as_ptr().addr()
    };
    assert_eq!(
        size_of::<RwLock<[u64; 2]>>(),
        128 + 16,
        "the layout `words` mirrors"
    );
    corrupt(&mut seg, offset + at, bytes);
    seg
}

fn word(v: u32) -> [u8; 4] {
    v.to_ne_bytes()
}

/// Two writers and a reader on `lock`, none of which may see another writer inside.
fn no_two_writers(lock: &RwLock<[u64; 2]>) {
    let per_thread = rounds(500);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..per_thread {
                    let mut g = lock
                        .write_timeout(Duration::from_secs(30))
                        .or_else(|e| e.into_poisoned().ok_or("timed out"))
                        .unwrap();
                    let v = g[0] + 1;
                    g[0] = v;
                    std::hint::spin_loop();
                    assert_eq!(g[0], v, "another writer is inside");
                    g[1] = v;
                }
            });
        }
        s.spawn(|| {
            for _ in 0..per_thread {
                let g = lock
                    .read_timeout(Duration::from_secs(30))
                    .or_else(|e| e.into_poisoned().ok_or("timed out"))
                    .unwrap();
                assert_eq!(g[0], g[1], "a reader saw a write half done");
            }
        });
    });
}

#[test]
fn random_lock_bytes_never_hang_nor_admit_two_writers() {
    let mut rng = Rng::new(0x5EED);
    for round in 0..rounds(40) {
        let bytes: Vec<u8> = (0..128).map(|_| rng.next_u64() as u8).collect();
        let seg = forged(0, &bytes);
        let seg = bounded(&format!("round {round}"), move || {
            {
                let lock = seg.find::<RwLock<[u64; 2]>>("l").unwrap().unwrap();
                // Every id in the bytes is dead: each call gets through.
                drop(lock.read().or_else(|e| e.into_poisoned()).unwrap());
                drop(lock.write().or_else(|e| e.into_poisoned()).unwrap());
                lock.clear_poison();
                no_two_writers(lock);
            }
            seg
        });
        let lock = seg.find::<RwLock<[u64; 2]>>("l").unwrap().unwrap();
        assert!(format!("{lock:?}").contains("readers: 0"), "round {round}");
    }
}

#[test]
fn all_bits_set_and_every_slot_forged_are_got_past() {
    for bytes in [
        vec![0xFF; 128],
        [word(words::WAITERS | words::DEAD); 32].concat(),
    ] {
        let seg = forged(0, &bytes);
        let lock = seg.find::<RwLock<[u64; 2]>>("l").unwrap().unwrap();
        assert!(
            lock.read().is_err(),
            "poisoned: the forged writer was writing"
        );
        lock.clear_poison();
        no_two_writers(lock);
    }
}

#[test]
fn a_forged_writer_that_was_not_writing_yet_does_not_poison() {
    let seg = forged(
        words::STATE,
        &word(words::WRITER | words::WAITERS | words::DEAD),
    );
    let lock = seg.find::<RwLock<[u64; 2]>>("l").unwrap().unwrap();
    assert_eq!(
        *lock
            .read()
            .expect("a writer that never got in changed nothing"),
        [0; 2]
    );
    let seg = forged(
        words::STATE,
        &[word(words::WRITER | words::DEAD), word(0), word(1)].concat(),
    );
    let lock = seg.find::<RwLock<[u64; 2]>>("l").unwrap().unwrap();
    let Err(LockError::Poisoned(p)) = lock.write() else {
        panic!("a writer that died writing poisons");
    };
    assert_eq!(p.cause(), PoisonCause::OwnerDied);
    assert_eq!(lock.poison_cause(), Some(PoisonCause::OwnerDied));
    drop(p);
    assert!(!format!("{lock:?}").contains(&words::DEAD.to_string()));
}

#[test]
fn holders_forged_to_name_the_private_owner_are_dead() {
    let timeout = Duration::from_secs(10);
    // User locks name threads, never the private owner (1): a word naming it was forged,
    // and its holder is taken for dead, not waited for.
    let seg = forged(words::STATE, &word(words::WRITER | words::PRIVATE));
    let seg = bounded("a writer forged to the private owner", move || {
        {
            let lock = seg.find::<RwLock<[u64; 2]>>("l").unwrap().unwrap();
            // Taken over at once (no `writing` word: a writer still waiting for readers,
            // which poisons nothing), never waited for.
            let started = std::time::Instant::now();
            assert_eq!(*lock.write_timeout(timeout).unwrap(), [0; 2]);
            assert!(started.elapsed() < timeout);
        }
        seg
    });
    drop(seg);
    // A reader slot forged to the private owner: cleared, writers get in.
    let seg = forged(words::SLOTS + 4 * 7, &word(words::PRIVATE));
    let seg = bounded("a reader forged to the private owner", move || {
        {
            let lock = seg.find::<RwLock<[u64; 2]>>("l").unwrap().unwrap();
            assert_eq!(*lock.write_timeout(timeout).unwrap(), [0; 2]);
            assert!(format!("{lock:?}").contains("readers: 0"));
        }
        seg
    });
    drop(seg);
    // `writing` alone, with nobody holding the state word: nothing to take over.
    let seg = forged(words::WRITING, &word(u32::MAX));
    let lock = seg.find::<RwLock<[u64; 2]>>("l").unwrap().unwrap();
    assert_eq!(*lock.write().unwrap(), [0; 2]);
    drop(lock.read().expect("a writer's release resets the word"));
}

#[test]
#[cfg_attr(miri, ignore = "real shared memory")]
fn on_shared_memory_live_threads_of_this_process_are_waited_for_and_dead_ones_got_past() {
    use shmkit_runtime::ManagedSharedMemory;
    use shmkit_test_support::guards::ShmGuard;

    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 64 * 1024).unwrap();
    let lock = seg.construct::<RwLock<u64>>("l", RwLock::new(0)).unwrap();
    // Several liveness polls: a live holder must not be taken for a dead one.
    let t = 4 * LIVENESS_POLL;
    while_another_thread_holds(
        || lock.read().unwrap(),
        || {
            assert!(matches!(
                lock.write_timeout(t),
                Err(TryLockError::WouldBlock)
            ))
        },
    );
    while_another_thread_holds(
        || lock.write().unwrap(),
        || {
            assert!(matches!(
                lock.read_timeout(t),
                Err(TryLockError::WouldBlock)
            ))
        },
    );
    while_another_thread_holds(
        || lock.upgradable_read().unwrap(),
        || {
            assert!(matches!(
                lock.write_timeout(t),
                Err(TryLockError::WouldBlock)
            ))
        },
    );
    assert!(!lock.is_poisoned());
    std::thread::scope(|s| {
        s.spawn(|| std::mem::forget(lock.read().unwrap()));
    });
    *lock.write().expect("a dead reader does not poison") = 1;
    std::thread::scope(|s| {
        s.spawn(|| std::mem::forget(lock.write().unwrap()));
    });
    let Err(LockError::Poisoned(p)) = lock.read() else {
        panic!("a dead writer poisons");
    };
    assert_eq!(p.cause(), PoisonCause::OwnerDied);
}

// ----- validation of data found in a segment -----------------------------------------------

/// The image of a heap segment holding `RwLock<bool>` "l" (true), with bytes of the lock
/// forged: (offset within the lock, bytes).
fn forged_bool_lock(edits: &[(usize, &[u8])]) -> shmkit_runtime::AlignedBuffer {
    let mut seg = heap();
    let at = std::ptr::from_ref(seg.construct("l", RwLock::new(true)).unwrap()).addr()
        - seg.base_address().as_ptr().addr();
    for &(offset, bytes) in edits {
        corrupt(&mut seg, at + offset, bytes);
    }
    shmkit_runtime::AlignedBuffer::from_image(seg.image())
}

#[test]
fn a_forged_value_behind_a_rwlock_is_refused_when_found() {
    // Every slot naming a dead reader does not keep the validator out: it needs none.
    let readers = [word(words::DEAD); 29].concat();
    let mut image = forged_bool_lock(&[(128, &[2]), (words::SLOTS, &readers)]);
    let seg = shmkit_runtime::ManagedExternalBuffer::open(&mut image).unwrap();
    match seg.find::<RwLock<bool>>("l") {
        Err(Error::InvalidValue { field, offset, .. }) => {
            assert_eq!((field.as_str(), offset), ("data", 128));
        }
        other => panic!("a bool of 2 behind a lock: {other:?}"),
    }
}

#[test]
fn a_forged_writer_is_taken_over_to_validate_and_leaves_the_lock_poisoned() {
    let state = word(words::WAITERS | words::WRITER | words::DEAD);
    let mut image = forged_bool_lock(&[(words::STATE, &state), (words::WRITING, &word(1))]);
    let seg = shmkit_runtime::ManagedExternalBuffer::open(&mut image).unwrap();
    let l = seg.find::<RwLock<bool>>("l").unwrap().unwrap();
    assert_eq!(l.poison_cause(), Some(PoisonCause::OwnerDied));
    assert!(*l.read().unwrap_err().into_poisoned().unwrap());
}

#[test]
#[cfg_attr(miri, ignore = "real shared memory")]
fn finding_a_rwlock_a_live_thread_writes_does_not_read_its_data() {
    use shmkit_runtime::ManagedSharedMemory;
    use shmkit_test_support::guards::ShmGuard;

    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 64 * 1024).unwrap();
    let l = seg
        .construct::<RwLock<bool>>("l", RwLock::new(false))
        .unwrap();
    let stop = AtomicBool::new(false);
    let (held_tx, held_rx) = mpsc::channel();
    std::thread::scope(|s| {
        let stop = &stop;
        s.spawn(move || {
            let mut g = l.write().unwrap();
            held_tx.send(()).unwrap();
            while !stop.load(Ordering::Relaxed) {
                *g = !*g;
            }
        });
        held_rx.recv().unwrap();
        // Another mapping, which did not write the object, finds it at once: the writer
        // lives, so the validator leaves the data (being written) alone.
        let other = ManagedSharedMemory::open(name.get()).unwrap();
        let started = Instant::now();
        assert!(other.find::<RwLock<bool>>("l").unwrap().is_some());
        assert!(started.elapsed() < Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
    });
}

#[test]
#[cfg_attr(miri, ignore = "real shared memory")]
fn a_named_rwlock_is_one_lock_behind_every_handle() {
    use shmkit_runtime::sync::NamedRwLock;
    use shmkit_test_support::guards::ShmGuard;

    let name = ShmGuard::new();
    let created = NamedRwLock::create(name.get()).unwrap();
    let opened = NamedRwLock::open(name.get()).unwrap();
    let r = created.read().unwrap();
    drop(opened.try_read().expect("readers share it"));
    assert!(matches!(opened.try_write(), Err(TryLockError::WouldBlock)));
    drop(r);
    let up = opened.upgradable_read().unwrap();
    assert!(matches!(
        created.try_upgradable_read(),
        Err(TryLockError::WouldBlock)
    ));
    drop(RwLockUpgradableReadGuard::upgrade(up).unwrap());
    drop(created.write().unwrap());
    assert!(NamedRwLock::remove(name.get()).unwrap());
}
