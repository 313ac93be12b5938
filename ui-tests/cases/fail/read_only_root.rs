use shmkit::{shm_segment, ManagedMappedFile, ReadOnly};

#[shm_segment]
#[derive(Default)]
struct Db {
    hits: u64,
}

fn bump(segment: &mut ManagedMappedFile<ReadOnly>) {
    *segment.root_mut::<Db>().unwrap().hits_mut() += 1;
}

fn main() {}
