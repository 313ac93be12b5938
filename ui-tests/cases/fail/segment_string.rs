use shmkit::shm_segment;

#[shm_segment]
#[derive(Default)]
struct Db {
    title: String,
}

fn main() {}
