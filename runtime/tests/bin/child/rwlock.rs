//! The child of the `RwLock` kill tests (`multiprocess/rwlock.rs`): takes a lock on the
//! `RwLock<u64>` named "rwlock" in the segment named by `SHMKIT_KIND` and `SHMKIT_NAME`,
//! and holds it until SIGKILLed.

use shmkit_runtime::segment::Device;
use shmkit_runtime::sync::RwLock;

use crate::{env, tell_parent, wait_for_parent, Seg};

/// Holds what `SHMKIT_LOCK` names: "read" (says "reading <value>") or "write" (stores
/// `SHMKIT_VALUE`, then says "writing").
pub fn hold() {
    on_device!(hold_on)
}

fn hold_on<D: Device>(name: &D::Name) {
    let seg = Seg::<D>::open(name).unwrap();
    let lock = seg
        .find::<RwLock<u64>>("rwlock")
        .unwrap()
        .expect("the parent's lock");
    match env("SHMKIT_LOCK").as_str() {
        "read" => {
            let g = lock.read().unwrap();
            tell_parent(&format!("reading {}", *g));
            wait_for_parent();
        }
        "write" => {
            let mut g = lock.write().unwrap_or_else(|e| e.into_poisoned().unwrap());
            *g = env("SHMKIT_VALUE").parse().unwrap();
            tell_parent("writing");
            wait_for_parent();
        }
        other => panic!("unknown lock {other}"),
    }
}
