//! Segments and objects shared between real processes: the other processes are the
//! helper binary `shmkit-test-child` (`tests/bin/child/`), one subcommand per role.

mod atomic_wait;
mod condvar;
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
mod watch;

use shmkit_test_support::{spawn_child, ChildProc, Target};

/// Starts the helper binary playing `role` on the device segment of `t`, with `extra`
/// variables (the objects and sharing tests; the segment tests pass their own).
fn child<T: Target>(t: &T, role: &str, extra: &[(&str, String)]) -> ChildProc {
    let mut envs = vec![
        ("SHMKIT_KIND", T::KIND.to_owned()),
        ("SHMKIT_NAME", t.name_string()),
    ];
    envs.extend(extra.iter().cloned());
    spawn_child(env!("CARGO_BIN_EXE_shmkit-test-child"), role, &envs)
}
