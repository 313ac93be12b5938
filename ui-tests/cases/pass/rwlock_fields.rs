//! shmkit's `RwLock` is a field like any other, spelled bare after a `use` or by path; a
//! root holding one is read, upgraded and written through the segment, and a write guard
//! gives in-place access (the segment `Vec`'s methods, the derive's accessors) as a
//! `ShmMut` does.
use shmkit::prelude::*;
use shmkit::sync::{RwLock, RwLockUpgradableReadGuard};
use shmkit::{shm_segment, ManagedHeapMemory, ShmSafe};

#[derive(ShmSafe, Default)]
#[repr(C)]
struct Limits {
    soft: RwLock<u64>,
    hard: shmkit::sync::RwLock<[u32; 4]>,
}

#[derive(ShmSafe, Default)]
#[repr(C)]
struct Order {
    id: u64,
    lines: shmkit::containers::Vec<u32>,
}

#[shm_segment]
#[derive(Default)]
struct Config {
    limits: Limits,
    version: RwLock<u64>,
    log: RwLock<Vec<u64>>,
    current: RwLock<Order>,
}

fn record(config: &Config, entry: u64) -> shmkit::Result<()> {
    config.log.write()?.push(entry)?;
    config.current.write()?.lines_mut().push(entry as u32)?;
    Ok(())
}

fn main() -> shmkit::Result<()> {
    let seg = ManagedHeapMemory::new(64 * 1024)?;
    let config = seg.root::<Config>()?;
    *config.limits.soft.write()? = 10;
    config.limits.hard.write()?[2] = 7;
    let version = config.version.upgradable_read()?;
    *RwLockUpgradableReadGuard::upgrade(version)? += 1;
    record(config, 5)?;
    assert_eq!(*config.limits.soft.read()?, 10);
    assert_eq!(config.limits.hard.read()?[2], 7);
    assert_eq!(*config.version.read()?, 1);
    assert_eq!(*config.log.read()?, [5]);
    assert_eq!(config.current.read()?.lines, [5]);
    Ok(())
}
