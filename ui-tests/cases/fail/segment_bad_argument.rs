use shmkit::shm_segment;

#[shm_segment(nam = "db")]
#[derive(Default)]
struct Db {
    hits: u64,
}

fn main() {}
