//! shmkit's own locks are fields like any other, spelled bare after a `use` or by path, and
//! a root holding one is found and locked through a shared mapping.
use shmkit::sync::Mutex;
use shmkit::{shm_segment, ManagedHeapMemory, ShmSafe};

#[derive(ShmSafe, Default)]
#[repr(C)]
struct Stats {
    hits: Mutex<u64>,
    misses: shmkit::sync::Mutex<[u32; 4]>,
}

#[shm_segment]
#[derive(Default)]
struct Db {
    stats: Stats,
    total: Mutex<u64>,
}

fn main() {
    let seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    let db = seg.root::<Db>().unwrap();
    *db.stats.hits.lock().unwrap() += 1;
    db.stats.misses.lock().unwrap()[2] = 7;
    *db.total.lock().unwrap() += 2;
    assert_eq!(*db.stats.hits.lock().unwrap(), 1);
}
