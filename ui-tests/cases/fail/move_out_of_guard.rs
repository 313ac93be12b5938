use shmkit::{OffsetPtr, ShmMut, ShmSafe};

#[derive(ShmSafe)]
#[repr(C)]
struct Node {
    value: u64,
    next: OffsetPtr<Node>,
}

fn steal(n: ShmMut<'_, Node>) -> Node {
    // A by-value move out of the segment would leave `next` aiming from the wrong place.
    *n
}

fn main() {}
