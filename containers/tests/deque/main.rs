//! The segment `Deque`: against std's `VecDeque` (seeded random operation sequences whose
//! rings wrap), nested deques, allocation failure, dropping, bytes from elsewhere, and (not
//! under Miri, which maps no shared memory and starts no process) shared memory and a
//! child process.

#![allow(missing_docs)]

mod crash;
mod failure;
mod model;
mod nested;
mod owned;
#[cfg(not(miri))]
mod shared;
mod validate;
