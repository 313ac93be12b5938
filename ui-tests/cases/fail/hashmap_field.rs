use shmkit::ShmSafe;
use std::collections::HashMap;

#[derive(ShmSafe)]
#[repr(C)]
struct Index {
    by_id: HashMap<u32, u64>,
}

fn main() {}
