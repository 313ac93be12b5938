//! Helpers shared by the tests of the runtime, the facade and the containers: unique
//! names, guards that remove what a test created (shared memory objects, files, XSI
//! segments, temporary directories) even when the test panics, child processes with
//! timeouts, a small deterministic random generator, and byte helpers.
//!
//! # Child processes
//!
//! A multi-process test spawns a *helper binary* that plays the other process, never its
//! own test binary: `shmkit-runtime` has the `[[bin]] shmkit-test-child`
//! (`runtime/tests/bin/child/`) with one subcommand per role, the facade has
//! `shmkit-schema-child` (`tests/bin/`). A binary of the tested package is the only kind
//! Cargo builds for `cargo test --test NAME` and names to the test
//! (`env!("CARGO_BIN_EXE_<name>")`), so the tests say
//! `spawn_child(env!("CARGO_BIN_EXE_shmkit-test-child"), "role", &envs)` and
//! [`ChildProc`] talks to the child over its stdin and stdout.
//!
//! A binary cannot use its package's dev-dependencies, and this crate depends on the
//! runtime, so the runtime's child binary cannot depend on this crate. It compiles the
//! leaf modules it shares with the parents instead ([`bytes`], [`blocks`], [`rng`],
//! [`internals`], [`names`], [`guards`], [`fuzz`], [`watch`]: they use only `std`,
//! `shmkit_runtime` and each other through `crate::`), mounting them by `#[path]` at its
//! crate root as this crate does.
//!
//! # Runtime internals
//!
//! Everything that reads the runtime's private layout is in [`internals`], so that one
//! module follows when those internals move.

pub mod blocks;
pub mod bytes;
pub mod churn;
pub mod devices;
pub mod fuzz;
pub mod guards;
pub mod internals;
pub mod names;
pub mod process;
pub mod region;
pub mod rng;
pub mod sweep;
pub mod sys;
pub mod tracked;
pub mod watch;

pub use blocks::{decode_blocks, encode_blocks, get, put, Block};
pub use bytes::{pattern, read_u32, write_u32};
pub use devices::{shm_path, FileTarget, Seg, SegIn, ShmTarget, Target};
pub use guards::{xsi_key, ShmGuard, TempDir, TempPath, XsiIdGuard, XsiKeyGuard};
pub use internals::{corrupt, creator, image_bytes, lock_owner, offsets, owner_id};
pub use names::unique_name;
pub use process::{spawn_child, within, ChildProc, Silence};
pub use rng::Rng;
pub use sys::{dead_pid, map_perms, mode_of, mode_of_fd, patch_file};
pub use tracked::Tracked;
