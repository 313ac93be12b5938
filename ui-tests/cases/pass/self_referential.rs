use shmkit::{shm_segment, OffsetPtr, ShmMut, ShmSafe};

// `Self` in a field type means the type itself, also in the generated accessors.
#[derive(ShmSafe)]
#[repr(C)]
pub struct Node<T> {
    pub value: T,
    pub next: OffsetPtr<Self>,
    pub pair: [OffsetPtr<Self>; 2],
}

#[derive(ShmSafe)]
#[repr(u8)]
pub enum Tree {
    Leaf(u32),
    Branch { left: OffsetPtr<Self>, right: OffsetPtr<Self> },
}

#[shm_segment]
#[derive(Default)]
pub struct Db {
    pub head: *mut Self,
    pub count: u32,
}

fn relink(mut a: ShmMut<'_, Node<u8>>, b: &Node<u8>) -> shmkit::Result<()> {
    a.next_mut().set_target(b)?;
    *a.value_mut() = 1;
    Ok(())
}

fn main() {
    let _ = relink;
    let _ = (Tree::Leaf(1), Db::default().count);
    let _ = Tree::Branch { left: OffsetPtr::null(), right: OffsetPtr::null() };
}
