//! The steps a crash sweep stops an operation at (`crashes_at(n, ..)` for each `n`).

/// How many steps apart a sweep stops an operation: every step natively; under Miri,
/// which runs each stop some ten thousand times slower than native code (a whole sweep
/// there would take hours), every eighth.
pub const STRIDE: u32 = if cfg!(miri) { 8 } else { 1 };

/// The steps to stop operation number `salt` of a sweep at, each until one that the
/// operation runs past (the caller breaks there): every [`STRIDE`]-th, starting at a step
/// that differs with `salt`, so that under Miri the sweeps of different operations (or
/// seeds) together still stop at every residue.
#[allow(clippy::modulo_one, reason = "the stride is 1 outside Miri")]
pub fn steps(salt: u32) -> impl Iterator<Item = u32> {
    (salt % STRIDE..).step_by(STRIDE as usize)
}
