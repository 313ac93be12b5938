use shmkit::ShmSafe;

#[derive(ShmSafe)]
#[shm(crate = "my shm")]
#[repr(C)]
struct NotAPath {
    x: u32,
}

#[derive(ShmSafe)]
#[shm(krate = "shmkit")]
#[repr(C)]
struct UnknownOption {
    x: u32,
}

#[derive(ShmSafe)]
#[shm(crate = shmkit)]
#[repr(C)]
struct NotAString {
    x: u32,
}

#[derive(ShmSafe)]
#[repr(C)]
struct OnAField {
    #[shm(crate = "shmkit")]
    x: u32,
}

fn main() {}
