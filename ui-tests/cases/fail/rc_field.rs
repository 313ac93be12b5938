use shmkit::ShmSafe;
use std::rc::Rc;

#[derive(ShmSafe)]
#[repr(C)]
struct Shared {
    value: Rc<u64>,
}

fn main() {}
