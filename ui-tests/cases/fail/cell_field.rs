use shmkit::ShmSafe;
use std::cell::Cell;

#[derive(ShmSafe)]
#[repr(C)]
struct Counter {
    hits: Cell<u64>,
}

fn main() {}
