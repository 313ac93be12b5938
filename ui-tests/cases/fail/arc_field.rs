use shmkit::ShmSafe;

#[derive(ShmSafe)]
#[repr(C)]
struct Shared {
    value: std::sync::Arc<u64>,
}

fn main() {}
