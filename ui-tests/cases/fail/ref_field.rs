use shmkit::ShmSafe;

#[derive(ShmSafe)]
#[repr(C)]
struct Config {
    id: u32,
    name: &'static str,
}

fn main() {}
