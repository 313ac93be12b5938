//! `shmkit-test-child`: the other processes of the runtime's multi-process tests. The
//! first argument names the role, environment variables carry its parameters; every line
//! printed on stdout is a message for the parent test, which may write start signals and
//! data to stdin. See `shmkit-test-support`'s crate doc for why this is a binary of the
//! runtime package.

// The helpers the parent tests and this binary share (see the support crate's doc): each
// binary uses a part of them.
#[allow(dead_code)]
#[path = "../../../../test-support/src/blocks.rs"]
mod blocks;
#[allow(dead_code)]
#[path = "../../../../test-support/src/bytes.rs"]
mod bytes;
#[allow(dead_code)]
#[path = "../../../../test-support/src/churn.rs"]
mod churn;
#[allow(dead_code)]
#[path = "../../../../test-support/src/fuzz.rs"]
mod fuzz;
#[allow(dead_code)]
#[path = "../../../../test-support/src/guards.rs"]
mod guards;
#[allow(dead_code)]
#[path = "../../../../test-support/src/internals.rs"]
mod internals;
#[allow(dead_code)]
#[path = "../../../../test-support/src/names.rs"]
mod names;
#[allow(dead_code)]
#[path = "../../../../test-support/src/rng.rs"]
mod rng;
#[allow(dead_code)]
#[path = "../../../../test-support/src/watch.rs"]
mod watch;

/// Runs the generic `role::<D>(name)` on the device segment named by `SHMKIT_KIND` ("shm"
/// or "file") and `SHMKIT_NAME`.
macro_rules! on_device {
    ($role:ident) => {
        match $crate::env("SHMKIT_KIND").as_str() {
            "shm" => {
                $role::<shmkit_runtime::os::SharedMemoryObject>($crate::env("SHMKIT_NAME").as_str())
            }
            "file" => $role::<shmkit_runtime::os::MappableFile>(std::path::Path::new(
                &$crate::env("SHMKIT_NAME"),
            )),
            other => panic!("unknown kind {other}"),
        }
    };
}

mod atomic_wait;
mod cache;
mod condvar;
mod file_lock;
mod fuzz_worker;
mod growth;
mod liveness;
mod named;
mod objects;
mod observer;
mod rwlock;
mod segment;
mod semaphore;
mod seqlock;
mod sharing;
mod watcher;

use std::io::{Read, Write};

use shmkit_runtime::segment::DeviceBacking;
use shmkit_runtime::ManagedSegment;

/// A shared read-write segment on device `D` (the roles run by `on_device!`).
type Seg<D> = ManagedSegment<DeviceBacking<D>>;

fn main() {
    let role = std::env::args()
        .nth(1)
        .expect("usage: shmkit-test-child ROLE");
    match role.as_str() {
        "segment-verify" => segment::verify(),
        "segment-race" => segment::race(),
        "segment-hold-lock" => segment::hold_lock(),
        "segment-churn" => segment::churn(),
        "segment-claim-and-stall" => segment::claim_and_stall(),
        "objects-verify" => objects::run(|s| s.verify_and_reply()),
        "objects-race" => objects::run(|s| s.race()),
        "objects-hold-index-lock" => objects::run(|s| s.hold_index_lock()),
        "objects-die-while-constructing" => objects::run(|s| s.die_while_constructing()),
        "objects-find-while-constructed" => objects::run(|s| s.find_while_constructed()),
        "observer-churn" => observer::churn(),
        "cache-and-wait" => cache::cache_and_wait(),
        "file-lock-hold" => file_lock::hold(),
        "condvar-wait" => condvar::wait(),
        "fuzz" => fuzz_worker::run(),
        "growth-read" => growth::read(),
        "growth-fill-until-full" => growth::fill_until_the_device_is_full(),
        "growth-grow-forever" => growth::grow_forever(),
        "liveness-hold" => liveness::hold(),
        "liveness-pid-namespace" => liveness::in_pid_namespace(),
        "liveness-ns-init" => liveness::ns_init(),
        "sharing-hold" => sharing::hold(),
        "sharing-resize" => sharing::resize(),
        "sharing-open-when-shared" => sharing::open_when_shared(),
        "watch-write" => watcher::write(),
        "semaphore-wait" => semaphore::wait(),
        "semaphore-pong" => semaphore::pong(),
        "seqlock-write" => seqlock::write(),
        "seqlock-write-big" => seqlock::write_big(),
        "seqlock-stall-in-update" => seqlock::stall_in_update(),
        "atomic-wait-answer" => atomic_wait::answer(),
        "named-mutex-hold" => named::hold(),
        "named-count" => named::count(),
        "rwlock-hold" => rwlock::hold(),
        other => panic!("unknown role {other}"),
    }
}

/// An environment variable the role needs; panics with its name if absent.
fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("the child needs ${var}"))
}

/// Tells the parent something: one line on stdout, flushed at once.
fn tell_parent(msg: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{msg}").expect("write to the parent");
    out.flush().expect("flush to the parent");
}

/// Blocks until the parent writes a byte to our stdin (a start signal).
fn wait_for_parent() {
    let mut byte = [0u8; 1];
    std::io::stdin()
        .lock()
        .read_exact(&mut byte)
        .expect("start signal");
}
