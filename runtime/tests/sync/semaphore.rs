//! `Semaphore`: counting, timeouts, a producer/consumer ring between threads, no lost
//! wake-ups, overflow, forged bytes, and what `Debug` shows.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmkit_runtime::sync::{Semaphore, LIVENESS_POLL};
use shmkit_runtime::{Error, ManagedHeapMemory};

fn rounds(normal: u32) -> u32 {
    if cfg!(miri) {
        20
    } else {
        normal
    }
}

#[test]
fn units_are_counted() {
    let s = Semaphore::new(2);
    assert!(s.try_wait());
    assert!(s.try_wait());
    assert!(!s.try_wait());
    assert_eq!(s.value(), 0);
    s.post().unwrap();
    assert_eq!(s.value(), 1);
    s.wait();
    assert_eq!(s.value(), 0);
    assert_eq!(Semaphore::default().value(), 0, "all-zero is count 0");
}

#[test]
fn wait_timeout_gives_up_without_a_unit_and_takes_one_posted_meanwhile() {
    let s = Semaphore::new(0);
    let timeout = Duration::from_millis(30);
    let started = Instant::now();
    assert!(!s.wait_timeout(timeout));
    let waited = started.elapsed();
    assert!(waited >= timeout, "gave up after {waited:?}");
    if !cfg!(miri) {
        assert!(waited < timeout * 20, "gave up only after {waited:?}");
    }
    std::thread::scope(|sc| {
        sc.spawn(|| {
            std::thread::sleep(Duration::from_millis(5));
            s.post().unwrap();
        });
        assert!(s.wait_timeout(Duration::from_secs(10)));
    });
    assert_eq!(s.value(), 0);
}

/// Boost's `doc_anonymous_semaphore` ring, in a segment: a semaphore as the mutex, one
/// counting empty slots and one counting stored items, between several producers and
/// consumers.
#[test]
fn a_ring_buffer_between_threads_loses_and_duplicates_nothing() {
    const SLOTS: usize = 10;
    let seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    let mutex = seg.construct("mutex", Semaphore::new(1)).unwrap();
    let empty = seg
        .construct("empty", Semaphore::new(SLOTS as u32))
        .unwrap();
    let stored = seg.construct("stored", Semaphore::new(0)).unwrap();
    let head = seg.construct("head", AtomicU32::new(0)).unwrap();
    let tail = seg.construct("tail", AtomicU32::new(0)).unwrap();
    let items = seg
        .construct_array_with("items", SLOTS, |_| AtomicU64::new(0))
        .unwrap();
    let per_producer = u64::from(rounds(5_000));
    let producers = 3u64;
    let taken = AtomicU64::new(0);
    let sum = AtomicU64::new(0);
    std::thread::scope(|s| {
        for p in 0..producers {
            s.spawn(move || {
                for i in 0..per_producer {
                    empty.wait();
                    mutex.wait();
                    let at = head.load(Ordering::Relaxed) as usize;
                    items[at % SLOTS].store(p * per_producer + i + 1, Ordering::Relaxed);
                    head.store((at + 1) as u32, Ordering::Relaxed);
                    mutex.post().unwrap();
                    stored.post().unwrap();
                }
            });
        }
        for _ in 0..3 {
            s.spawn(|| loop {
                if !stored.wait_timeout(Duration::from_millis(200)) {
                    // Everything produced has been taken: the producers are done.
                    if taken.load(Ordering::Relaxed) == producers * per_producer {
                        break;
                    }
                    continue;
                }
                mutex.wait();
                let at = tail.load(Ordering::Relaxed) as usize;
                let item = items[at % SLOTS].swap(0, Ordering::Relaxed);
                tail.store((at + 1) as u32, Ordering::Relaxed);
                mutex.post().unwrap();
                empty.post().unwrap();
                assert_ne!(item, 0, "a slot was read twice or before it was written");
                sum.fetch_add(item, Ordering::Relaxed);
                taken.fetch_add(1, Ordering::Relaxed);
            });
        }
    });
    let n = producers * per_producer;
    assert_eq!(taken.into_inner(), n);
    assert_eq!(sum.into_inner(), n * (n + 1) / 2);
    assert_eq!(empty.value(), SLOTS as u32);
    assert_eq!(mutex.value(), 1);
}

#[test]
#[cfg_attr(miri, ignore = "timing")]
fn a_ping_pong_between_sleeping_threads_loses_no_wake_up() {
    // A lost wake-up would cost a waiter its whole poll (LIVENESS_POLL) per round.
    let ping = Semaphore::new(0);
    let pong = Semaphore::new(0);
    let n = 2_000;
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..n {
                ping.wait();
                pong.post().unwrap();
            }
        });
        for _ in 0..n {
            ping.post().unwrap();
            pong.wait();
        }
    });
    let took = started.elapsed();
    assert!(
        took < LIVENESS_POLL * n / 8,
        "{n} round trips took {took:?}: wake-ups were lost"
    );
}

#[test]
fn a_post_that_would_wrap_is_an_error() {
    let s = Semaphore::new(u32::MAX);
    let err = s.post().unwrap_err();
    assert!(matches!(err, Error::Overflow { max, .. } if max == u64::from(u32::MAX)));
    assert!(err.to_string().contains("semaphore"), "{err}");
    assert_eq!(s.value(), u32::MAX);
    assert!(s.try_wait());
    s.post().unwrap();
    assert_eq!(s.value(), u32::MAX);
}

#[test]
fn forged_bytes_neither_hang_nor_lose_a_unit() {
    // A waiter count forged high (posts make wake-up calls for nobody) or at 0 while a
    // waiter sleeps (the sleeper's poll notices the unit).
    for waiters in [u32::MAX, 0] {
        // SAFETY: `Semaphore` is two `repr(C)` `u32` atomics, any value of each valid.
        let s: Semaphore = unsafe { std::mem::transmute([0u32, waiters]) };
        std::thread::scope(|sc| {
            sc.spawn(|| {
                std::thread::sleep(Duration::from_millis(5));
                s.post().unwrap();
            });
            assert!(s.wait_timeout(Duration::from_secs(10)));
        });
        s.post().unwrap();
        assert!(s.try_wait());
        assert!(!s.try_wait());
    }
}

#[test]
fn lives_in_a_segment_and_debug_shows_value_and_waiters() {
    let seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    let s = seg.construct("s", Semaphore::new(3)).unwrap();
    assert!(s.try_wait());
    let found = seg.find::<Semaphore>("s").unwrap().unwrap();
    assert_eq!(found.value(), 2);
    assert_eq!(format!("{s:?}"), "Semaphore { value: 2, waiters: 0 }");
    while s.try_wait() {}
    std::thread::scope(|sc| {
        sc.spawn(|| s.wait());
        let started = Instant::now();
        while !format!("{s:?}").contains("waiters: 1") {
            assert!(started.elapsed() < Duration::from_secs(10), "{s:?}");
            std::thread::yield_now();
        }
        s.post().unwrap();
    });
    assert_eq!(format!("{s:?}"), "Semaphore { value: 0, waiters: 0 }");
}
