use shmkit::ShmSafe;

#[derive(ShmSafe)]
#[repr(C)]
struct Node {
    value: u64,
    next: *mut Node,
}

fn main() {}
