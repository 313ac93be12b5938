//! The atomics of every lock algorithm, imported from here, not std, so that a model
//! checker can stand in for them. Under `--cfg loom` they are loom's (see `super::model`), and the
//! constructors that cannot be `const` with loom's atomics are made by [`const_unless_loom`].

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::fence;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, Ordering};

/// Declares a `const fn`, or under `--cfg loom` a plain `fn` (loom's atomics are made at run
/// time): for the constructors of lock types.
macro_rules! const_unless_loom {
    ($(#[$attr:meta])* $vis:vis fn $($rest:tt)*) => {
        #[cfg(not(loom))]
        $(#[$attr])* $vis const fn $($rest)*
        #[cfg(loom)]
        $(#[$attr])* $vis fn $($rest)*
    };
}
pub(crate) use const_unless_loom;

/// Nothing, natively: where an algorithm orders a store to one word before a load of
/// another by making both `SeqCst` (a Dekker pairing: of two threads that each store then
/// load, one sees the other's store), the accesses order themselves. The model checker
/// treats `SeqCst` accesses as `AcqRel` (loom's README, "Unsupported features") and would
/// report such a pairing broken, so under `--cfg loom` a `SeqCst` fence between the two
/// accesses of each side (which loom models) gives the order they give natively.
#[inline(always)]
pub(crate) fn seqcst_under_the_model() {
    #[cfg(loom)]
    fence(Ordering::SeqCst);
}
