use shmkit::{OffsetPtr, ShmMut, ShmSafe};

#[derive(ShmSafe)]
#[repr(C)]
struct Node {
    value: u64,
    next: OffsetPtr<Node>,
}

fn take_link(mut n: ShmMut<'_, Node>) -> OffsetPtr<Node> {
    std::mem::replace(&mut *n.next_mut(), OffsetPtr::null())
}

fn main() {}
