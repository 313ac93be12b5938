//! Steps at which a process may die inside a container's mutating operation, for the
//! crash sweeps of the tests (`tests/*/crash.rs`): with the `crash-points` feature (which
//! the crate's own tests turn on) each `point` may stop the operation there, as a
//! SIGKILL would, and `crashing` tells the guards that would clean up on the way out
//! that nothing runs in a killed process. Without it both compile to nothing (the runtime's no-op versions).
//!
//! The hooks are the runtime's (`shmkit_runtime::__private::crash`), counted apart from
//! its own points: a sweep stops in the container's steps, never inside the allocator.

pub(crate) use shmkit_runtime::__private::crash::{crashing, point};
