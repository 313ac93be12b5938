//! The child of the atomic wait test (`multiprocess/atomic_wait.rs`): the other end of a
//! doorbell and its reply, `AtomicU32`s in the shared memory segment `SHMKIT_NAME`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use shmkit_runtime::sync::{atomic_notify_one, atomic_wait, WaitOutcome};
use shmkit_runtime::ManagedSharedMemory;

use crate::{env, tell_parent};

/// Says "waiting", waits until "bell" is not 0 and says "rang <value>", then stores that
/// value plus one in "reply" and notifies it.
pub fn answer() {
    let seg = ManagedSharedMemory::open(env("SHMKIT_NAME")).unwrap();
    let bell = seg.find::<AtomicU32>("bell").unwrap().unwrap();
    let reply = seg.find::<AtomicU32>("reply").unwrap().unwrap();
    tell_parent("waiting");
    let rang = loop {
        match bell.load(Ordering::Acquire) {
            0 => {
                let outcome = atomic_wait(bell, 0, Some(Duration::from_secs(20)));
                assert_ne!(outcome, WaitOutcome::TimedOut, "the bell never rang");
            }
            v => break v,
        }
    };
    tell_parent(&format!("rang {rang}"));
    reply.store(rang + 1, Ordering::Release);
    atomic_notify_one(reply);
}
