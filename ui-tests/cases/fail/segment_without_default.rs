use shmkit::shm_segment;

#[shm_segment]
struct Db {
    hits: u64,
}

fn main() {}
