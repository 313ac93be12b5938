use shmkit::{NoPadding, ShmSafe};

// 1 + 4 bytes of fields in 8: three bytes of padding after `tag`.
#[derive(ShmSafe, NoPadding)]
#[repr(C)]
struct Header {
    tag: u8,
    len: u32,
}

// No gap between the fields, but `align(8)` pads the end.
#[derive(ShmSafe, NoPadding)]
#[repr(C, align(8))]
struct Tail {
    a: u32,
}

fn main() {}
