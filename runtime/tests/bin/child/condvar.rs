//! The children of the condition variable tests (`multiprocess/condvar.rs`), on the segment
//! named by `SHMKIT_KIND` ("shm" or "file") and `SHMKIT_NAME`, which holds the `Mutex<u64>`
//! "m" and the `Condvar` "cv".

use std::time::Duration;

use shmkit_runtime::segment::Device;
use shmkit_runtime::sync::{Condvar, LockError, Mutex};

use crate::{env, tell_parent, Seg};

/// Longer than any test waits for this child: a wait that ends here has missed its
/// notification, and says so.
const LIMIT: Duration = Duration::from_secs(60);

/// Locks "m", says "waiting", and waits on "cv" while "m" holds 0. Then, as `SHMKIT_THEN`
/// says: "report" says "woken <value> <clean|poisoned>" and exits; "hold" says "holding"
/// and keeps the mutex until SIGKILLed.
pub fn wait() {
    on_device!(wait_on)
}

fn wait_on<D: Device>(name: &D::Name) {
    let seg = Seg::<D>::open(name).unwrap();
    let m = seg.find::<Mutex<u64>>("m").unwrap().unwrap();
    let cv = seg.find::<Condvar>("cv").unwrap().unwrap();
    let g = m.lock().unwrap();
    tell_parent("waiting");
    let ((g, waited), state) = match cv.wait_timeout_while(g, LIMIT, |v| *v == 0) {
        Ok(got) => (got, "clean"),
        Err(LockError::Poisoned(p)) => (p.into_inner(), "poisoned"),
        Err(LockError::Failed(e)) => panic!("relocking failed: {e}"),
    };
    assert!(!waited.timed_out(), "never woken");
    match env("SHMKIT_THEN").as_str() {
        "report" => tell_parent(&format!("woken {} {state}", *g)),
        "hold" => {
            tell_parent("holding");
            std::thread::sleep(LIMIT);
            drop(g);
        }
        other => panic!("unknown SHMKIT_THEN {other}"),
    }
}
