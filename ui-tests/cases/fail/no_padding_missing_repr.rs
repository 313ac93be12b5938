use shmkit::{NoPadding, ShmSafe};

#[derive(ShmSafe, NoPadding)]
struct Point {
    x: u32,
    y: u32,
}

fn main() {}
