//! User locks across `fork`: what a child may do with a lock its parent's thread held.

use std::time::Duration;

use shmkit_runtime::sync::{Mutex, TryLockError};

use crate::segment::{fork_child, wait_success};

/// A child forked while its only thread holds a private mutex (memory outside segments,
/// copied into the child) still has that guard alive on its stack: locking the mutex
/// again must not hand the child a second guard to the same data.
/// Run once before any fork handler exists and once after (a segment registers one, and
/// the child then counts a new fork generation).
pub fn a_child_forked_holding_a_private_mutex_gets_no_second_guard() {
    child_gets_no_second_guard();
    let _registers = shmkit_runtime::ManagedAnonymousSharedMemory::new(64 * 1024).unwrap();
    child_gets_no_second_guard();
}

fn child_gets_no_second_guard() {
    let m = Mutex::new(0u64);
    let mut held = m.lock().unwrap();
    *held = 1;
    let child = fork_child(|| {
        let second = m.lock_timeout(Duration::from_millis(200));
        let refused = matches!(
            second,
            Err(TryLockError::WouldBlock | TryLockError::Failed(_))
        );
        if !refused {
            eprintln!("the child took a second guard while its first lives: {second:?}");
        }
        refused && *held == 1
    });
    wait_success(child, "a second guard in the forked child");
    drop(held);
}
