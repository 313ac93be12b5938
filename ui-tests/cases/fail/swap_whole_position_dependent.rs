use shmkit::{OffsetPtr, ShmMut, ShmSafe};

#[derive(ShmSafe)]
#[repr(C)]
struct Node {
    value: u64,
    next: OffsetPtr<Node>,
}

fn swap_nodes(a: ShmMut<'_, Node>, b: ShmMut<'_, Node>) {
    std::mem::swap(a.get_mut(), b.get_mut());
}

fn main() {}
