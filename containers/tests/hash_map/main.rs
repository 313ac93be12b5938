//! The segment `HashMap` and `HashSet`: against std's (seeded random operation sequences),
//! nested containers, allocation failure, dropping, colliding and ill-behaved keys, bytes
//! from elsewhere, and (not under Miri, which maps no shared memory and starts no process)
//! shared memory, threads and a child process.

#![allow(missing_docs)]

mod collisions;
mod failure;
mod model;
mod nested;
mod set;
#[cfg(not(miri))]
mod shared;
mod validate;
