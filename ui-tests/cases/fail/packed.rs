use shmkit::ShmSafe;

#[derive(ShmSafe)]
#[repr(C, packed)]
struct Header {
    tag: u8,
    len: u64,
}

fn main() {}
