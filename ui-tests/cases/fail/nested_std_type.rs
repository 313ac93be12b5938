use shmkit::ShmSafe;

// The check looks inside arrays, tuples and generic arguments.
#[derive(ShmSafe)]
#[repr(C)]
struct Deep {
    slots: [Option<std::vec::Vec<u8>>; 4],
    pair: (u32, &'static u8),
}

fn main() {}
