//! `Mutex<T>`: exclusion, poison by panic and by a holder's death, no self-deadlock,
//! timeouts, and what `Debug` shows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shmkit_runtime::sync::{LockError, Mutex, PoisonCause, TryLockError, LIVENESS_POLL};
use shmkit_runtime::{Error, ManagedHeapMemory};

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

#[test]
fn excludes_threads_on_a_segment() {
    let seg = heap();
    let m = seg
        .construct::<Mutex<[u64; 2]>>("m", Mutex::new([0; 2]))
        .unwrap();
    let per_thread = rounds(20_000);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..per_thread {
                    let mut g = m.lock().unwrap();
                    // Two plain writes that a racing thread would tear apart.
                    g[0] += 1;
                    g[1] = g[0];
                }
            });
        }
    });
    let g = m.lock().unwrap();
    assert_eq!(*g, [4 * per_thread; 2]);
}

#[test]
fn a_panicking_holder_poisons_the_lock_until_cleared() {
    let seg = heap();
    let m = seg.construct::<Mutex<u64>>("m", Mutex::new(1)).unwrap();
    std::thread::scope(|s| {
        let r = s
            .spawn(|| {
                let mut g = m.lock().unwrap();
                *g = 2;
                panic!("while holding the lock");
            })
            .join();
        assert!(r.is_err());
    });
    assert!(m.is_poisoned());
    assert_eq!(m.poison_cause(), Some(PoisonCause::Panicked));
    let Err(LockError::Poisoned(p)) = m.lock() else {
        panic!("a poisoned lock must say so");
    };
    assert_eq!(p.cause(), PoisonCause::Panicked);
    assert_eq!(*p.into_inner(), 2, "the data is there anyway");
    let err: Error = m.lock().unwrap_err().into();
    assert!(err.to_string().contains("panicked"), "{err}");
    m.clear_poison();
    assert_eq!(*m.lock().unwrap(), 2);
}

#[test]
fn a_thread_that_exits_with_its_guard_leaked_is_a_dead_owner() {
    let seg = heap();
    let m = seg.construct::<Mutex<u64>>("m", Mutex::new(7)).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| std::mem::forget(m.lock().unwrap()));
    });
    let started = Instant::now();
    let Err(LockError::Poisoned(p)) = m.lock() else {
        panic!("a lock whose holder exited must be taken over, poisoned");
    };
    assert_eq!(p.cause(), PoisonCause::OwnerDied);
    assert_eq!(*p.into_inner(), 7);
    assert!(
        started.elapsed() < 50 * LIVENESS_POLL,
        "taken over after {:?}",
        started.elapsed()
    );
}

#[test]
fn a_guard_kept_in_a_thread_local_holds_its_lock_through_the_locals_destructor() {
    use shmkit_runtime::sync::MutexGuard;
    use std::cell::RefCell;

    static OUTSIDE: Mutex<u64> = Mutex::new(0);
    static IN_DESTRUCTOR: AtomicBool = AtomicBool::new(false);

    struct Keeper(Option<MutexGuard<'static, u64>>);
    impl Drop for Keeper {
        fn drop(&mut self) {
            IN_DESTRUCTOR.store(true, Ordering::SeqCst);
            // Long enough for a waiter to poll the holder several times.
            std::thread::sleep(4 * LIVENESS_POLL);
            **self.0.as_mut().unwrap() += 1;
        }
    }
    thread_local!(static KEPT: RefCell<Keeper> = const { RefCell::new(Keeper(None)) });

    let holder = std::thread::spawn(|| {
        let guard = OUTSIDE.lock().unwrap();
        KEPT.with(|k| k.borrow_mut().0 = Some(guard));
    });
    while !IN_DESTRUCTOR.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let got = OUTSIDE.lock();
    holder.join().unwrap();
    let guard = got.expect("released by the destructor, not taken over from a 'dead' thread");
    assert_eq!(*guard, 1);
}

#[test]
fn locking_twice_in_one_thread_is_an_error_not_a_hang() {
    let m = Mutex::new(0u32);
    let _held = m.lock().unwrap();
    match m.lock() {
        Err(LockError::Failed(Error::WouldDeadlock { .. })) => {}
        other => panic!("expected WouldDeadlock, got {other:?}"),
    }
    assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)));
}

#[test]
fn try_lock_and_lock_timeout_give_up_while_another_thread_holds_it() {
    let m = Mutex::new(0u32);
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let m = &m;
        s.spawn(move || {
            let _g = m.lock().unwrap();
            held_tx.send(()).unwrap();
            done_rx.recv().unwrap();
        });
        held_rx.recv().unwrap();
        assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)));
        let started = Instant::now();
        let timeout = Duration::from_millis(30);
        assert!(matches!(
            m.lock_timeout(timeout),
            Err(TryLockError::WouldBlock)
        ));
        let waited = started.elapsed();
        assert!(waited >= timeout, "gave up after {waited:?}");
        if !cfg!(miri) {
            assert!(waited < timeout * 20, "gave up only after {waited:?}");
        }
        done_tx.send(()).unwrap();
    });
    assert!(m.lock_timeout(Duration::from_secs(10)).is_ok());
}

#[test]
fn debug_shows_the_holder_and_the_poison() {
    let m = Mutex::new(5u8);
    let free = format!("{m:?}");
    assert!(
        free.contains("held_by: None") && free.contains("data: 5"),
        "{free}"
    );
    let g = m.lock().unwrap();
    let held = format!("{m:?}");
    assert!(
        held.contains("this thread") && held.contains("<locked>"),
        "{held}"
    );
    drop(g);
    // `join`, not a scope: a scope ends when the closure returns, before the thread's exit
    // (which gives its owner id back) is complete.
    static M: Mutex<u8> = Mutex::new(5);
    std::thread::spawn(|| std::mem::forget(M.lock().unwrap()))
        .join()
        .unwrap();
    let dead = format!("{M:?}");
    assert!(dead.contains("(dead)"), "{dead}");
}

#[test]
fn a_guard_gives_plain_data_as_mut_and_anything_as_shm_mut() {
    let seg = heap();
    let m = seg.construct::<Mutex<u64>>("m", Mutex::new(1)).unwrap();
    let mut g = m.lock().unwrap();
    *g += 1;
    g.as_shm_mut().set(10);
    drop(g);
    assert_eq!(*m.lock().unwrap(), 10);
    assert_eq!(
        seg.find::<Mutex<u64>>("m")
            .unwrap()
            .map(|m| *m.lock().unwrap()),
        Some(10)
    );
}

#[test]
#[cfg_attr(miri, ignore = "real shared memory")]
fn on_shared_memory_a_thread_exit_releases_its_owner_id_too() {
    use shmkit_runtime::ManagedSharedMemory;
    use shmkit_test_support::guards::ShmGuard;

    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 64 * 1024).unwrap();
    let m = seg.construct::<Mutex<u64>>("m", Mutex::new(3)).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| std::mem::forget(m.lock().unwrap()));
    });
    let Err(LockError::Poisoned(p)) = m.lock() else {
        panic!("a lock whose holder exited must be taken over, poisoned");
    };
    assert_eq!(p.cause(), PoisonCause::OwnerDied);
    drop(p);
    // A second mapping of the segment in this process locks in the same thread ids' space.
    let again = ManagedSharedMemory::open(name.get()).unwrap();
    let m2 = again.find::<Mutex<u64>>("m").unwrap().unwrap();
    m.clear_poison();
    let g = m2.lock().unwrap();
    assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)));
    drop(g);
    assert_eq!(*m.lock().unwrap(), 3);
}

#[test]
#[cfg_attr(miri, ignore = "real shared memory")]
fn on_shared_memory_a_live_thread_of_this_process_is_waited_for() {
    use shmkit_runtime::ManagedSharedMemory;
    use shmkit_test_support::guards::ShmGuard;

    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 64 * 1024).unwrap();
    let m = seg.construct::<Mutex<u64>>("m", Mutex::new(3)).unwrap();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut g = m.lock().unwrap();
            held_tx.send(()).unwrap();
            // Many liveness polls: the holder shares the waiter's lock description, on
            // which the kernel sees no conflict.
            std::thread::sleep(10 * LIVENESS_POLL);
            *g = 4;
        });
        held_rx.recv().unwrap();
        let got = m.lock();
        assert!(
            matches!(&got, Ok(g) if **g == 4),
            "taken from a live thread: {got:?}"
        );
    });
}

/// The image of a heap segment holding `Mutex<bool>` "m" (true), with the given bytes of the
/// mutex forged: (offset within the mutex, bytes).
fn forged_bool_mutex(edits: &[(usize, &[u8])]) -> shmkit_runtime::AlignedBuffer {
    let mut seg = heap();
    let at = std::ptr::from_ref(seg.construct("m", Mutex::new(true)).unwrap()).addr()
        - seg.base_address().as_ptr().addr();
    for &(offset, bytes) in edits {
        shmkit_test_support::internals::corrupt(&mut seg, at + offset, bytes);
    }
    shmkit_runtime::AlignedBuffer::from_image(seg.image())
}

#[test]
fn a_forged_value_behind_a_mutex_is_refused_when_found() {
    let mut image = forged_bool_mutex(&[(8, &[2])]);
    let seg = shmkit_runtime::ManagedExternalBuffer::open(&mut image).unwrap();
    match seg.find::<Mutex<bool>>("m") {
        Err(Error::InvalidValue { field, offset, .. }) => {
            assert_eq!((field.as_str(), offset), ("data", 8));
        }
        other => panic!("a bool of 2 behind a lock: {other:?}"),
    }
}

#[test]
fn a_forged_holder_is_taken_over_to_validate_and_leaves_the_lock_poisoned() {
    // An owner id nobody holds, with the waiters bit.
    let forged = (0x8000_0000u32 | 12_345).to_ne_bytes();
    let mut image = forged_bool_mutex(&[(0, &forged)]);
    let seg = shmkit_runtime::ManagedExternalBuffer::open(&mut image).unwrap();
    let m = seg.find::<Mutex<bool>>("m").unwrap().unwrap();
    assert_eq!(m.poison_cause(), Some(PoisonCause::OwnerDied));
    assert!(*m.lock().unwrap_err().into_poisoned().unwrap());
}

#[test]
#[cfg_attr(miri, ignore = "real shared memory")]
fn finding_a_mutex_held_by_a_live_thread_does_not_read_its_data() {
    use shmkit_runtime::ManagedSharedMemory;
    use shmkit_test_support::guards::ShmGuard;

    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 64 * 1024).unwrap();
    let m = seg
        .construct::<Mutex<bool>>("m", Mutex::new(false))
        .unwrap();
    let stop = AtomicBool::new(false);
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let stop = &stop;
        s.spawn(move || {
            let mut g = m.lock().unwrap();
            held_tx.send(()).unwrap();
            while !stop.load(Ordering::Relaxed) {
                *g = !*g;
            }
        });
        held_rx.recv().unwrap();
        // Another mapping, which did not write the object, finds it at once: the holder
        // is alive, so the validator leaves the data (being written) alone.
        let other = ManagedSharedMemory::open(name.get()).unwrap();
        let started = Instant::now();
        assert!(other.find::<Mutex<bool>>("m").unwrap().is_some());
        assert!(started.elapsed() < Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
    });
}
