//! `atomic_wait` / `atomic_notify_one` between real processes (the other end is the helper
//! binary's `atomic-wait-answer` role): a doorbell rung here wakes the child, whose reply
//! wakes this process.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmkit_runtime::sync::{atomic_notify_one, atomic_wait};
use shmkit_runtime::ManagedSharedMemory;
use shmkit_test_support::{spawn_child, ShmGuard};

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn a_doorbell_wakes_another_process_and_its_reply_wakes_this_one() {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 64 * 1024).unwrap();
    let bell = seg.construct("bell", AtomicU32::new(0)).unwrap();
    let reply = seg.construct("reply", AtomicU32::new(0)).unwrap();
    let mut c = spawn_child(
        env!("CARGO_BIN_EXE_shmkit-test-child"),
        "atomic-wait-answer",
        &[("SHMKIT_NAME", name.get().to_owned())],
    );
    assert_eq!(c.expect_message(LIMIT), "waiting");
    // Let it fall asleep: the wake-up must then come from the notify.
    std::thread::sleep(Duration::from_millis(20));
    bell.store(41, Ordering::Release);
    atomic_notify_one(bell);
    assert_eq!(c.expect_message(LIMIT), "rang 41");
    let started = Instant::now();
    while reply.load(Ordering::Acquire) == 0 {
        atomic_wait(reply, 0, Some(LIMIT));
        assert!(started.elapsed() < LIMIT, "no reply");
    }
    assert_eq!(reply.load(Ordering::Relaxed), 42);
    c.assert_success(LIMIT);
}
