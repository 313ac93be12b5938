use shmkit::ShmSafe;

#[derive(ShmSafe)]
#[repr(C)]
struct Guarded {
    value: u64,
}

impl Drop for Guarded {
    fn drop(&mut self) {}
}

fn main() {}
