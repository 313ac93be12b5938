use shmkit::ShmSafe;

#[derive(ShmSafe)]
#[repr(C)]
struct Log {
    entries: Vec<u64>,
}

fn main() {}
