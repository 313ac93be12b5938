use shmkit::{OffsetPtr, ShmMut, ShmSafe};

#[derive(ShmSafe)]
#[repr(C)]
struct Node {
    value: u64,
    next: OffsetPtr<Node>,
}

fn swap_links(mut a: ShmMut<'_, Node>, mut b: ShmMut<'_, Node>) {
    // Swapping two self-relative pointers would aim both at the wrong data.
    std::mem::swap(&mut *a.next_mut(), &mut *b.next_mut());
}

fn main() {}
