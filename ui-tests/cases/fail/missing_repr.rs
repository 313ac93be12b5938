use shmkit::{ManagedHeapMemory, ShmSafe};

// One error, about the repr: the type still counts as ShmSafe for its uses, so they add
// none saying to derive what it derives.
#[derive(ShmSafe)]
struct Point {
    x: u32,
    y: u32,
}

#[derive(ShmSafe)]
#[repr(C)]
struct Line {
    from: Point,
    to: Point,
}

fn main() {
    let segment = ManagedHeapMemory::new(1 << 16).unwrap();
    let _ = segment.construct("p", Point { x: 1, y: 2 });
}
