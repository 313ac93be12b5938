//! shmkit's `RwLock` is a field like any other, spelled bare after a `use` or by path, and
//! a root holding one is read, upgraded and written through the segment.
use shmkit::sync::{RwLock, RwLockUpgradableReadGuard};
use shmkit::{shm_segment, ManagedHeapMemory, ShmSafe};

#[derive(ShmSafe, Default)]
#[repr(C)]
struct Limits {
    soft: RwLock<u64>,
    hard: shmkit::sync::RwLock<[u32; 4]>,
}

#[shm_segment]
#[derive(Default)]
struct Config {
    limits: Limits,
    version: RwLock<u64>,
}

fn main() {
    let seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    let config = seg.root::<Config>().unwrap();
    *config.limits.soft.write().unwrap() = 10;
    config.limits.hard.write().unwrap()[2] = 7;
    let version = config.version.upgradable_read().unwrap();
    *RwLockUpgradableReadGuard::upgrade(version).unwrap() += 1;
    assert_eq!(*config.limits.soft.read().unwrap(), 10);
    assert_eq!(config.limits.hard.read().unwrap()[2], 7);
    assert_eq!(*config.version.read().unwrap(), 1);
}
