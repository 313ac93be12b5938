use shmkit::ShmSafe;

// Spelled with its std path, std's `Vec` is refused by name.
#[derive(ShmSafe)]
#[repr(C)]
struct Log {
    lines: std::vec::Vec<u64>,
}

fn main() {}
