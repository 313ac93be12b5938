use shmkit::NoPadding;

// `NoPadding` requires `ShmSafe`: derive both.
#[derive(NoPadding)]
#[repr(C)]
struct Point {
    x: u32,
    y: u32,
}

fn main() {}
