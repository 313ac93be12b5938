//! The children of the named object tests (`multiprocess/named.rs`), on the named object
//! `SHMKIT_NAME`.

use shmkit_runtime::sync::{Mutex, Named, NamedMutex};

use crate::{env, tell_parent, wait_for_parent};

/// Opens the named mutex, locks it, says "locked" and holds it until SIGKILLed.
pub fn hold() {
    let m = NamedMutex::open(env("SHMKIT_NAME")).unwrap();
    let _g = m.lock().unwrap();
    tell_parent("locked");
    wait_for_parent();
}

/// Opens (or creates) the named `Mutex<u64>` and adds 1 to it `SHMKIT_ROUNDS` times.
pub fn count() {
    let counter = Named::<Mutex<u64>>::open_or_create(env("SHMKIT_NAME")).unwrap();
    let rounds: u64 = env("SHMKIT_ROUNDS").parse().unwrap();
    tell_parent("counting");
    for _ in 0..rounds {
        *counter.lock().unwrap() += 1;
    }
}
