//! Adversarial probes of the user locks: forged bytes in images reopened privately, and
//! locks reached in ways their authors may not have planned for.

use std::time::{Duration, Instant};

use shmkit_runtime::sync::{Mutex, PoisonCause, ReadError, SeqLock, TryLockError, LIVENESS_POLL};
use shmkit_runtime::{AlignedBuffer, Error, ManagedExternalBuffer, ManagedHeapMemory};
use shmkit_test_support::internals::corrupt;

/// The owner id every private mapping (heap, buffer, copy-on-write) takes to be alive for
/// good (`robust::owner::PRIVATE`), forged into a lock word.
const PRIVATE_WORD: [u8; 4] = 1u32.to_ne_bytes();

/// The image of a heap segment holding `value` as "x", with bytes of it forged:
/// (offset within the object, bytes).
fn forged<T: shmkit_runtime::ShmSafe>(value: T, edits: &[(usize, &[u8])]) -> AlignedBuffer {
    let mut seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    let at = std::ptr::from_ref(seg.construct("x", value).unwrap()).addr()
        - seg.base_address().as_ptr().addr();
    for &(offset, bytes) in edits {
        corrupt(&mut seg, at + offset, bytes);
    }
    AlignedBuffer::from_image(seg.image())
}

#[test]
fn a_forged_private_holder_does_not_skip_validation() {
    let mut image = forged(Mutex::new(true), &[(0, &PRIVATE_WORD), (8, &[2])]);
    let mut seg = ManagedExternalBuffer::open(&mut image).unwrap();
    match seg.find_mut::<Mutex<bool>>("x") {
        Err(Error::InvalidValue { .. }) => {}
        Ok(Some(m)) => {
            // Reading the bool here would be undefined behaviour: report instead.
            let got = Mutex::get_mut(m.get_mut()).is_ok();
            panic!(
                "a bool of 2 behind a forged holder was handed out (poisoned: {})",
                !got
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_forged_private_holder_is_taken_over() {
    let mut image = forged(Mutex::new(7u32), &[(0, &PRIVATE_WORD)]);
    let seg = ManagedExternalBuffer::open(&mut image).unwrap();
    let m = seg.find::<Mutex<u32>>("x").unwrap().unwrap();
    match m.lock_timeout(20 * LIVENESS_POLL) {
        Err(TryLockError::Poisoned(p)) => assert_eq!(p.cause(), PoisonCause::OwnerDied),
        other => panic!("a forged holder in a private image: {other:?}"),
    };
}

#[test]
fn a_forged_private_writer_mid_write_is_reported_dead() {
    // SeqLock: lock word at 0, poison at 4, sequence at 8.
    let mut image = forged(
        SeqLock::new(5u64),
        &[(0, &PRIVATE_WORD), (8, &1u32.to_ne_bytes())],
    );
    let seg = ManagedExternalBuffer::open(&mut image).unwrap();
    let s = seg.find::<SeqLock<u64>>("x").unwrap().unwrap();
    let started = Instant::now();
    assert_eq!(
        s.read_timeout(100 * LIVENESS_POLL),
        Err(ReadError::WriterDied),
        "after {:?}",
        started.elapsed()
    );
}

#[test]
fn a_forged_odd_sequence_without_holder_is_a_dead_writer() {
    let mut image = forged(SeqLock::new(5u64), &[(8, &7u32.to_ne_bytes())]);
    let seg = ManagedExternalBuffer::open(&mut image).unwrap();
    let s = seg.find::<SeqLock<u64>>("x").unwrap().unwrap();
    assert_eq!(
        s.read_timeout(Duration::from_secs(5)),
        Err(ReadError::WriterDied)
    );
    assert!(s.is_poisoned());
    s.write(9).unwrap();
    assert_eq!(s.read(), Ok(9));
}

/// Found: `check_under` took `Denied::Failed` (here `Corrupted`) for a live holder and
/// skipped the data, which `find_mut` then lent.
#[test]
fn a_lock_word_poisoned_for_good_does_not_skip_validation() {
    let poisoned = 0x7fff_ffffu32.to_ne_bytes();
    let mut image = forged(Mutex::new(true), &[(0, &poisoned), (8, &[2])]);
    let mut seg = ManagedExternalBuffer::open(&mut image).unwrap();
    match seg.find_mut::<Mutex<bool>>("x") {
        Err(Error::InvalidValue { .. }) => {}
        Ok(Some(m)) => {
            // Reading the bool here would be undefined behaviour: report instead.
            let got = Mutex::get_mut(m.get_mut()).is_ok();
            panic!(
                "a bool of 2 behind a poisoned lock word was handed out (poisoned: {})",
                !got
            );
        }
        other => panic!("{other:?}"),
    }
}

/// The owner id a thread's next claim on a private owner gets, if no other thread claims
/// first: one more than the id this (fresh) thread gets for memory outside segments. Ids of
/// private owners come from one counter of the process.
fn next_private_claim() -> u32 {
    let probe = Mutex::new(());
    let _held = probe.lock().unwrap();
    let shown = format!("{probe:?}");
    let id = shown
        .split("owner ")
        .nth(1)
        .and_then(|s| s.split(' ').next());
    id.and_then(|id| id.parse::<u32>().ok()).unwrap() + 1
}

#[test]
fn a_forged_holder_naming_the_validating_thread_does_not_skip_validation() {
    for _ in 0..200 {
        let handed_out = std::thread::spawn(|| {
            let next = next_private_claim();
            let mut image = forged(Mutex::new(true), &[(0, &next.to_ne_bytes()), (8, &[2])]);
            let mut seg = ManagedExternalBuffer::open(&mut image).unwrap();
            // Reading the bool would be undefined behaviour: only say whether it was lent.
            let lent = matches!(seg.find_mut::<Mutex<bool>>("x"), Ok(Some(_)));
            lent
        })
        .join()
        .unwrap();
        assert!(
            !handed_out,
            "a bool of 2 behind a lock 'held by this thread' was handed out"
        );
    }
}

#[test]
fn a_reentrant_lock_forged_to_name_the_locking_thread_is_not_nested_into() {
    use shmkit_runtime::sync::ReentrantMutex;
    for _ in 0..200 {
        let handed_out = std::thread::spawn(|| {
            let next = next_private_claim();
            let value = ReentrantMutex::new(true);
            let mut image = forged(value, &[(0, &next.to_ne_bytes()), (12, &[2])]);
            let seg = ManagedExternalBuffer::open(&mut image).unwrap();
            let Ok(Some(m)) = seg.find::<ReentrantMutex<bool>>("x") else {
                return false;
            };
            // Dereferencing the guard would read a bool of 2: only say it was lent.
            let lent = m.lock().is_ok();
            lent
        })
        .join()
        .unwrap();
        assert!(
            !handed_out,
            "a reentrant lock 'held by this thread' lent a bool of 2"
        );
    }
}

#[test]
#[cfg_attr(miri, ignore = "real shared memory")]
fn a_mutex_held_through_one_mapping_is_refused_not_hung_through_another() {
    use shmkit_runtime::ManagedSharedMemory;
    use shmkit_test_support::guards::ShmGuard;

    let name = ShmGuard::new();
    let a = ManagedSharedMemory::create(name.get(), 64 * 1024).unwrap();
    let b = ManagedSharedMemory::open(name.get()).unwrap();
    let through_a = a.construct::<Mutex<u32>>("m", Mutex::new(1)).unwrap();
    let through_b = b.find::<Mutex<u32>>("m").unwrap().unwrap();
    let _held = through_a.lock().unwrap();
    let started = Instant::now();
    match through_b.lock_timeout(Duration::from_secs(2)) {
        Err(TryLockError::Failed(Error::WouldDeadlock { .. })) | Err(TryLockError::WouldBlock) => {}
        other => panic!("the second mapping took a lock this thread holds: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(matches!(
        through_b.try_lock(),
        Err(TryLockError::WouldBlock)
    ));
    // Debug through the other mapping does not block either.
    let shown = format!("{through_b:?}");
    assert!(shown.contains("<locked>"), "{shown}");
}

#[test]
fn a_semaphore_with_a_forged_waiter_count_loses_no_post() {
    use shmkit_runtime::sync::Semaphore;
    // Semaphore: count at 0, waiters at 4; u32::MAX wraps to 0 when a waiter counts in.
    for waiters in [u32::MAX, 0x8000_0000, 1] {
        let mut image = forged(Semaphore::new(0), &[(4, &waiters.to_ne_bytes())]);
        let seg = ManagedExternalBuffer::open(&mut image).unwrap();
        let s = seg.find::<Semaphore>("x").unwrap().unwrap();
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| s.wait_timeout(Duration::from_secs(10)));
            std::thread::sleep(5 * LIVENESS_POLL);
            s.post().unwrap();
            assert!(
                waiter.join().unwrap(),
                "a post lost with {waiters:#x} forged waiters"
            );
        });
        assert_eq!(s.value(), 0);
    }
}

#[test]
fn a_semaphore_at_its_maximum_refuses_a_post_and_still_counts_down() {
    use shmkit_runtime::sync::Semaphore;
    let mut image = forged(Semaphore::new(0), &[(0, &u32::MAX.to_ne_bytes())]);
    let seg = ManagedExternalBuffer::open(&mut image).unwrap();
    let s = seg.find::<Semaphore>("x").unwrap().unwrap();
    assert!(matches!(s.post(), Err(Error::Overflow { .. })));
    assert!(s.try_wait());
    assert_eq!(s.value(), u32::MAX - 1);
}

#[test]
#[cfg_attr(miri, ignore = "real shared memory")]
fn a_named_mutex_over_a_foreign_or_truncated_object_is_an_error() {
    use shmkit_runtime::sync::NamedMutex;
    use shmkit_test_support::devices::shm_path;
    use shmkit_test_support::guards::ShmGuard;

    for bytes in [
        vec![],
        vec![0xA5; 7],
        vec![0xFF; 4096],
        b"not a segment".repeat(500),
    ] {
        let name = ShmGuard::new();
        std::fs::write(shm_path(name.get()), &bytes).unwrap();
        let started = Instant::now();
        let opened = NamedMutex::open(name.get());
        assert!(opened.is_err(), "{} foreign bytes opened", bytes.len());
        // An empty object is a creation that never sized it, which open_or_create adopts.
        if !bytes.is_empty() {
            let again = NamedMutex::open_or_create(name.get());
            assert!(again.is_err(), "{} foreign bytes: {again:?}", bytes.len());
        }
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}

#[test]
#[cfg_attr(miri, ignore = "real shared memory")]
fn a_named_object_of_another_type_is_a_type_mismatch() {
    use shmkit_runtime::sync::{NamedMutex, NamedSemaphore};
    use shmkit_test_support::guards::ShmGuard;

    let name = ShmGuard::new();
    let _sem = NamedSemaphore::create(name.get()).unwrap();
    assert!(matches!(
        NamedMutex::open(name.get()),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        NamedMutex::open_or_create(name.get()),
        Err(Error::TypeMismatch { .. })
    ));
}

#[test]
#[cfg_attr(miri, ignore = "real shared memory")]
fn a_mutex_held_through_a_shm_mapping_is_refused_not_hung_through_its_file() {
    use shmkit_runtime::{ManagedMappedFile, ManagedSharedMemory};
    use shmkit_test_support::devices::shm_path;
    use shmkit_test_support::guards::ShmGuard;

    let name = ShmGuard::new();
    let shm = ManagedSharedMemory::create(name.get(), 64 * 1024).unwrap();
    let file = ManagedMappedFile::open(shm_path(name.get())).unwrap();
    let through_shm = shm.construct::<Mutex<u32>>("m", Mutex::new(1)).unwrap();
    let through_file = file.find::<Mutex<u32>>("m").unwrap().unwrap();
    let _held = through_shm.lock().unwrap();
    let started = Instant::now();
    let got = through_file.lock_timeout(Duration::from_secs(1));
    let waited = started.elapsed();
    match got {
        Err(TryLockError::Failed(Error::WouldDeadlock { .. })) => {}
        other => panic!("after {waited:?}: {other:?} (lock() would wait for this thread forever)"),
    }
}

#[test]
fn a_reentrant_level_taken_while_unwinding_and_dropped_last_still_poisons() {
    use shmkit_runtime::sync::{ReentrantMutex, ReentrantMutexGuard};

    struct Unwinder<'a> {
        lock: &'a ReentrantMutex<()>,
        outer: Option<ReentrantMutexGuard<'a, ()>>,
    }
    impl Drop for Unwinder<'_> {
        fn drop(&mut self) {
            // Taken while panicking, nested in `outer`, dropped after it.
            let inner = self.lock.lock().unwrap();
            drop(self.outer.take());
            drop(inner);
        }
    }

    let lock = ReentrantMutex::new(());
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _u = Unwinder {
            lock: &lock,
            outer: Some(lock.lock().unwrap()),
        };
        panic!("while holding the reentrant lock");
    }));
    assert!(unwound.is_err());
    assert!(
        lock.is_poisoned(),
        "the panic interrupted the outermost holder"
    );
}

/// Waits on `cv` with `lock` until its count reaches 3.
fn await_three(cv: &shmkit_runtime::sync::Condvar, lock: &Mutex<u32>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut g = lock.lock().unwrap();
    while *g < 3 {
        g = cv.wait_timeout(g, Duration::from_secs(1)).unwrap().0;
        assert!(Instant::now() < deadline, "never saw 3");
    }
}

#[test]
fn one_condvar_serves_two_mutexes_through_a_notify_storm() {
    use shmkit_runtime::sync::Condvar;
    use std::sync::atomic::{AtomicBool, Ordering};

    let (a, b, cv) = (Mutex::new(0u32), Mutex::new(0u32), Condvar::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                cv.notify_all();
                cv.notify_one();
            }
        });
        let wa = s.spawn(|| await_three(&cv, &a));
        let wb = s.spawn(|| await_three(&cv, &b));
        for _ in 0..3 {
            std::thread::sleep(LIVENESS_POLL);
            *a.lock().unwrap() += 1;
            *b.lock().unwrap() += 1;
            cv.notify_all();
        }
        let (ra, rb) = (wa.join(), wb.join());
        // Stops the storm before reporting, so a failing waiter does not hang the scope.
        stop.store(true, Ordering::Relaxed);
        ra.unwrap();
        rb.unwrap();
    });
}

/// A thread caches its owner id for the mapping it last locked in, keyed on the registry's
/// generation: the cache must not outlive the mapping. Guards leaked through a mapping
/// that is then dropped name ids of its owner, dead once it goes; locking through a new
/// mapping at the same address (another owner) must take each lock over, poisoned, not
/// nest into it (reentrant) nor refuse it as this thread's own (mutex), as a stale id would.
#[test]
#[cfg_attr(miri, ignore = "real shared memory")]
fn locks_leaked_through_a_mapping_gone_from_the_same_address_are_taken_over() {
    use shmkit_runtime::sync::ReentrantMutex;
    use shmkit_runtime::ManagedSharedMemory;
    use shmkit_test_support::guards::ShmGuard;

    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 64 * 1024).unwrap();
    let base = seg.base_address();
    std::mem::forget(
        seg.construct("m", Mutex::new(1u32))
            .unwrap()
            .lock()
            .unwrap(),
    );
    let r = seg.construct("r", ReentrantMutex::new(2u32)).unwrap();
    std::mem::forget(r.lock().unwrap());
    drop(seg);

    let again = ManagedSharedMemory::options()
        .address(base)
        .open(name.get())
        .unwrap();
    let wait = Duration::from_secs(5);
    let m = again.find::<Mutex<u32>>("m").unwrap().unwrap();
    match m.lock_timeout(wait) {
        Err(TryLockError::Poisoned(p)) if p.cause() == PoisonCause::OwnerDied => {}
        other => panic!("a mutex leaked through the gone mapping: {other:?}"),
    }
    let r = again.find::<ReentrantMutex<u32>>("r").unwrap().unwrap();
    match r.lock_timeout(wait) {
        Err(TryLockError::Poisoned(p)) if p.cause() == PoisonCause::OwnerDied => {}
        other => panic!("a reentrant lock leaked through the gone mapping: {other:?}"),
    };
}

/// Found: a mapping made exclusive and then shared (`into_shared`) keeps an owner of its
/// own (its device's description), apart from the process's shared attachment that later
/// opens of the segment join. A thread holding a mutex through the first waits for itself
/// through the second: its id there names a holder alive on another description, so
/// `lock()` hangs for good where `WouldDeadlock` is expected (as
/// `a_mutex_held_through_a_shm_mapping_is_refused_not_hung_through_its_file` gets, two
/// mappings of one attachment). No second guard: the wait is only ever for itself.
#[test]
#[cfg_attr(miri, ignore = "real shared memory")]
fn a_mutex_held_through_an_into_shared_mapping_is_refused_not_hung_through_another() {
    use shmkit_runtime::ManagedSharedMemory;
    use shmkit_test_support::guards::ShmGuard;

    let name = ShmGuard::new();
    let built = ManagedSharedMemory::options()
        .exclusive()
        .create(name.get(), 64 * 1024)
        .unwrap();
    built.construct("m", Mutex::new(1u32)).unwrap();
    let shared = built.into_shared().unwrap();
    let other = ManagedSharedMemory::open(name.get()).unwrap();
    let _held = shared
        .find::<Mutex<u32>>("m")
        .unwrap()
        .unwrap()
        .lock()
        .unwrap();
    let through_other = other.find::<Mutex<u32>>("m").unwrap().unwrap();
    match through_other.lock_timeout(Duration::from_secs(1)) {
        Err(TryLockError::Failed(Error::WouldDeadlock { .. })) => {}
        other => panic!("lock() would wait for this thread forever: {other:?}"),
    };
}
