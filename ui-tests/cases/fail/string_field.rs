use shmkit::ShmSafe;

#[derive(ShmSafe)]
#[repr(C)]
struct User {
    id: u32,
    name: String,
}

fn main() {}
