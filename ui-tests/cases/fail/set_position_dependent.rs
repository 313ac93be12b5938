use shmkit::{OffsetPtr, ShmMut, ShmSafe};

#[derive(ShmSafe)]
#[repr(C)]
struct Node {
    value: u64,
    next: OffsetPtr<Node>,
}

fn overwrite(mut n: ShmMut<'_, Node>, other: Node) {
    n.set(other);
}

fn main() {}
