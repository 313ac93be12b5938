use shmkit::shm_segment;

#[shm_segment]
#[repr(u8)]
enum Db {
    Empty,
}

fn main() {}
