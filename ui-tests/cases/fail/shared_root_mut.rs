use shmkit::{shm_segment, ManagedSharedMemory};

#[shm_segment]
#[derive(Default)]
struct Db {
    hits: u64,
}

fn bump(segment: &mut ManagedSharedMemory) {
    *segment.root_mut::<Db>().unwrap().hits_mut() += 1;
}

fn main() {}
