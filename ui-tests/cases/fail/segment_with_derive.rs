use shmkit::{shm_segment, ShmSafe};

#[shm_segment]
#[derive(Default, ShmSafe)]
struct Db {
    hits: u64,
}

fn main() {}
