use shmkit::ShmSafe;

#[derive(ShmSafe)]
#[repr(C)]
struct Tree {
    value: u64,
    left: Box<Tree>,
}

fn main() {}
