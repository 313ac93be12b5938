use std::sync::atomic::{AtomicU64, Ordering};

use shmkit::{shm_segment, ManagedExternalBuffer, OffsetPtr, ReadOnly, ShmSafe};

#[derive(ShmSafe)]
#[repr(C)]
struct Stats {
    hits: AtomicU64,
}

// The atomic is only behind a pointer: the root itself holds plain data.
#[shm_segment]
#[derive(Default)]
struct Db {
    id: u64,
    stats: OffsetPtr<Stats>,
}

fn bump(segment: &ManagedExternalBuffer<'_, ReadOnly>) {
    segment.find::<AtomicU64>("hits").unwrap().unwrap().fetch_add(1, Ordering::Relaxed);
    let _ = segment.find_slice::<Stats>("all");
    let _ = segment.root::<Db>();
}

fn main() {}
