use shmkit::ShmSafe;

// Spelled bare, `Vec` is taken for the segment `Vec` imported with `use`; std's (no such
// `use` here) is then refused by the field's `ShmSafe` bound.
#[derive(ShmSafe)]
#[repr(C)]
struct Log {
    entries: Vec<u64>,
}

fn main() {}
