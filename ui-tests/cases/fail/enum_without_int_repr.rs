use shmkit::ShmSafe;

#[derive(ShmSafe)]
#[repr(C)]
enum State {
    Idle,
    Busy(u32),
}

fn main() {}
