use shmkit::ShmSafe;

#[derive(ShmSafe)]
struct Point {
    x: u32,
    y: u32,
}

fn main() {}
