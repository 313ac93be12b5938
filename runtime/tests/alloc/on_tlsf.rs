//! The allocation behaviours on TLSF, the default.

pub(crate) type Algo = shmkit_runtime::algorithm::Tlsf;

#[path = "behaviour.rs"]
mod behaviour;
