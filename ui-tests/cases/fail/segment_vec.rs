use shmkit::shm_segment;

#[shm_segment]
#[derive(Default)]
struct Db {
    users: Vec<u64>,
}

fn main() {}
