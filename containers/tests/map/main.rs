//! The segment `Map` and `Set`: against std's `BTreeMap` and `BTreeSet` (seeded random
//! operation sequences), nested containers, allocation failure, dropping, bytes from
//! elsewhere, and (not under Miri, which maps no shared memory and starts no process)
//! shared memory behind a lock and a child process.

#![allow(missing_docs)]

mod crash;
mod failure;
mod model;
mod nested;
mod owned;
mod set;
#[cfg(not(miri))]
mod shared;
mod validate;
