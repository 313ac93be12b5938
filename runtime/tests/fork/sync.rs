//! User locks across `fork`: what a child may do with a lock its parent's thread held.

use std::time::Duration;

use shmkit_runtime::sync::{Mutex, ReentrantMutex, TryLockError};

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

/// A private mutex held at the fork by another thread of the parent: that thread is not
/// in the child, so the child's copy is a dead owner's, taken over with poison, not a hang.
/// (Once a fork handler exists; before, the child cannot tell forks apart.)
pub fn a_private_mutex_another_thread_held_at_the_fork_is_a_dead_owners_in_the_child() {
    let _registers = shmkit_runtime::ManagedAnonymousSharedMemory::new(64 * 1024).unwrap();
    let m = Mutex::new(7u64);
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let m = &m;
    std::thread::scope(|s| {
        s.spawn(move || {
            let _g = m.lock().unwrap();
            held_tx.send(()).unwrap();
            let _ = done_rx.recv_timeout(Duration::from_secs(30));
        });
        held_rx.recv().unwrap();
        let child = fork_child(|| match m.lock_timeout(Duration::from_secs(5)) {
            Err(TryLockError::Poisoned(p)) => {
                p.cause() == shmkit_runtime::sync::PoisonCause::OwnerDied && **p.get_ref() == 7
            }
            other => {
                eprintln!("the child got {other:?}, not a dead owner's lock");
                false
            }
        });
        wait_success(
            child,
            "taking over a lock of a thread the child does not have",
        );
        done_tx.send(()).unwrap();
    });
}

/// A reentrant lock in shared memory, held by the parent's thread at the fork: the child's
/// thread locks under an id of its own (its description of the segment is its own), so it
/// waits for the parent's hold instead of nesting into it, also when that thread had just
/// locked there (the per-thread cache of the id it locks under is keyed on the fork
/// generation).
pub fn a_child_does_not_nest_into_a_shared_reentrant_lock_its_parent_holds() {
    let seg = shmkit_runtime::ManagedAnonymousSharedMemory::new(64 * 1024).unwrap();
    let r = seg.construct("r", ReentrantMutex::new(1u64)).unwrap();
    drop(r.lock().unwrap());
    let held = r.lock().unwrap();
    let child = fork_child(|| match r.lock_timeout(Duration::from_millis(200)) {
        Err(TryLockError::WouldBlock) => true,
        other => {
            eprintln!("the child got {other:?} while its parent holds the lock");
            false
        }
    });
    wait_success(child, "nesting into the parent's hold");
    drop(held);
}
