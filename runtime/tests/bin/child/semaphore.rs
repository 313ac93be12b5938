//! The children of the semaphore tests (`multiprocess/semaphore.rs`), on the shared memory
//! segment `SHMKIT_NAME`.

use std::time::Duration;

use shmkit_runtime::sync::Semaphore;
use shmkit_runtime::ManagedSharedMemory;

use crate::{env, tell_parent, wait_for_parent};

/// Longest a child waits for the parent's side of a protocol before failing.
const PATIENCE: Duration = Duration::from_secs(20);

/// Says "waiting", takes a unit of semaphore "sem" and says "got", holds it until the
/// parent's signal (or SIGKILL), then posts it back.
pub fn wait() {
    let seg = ManagedSharedMemory::open(env("SHMKIT_NAME")).unwrap();
    let sem = seg.find::<Semaphore>("sem").unwrap().unwrap();
    tell_parent("waiting");
    assert!(sem.wait_timeout(PATIENCE), "no unit within {PATIENCE:?}");
    tell_parent("got");
    wait_for_parent();
    sem.post().unwrap();
}

/// `SHMKIT_ROUNDS` times: takes a unit of "ping", posts one to "pong".
pub fn pong() {
    let seg = ManagedSharedMemory::open(env("SHMKIT_NAME")).unwrap();
    let ping = seg.find::<Semaphore>("ping").unwrap().unwrap();
    let pong = seg.find::<Semaphore>("pong").unwrap().unwrap();
    let rounds: u32 = env("SHMKIT_ROUNDS").parse().unwrap();
    for i in 0..rounds {
        assert!(
            ping.wait_timeout(PATIENCE),
            "no ping {i} within {PATIENCE:?}"
        );
        pong.post().unwrap();
    }
}
