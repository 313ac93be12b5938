use shmkit::ShmSafe;

#[derive(ShmSafe)]
#[repr(C)]
struct Handler {
    id: u32,
    value: impl Copy,
}

fn main() {}
