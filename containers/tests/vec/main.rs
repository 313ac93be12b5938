//! The segment `Vec`: against std's `Vec` (seeded random operation sequences), nested
//! vectors, allocation failure, dropping, bytes from elsewhere, and (not under Miri, which
//! maps no shared memory and starts no process) shared memory, threads and a child process.

#![allow(missing_docs)]

mod crash;
mod drain;
mod failure;
mod model;
mod nested;
mod owned;
#[cfg(not(miri))]
mod shared;
mod validate;
