//! The child of the file lock kill loops (`os/file_lock.rs`): a holder the parent SIGKILLs.

use std::io::Read;

use shmkit_runtime::os::FileLock;

use crate::{env, tell_parent};

/// Locks the file `SHMKIT_NAME` as `SHMKIT_LOCK` says ("exclusive" or "shared"), says
/// "locked", and holds the lock until SIGKILLed (or until its stdin closes: the parent is
/// gone).
pub fn hold() {
    let mut lock = FileLock::open(env("SHMKIT_NAME")).unwrap();
    match env("SHMKIT_LOCK").as_str() {
        "exclusive" => hold_until_killed(lock.lock().unwrap()),
        "shared" => hold_until_killed(lock.lock_shared().unwrap()),
        other => panic!("unknown lock {other}"),
    }
}

fn hold_until_killed<G>(_guard: G) {
    tell_parent("locked");
    let _ = std::io::stdin().read(&mut [0u8]);
}
