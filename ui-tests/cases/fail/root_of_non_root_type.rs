use shmkit::{ManagedHeapMemory, ShmSafe};

#[derive(ShmSafe, Default)]
#[repr(C)]
struct Point {
    x: u32,
    y: u32,
}

fn main() {
    let segment = ManagedHeapMemory::new(1 << 16).unwrap();
    let _ = segment.root::<Point>();
}
