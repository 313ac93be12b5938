//! `ReentrantMutex<T>`: its holder nests, others wait; guards go in any order; a dead
//! holder poisons.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shmkit_runtime::sync::{LockError, PoisonCause, ReentrantMutex, TryLockError};
use shmkit_runtime::ManagedHeapMemory;

#[test]
fn the_holder_nests_and_others_wait_for_the_last_level() {
    let seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    let m = seg
        .construct::<ReentrantMutex<AtomicU64>>("m", ReentrantMutex::new(AtomicU64::new(0)))
        .unwrap();
    let outer = m.lock().unwrap();
    let inner = m.lock().unwrap();
    let innermost = m.try_lock().unwrap();
    innermost.fetch_add(1, Ordering::Relaxed);
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)));
        });
    });
    // In any order: the last guard releases.
    drop(outer);
    drop(innermost);
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(matches!(
                m.lock_timeout(Duration::from_millis(20)),
                Err(TryLockError::WouldBlock)
            ));
        });
    });
    drop(inner);
    std::thread::scope(|s| {
        s.spawn(|| assert_eq!(m.lock().unwrap().load(Ordering::Relaxed), 1));
    });
}

#[test]
fn excludes_threads() {
    let m = ReentrantMutex::new(AtomicU64::new(0));
    let rounds = if cfg!(miri) { 20 } else { 5_000 };
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..rounds {
                    let a = m.lock().unwrap();
                    let b = m.lock().unwrap();
                    // Load then store: a racing holder would lose updates.
                    let v = a.load(Ordering::Relaxed);
                    b.store(v + 1, Ordering::Relaxed);
                }
            });
        }
    });
    assert_eq!(m.lock().unwrap().load(Ordering::Relaxed), 3 * rounds);
}

#[test]
fn a_holder_that_exits_with_a_leaked_guard_poisons_it() {
    static M: ReentrantMutex<u32> = ReentrantMutex::new(9);
    std::thread::spawn(|| {
        let g = M.lock().unwrap();
        std::mem::forget(M.lock().unwrap());
        std::mem::forget(g);
    })
    .join()
    .unwrap();
    let Err(LockError::Poisoned(p)) = M.lock() else {
        panic!("taken over from an exited holder, poisoned");
    };
    assert_eq!(p.cause(), PoisonCause::OwnerDied);
    let outer = p.into_inner();
    // The dead holder's two levels are not ours: after our two, the lock is free again.
    let nested = M
        .lock()
        .expect("a nested level reports no poison: the outermost did");
    drop(nested);
    drop(outer);
    M.clear_poison();
    std::thread::spawn(|| assert_eq!(*M.try_lock().unwrap(), 9))
        .join()
        .unwrap();
}
