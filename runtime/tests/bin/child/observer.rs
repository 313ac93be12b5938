//! The child of the observer churn test (`multiprocess/observer.rs`): a writer of the
//! segment `SHMKIT_NAME` that churns its index (`test-support/src/churn.rs`) for
//! `SHMKIT_COUNT` objects while the parent observes.

use shmkit_runtime::ManagedSharedMemory;

use crate::{churn, env, tell_parent};

/// Says "churning", churns, and exits.
pub fn churn() {
    let seg = ManagedSharedMemory::open(env("SHMKIT_NAME")).unwrap();
    let n = env("SHMKIT_COUNT").parse().expect("a count");
    tell_parent("churning");
    churn::churn(&seg, n);
}
