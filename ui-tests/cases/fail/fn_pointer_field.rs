use shmkit::ShmSafe;

#[derive(ShmSafe)]
#[repr(C)]
struct Handler {
    id: u32,
    callback: fn(u32) -> u32,
}

fn main() {}
