use shmkit::ShmSafe;

#[derive(ShmSafe)]
#[repr(C)]
struct Counter {
    hits: std::sync::Mutex<u64>,
}

fn main() {}
