//! `Named<T>` in one process: create / open / open_or_create / remove, the errors naming
//! the object, two handles sharing one lock, a dead holder's poison. The tests across
//! processes are in `tests/multiprocess/named.rs`.

#![cfg(not(miri))]

use std::time::Duration;

use shmkit_runtime::sync::{
    LockError, Mutex, Named, NamedMutex, NamedSemaphore, PoisonCause, Semaphore, TryLockError,
};
use shmkit_runtime::{Error, ManagedSharedMemory};
use shmkit_test_support::guards::ShmGuard;

#[test]
fn create_open_and_remove() {
    let name = ShmGuard::new();
    let created = NamedMutex::create(name.get()).unwrap();
    assert_eq!(created.name(), name.get());
    let opened = NamedMutex::open(name.get()).unwrap();
    let both = NamedMutex::open_or_create(name.get()).unwrap();
    let g = created.lock().unwrap();
    assert!(matches!(opened.try_lock(), Err(TryLockError::WouldBlock)));
    // One lock behind every handle: this thread holds it already.
    assert!(matches!(
        both.lock_timeout(Duration::from_millis(5)),
        Err(TryLockError::Failed(Error::WouldDeadlock { .. }))
    ));
    drop(g);
    drop(opened.lock().unwrap());

    assert!(NamedMutex::remove(name.get()).unwrap());
    assert!(!NamedMutex::remove(name.get()).unwrap());
    // Handles opened before the removal keep working.
    drop(both.lock().unwrap());
    assert!(matches!(
        NamedMutex::open(name.get()),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn errors_name_the_object() {
    let name = ShmGuard::new();
    let err = NamedSemaphore::open(name.get()).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(name.get()) && msg.contains("named Semaphore"),
        "{msg}"
    );

    let _sem = NamedSemaphore::create_with(name.get(), Semaphore::new(1)).unwrap();
    let err = NamedSemaphore::create(name.get()).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    assert!(err.to_string().contains(name.get()), "{err}");

    let err = NamedMutex::open(name.get()).unwrap_err();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("named Mutex<()>"), "{err}");

    let segment = ShmGuard::new();
    let seg = ManagedSharedMemory::create(segment.get(), 64 * 1024).unwrap();
    seg.construct("data", 1u64).unwrap();
    let err = NamedMutex::open(segment.get()).unwrap_err();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("another use"), "{err}");
    // Nor is it taken over by open_or_create.
    let err = NamedMutex::open_or_create(segment.get()).unwrap_err();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err:?}");
    assert_eq!(seg.num_named_objects(), 1);

    for bad in ["", "a/b", "x\0y", ".."] {
        let err = NamedMutex::create(bad).unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{bad:?}: {err:?}");
    }
    let long = "n".repeat(256);
    assert!(matches!(
        NamedMutex::open_or_create(&long),
        Err(Error::InvalidName { .. })
    ));
}

#[test]
fn a_named_semaphore_counts_across_handles() {
    let name = ShmGuard::new();
    let a = NamedSemaphore::open_or_create_with(name.get(), || Semaphore::new(2)).unwrap();
    // The value is given only to the one that creates.
    let b = NamedSemaphore::open_or_create_with(name.get(), || Semaphore::new(99)).unwrap();
    assert_eq!(b.value(), 2);
    assert!(a.try_wait() && b.try_wait());
    assert!(!a.try_wait());
    std::thread::scope(|s| {
        s.spawn(|| b.post().unwrap());
        assert!(a.wait_timeout(Duration::from_secs(10)));
    });
    assert_eq!(
        format!("{a:?}"),
        format!(
            "Named {{ name: {:?}, object: Semaphore {{ value: 0, waiters: 0 }} }}",
            name.get()
        )
    );
}

#[test]
fn a_thread_that_exits_holding_a_named_mutex_poisons_it() {
    let name = ShmGuard::new();
    let m = NamedMutex::create(name.get()).unwrap();
    let n = name.get().to_owned();
    // `join`, not a scope: the thread's exit gives its owner id back.
    std::thread::spawn(move || {
        let other = NamedMutex::open(&n).unwrap();
        std::mem::forget(other.lock().unwrap());
    })
    .join()
    .unwrap();
    let Err(LockError::Poisoned(p)) = m.lock() else {
        panic!("the next locker gets the lock poisoned");
    };
    assert_eq!(p.cause(), PoisonCause::OwnerDied);
}

#[test]
fn any_shm_safe_value_can_be_named() {
    let name = ShmGuard::new();
    let big = Named::<Mutex<[[u64; 32]; 16]>>::create(name.get()).unwrap();
    big.lock().unwrap()[15][31] = 7;
    let again = Named::<Mutex<[[u64; 32]; 16]>>::open(name.get()).unwrap();
    assert_eq!(again.lock().unwrap()[15][31], 7);
}

#[test]
#[cfg_attr(miri, ignore = "real shared memory")]
fn a_named_condvar_wakes_a_waiter_on_a_named_mutex() {
    use shmkit_runtime::sync::{NamedCondvar, NamedMutex};
    use std::time::Duration;

    let mutex_name = shmkit_test_support::guards::ShmGuard::new();
    let cv_name = shmkit_test_support::guards::ShmGuard::new();
    let mutex = NamedMutex::create(mutex_name.get()).unwrap();
    let cv = NamedCondvar::create(cv_name.get()).unwrap();
    let flag = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mutex = NamedMutex::open(mutex_name.get()).unwrap();
            let cv = NamedCondvar::open(cv_name.get()).unwrap();
            let guard = mutex.lock().unwrap();
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            drop(guard);
            cv.notify_all();
        });
        let mut guard = mutex.lock().unwrap();
        while !flag.load(std::sync::atomic::Ordering::SeqCst) {
            let (g, timeout) = cv.wait_timeout(guard, Duration::from_secs(10)).unwrap();
            assert!(!timeout.timed_out(), "the notification was lost");
            guard = g;
        }
    });
}
