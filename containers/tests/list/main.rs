//! The segment `List`: against std's `LinkedList` (seeded random operation sequences,
//! cursor edits included), nested lists, allocation failure, dropping, interrupted
//! operations, bytes from elsewhere, and (not under Miri, which maps no shared memory and
//! starts no process) shared memory and a child process.

#![allow(missing_docs)]

mod boost;
mod crash;
mod failure;
mod interrupted;
mod model;
mod nested;
mod owned;
#[cfg(not(miri))]
mod shared;
mod validate;
