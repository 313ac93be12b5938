//! The atomics every lock algorithm uses, imported from one place so that a model checker
//! can stand in for them.

pub(crate) use std::sync::atomic::fence;
pub(crate) use std::sync::atomic::{AtomicU32, Ordering};
