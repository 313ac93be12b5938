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
