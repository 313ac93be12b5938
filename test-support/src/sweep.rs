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

/// Finds object `name` as a `T` in a writable copy of `seg`'s image, as a process that
/// maps the segment afresh after a crash would, and returns what its validation says of
/// what the stopped operation left (each block owned through its one pointer). The copy's
/// values are copies, which nothing drops.
pub fn revalidate<T: shmkit_runtime::ShmSafe>(
    seg: &mut shmkit_runtime::ManagedHeapMemory,
    name: &str,
) -> shmkit_runtime::Result<()> {
    let copy = shmkit_runtime::ManagedHeapMemory::from_image(seg.image())?;
    match copy.find::<T>(name)? {
        Some(_) => Ok(()),
        None => panic!("{name} is gone from the image"),
    }
}
