use shmkit::ShmSafe;

// Not caught by name: the trait check (check 2) refuses it, with ShmSafe's own message.
#[repr(C)]
struct NotShared {
    value: u64,
}

#[derive(ShmSafe)]
#[repr(C)]
struct Holder {
    id: u32,
    inner: NotShared,
    when: std::time::Instant,
}

fn main() {}
