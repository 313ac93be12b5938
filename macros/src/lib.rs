//! Procedural macros of shmkit: `derive(ShmSafe)` and `#[shm_segment]` (see the
//! compile-time safety issue). Empty until the runtime traits they target exist.
