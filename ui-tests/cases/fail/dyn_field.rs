use shmkit::ShmSafe;

#[derive(ShmSafe)]
#[repr(C)]
struct Handler {
    id: u32,
    callback: dyn std::fmt::Debug,
}

fn main() {}
