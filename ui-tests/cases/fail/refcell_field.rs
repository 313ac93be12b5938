use shmkit::ShmSafe;

#[derive(ShmSafe)]
#[repr(C)]
struct Counter {
    hits: core::cell::RefCell<u64>,
}

fn main() {}
