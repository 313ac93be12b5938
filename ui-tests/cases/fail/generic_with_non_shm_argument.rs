use shmkit::ShmSafe;

#[derive(ShmSafe)]
#[repr(C)]
struct Slot<T> {
    used: bool,
    value: T,
}

fn store<T: ShmSafe>() {}

fn main() {
    store::<Slot<u64>>();
    store::<Slot<std::time::Instant>>();
}
