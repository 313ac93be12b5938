//! The allocation behaviours on TLSF, the default.

pub(crate) type Algo = shmkit_runtime::algorithm::Tlsf;

// The same tests once per algorithm, by design.
#[allow(clippy::duplicate_mod)]
#[path = "behaviour.rs"]
mod behaviour;
