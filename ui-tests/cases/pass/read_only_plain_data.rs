//! A read-only mapping lends plain data, also a linked list that points at its own type, and
//! a generic type over plain data.

use shmkit::{ManagedExternalBuffer, OffsetPtr, ReadOnly, ShmSafe};

#[derive(ShmSafe)]
#[repr(C)]
struct Node {
    value: u64,
    next: OffsetPtr<Node>,
}

#[derive(ShmSafe)]
#[repr(C)]
struct Tree<T> {
    value: T,
    children: [OffsetPtr<Tree<T>>; 2],
    by_self: OffsetPtr<Self>,
}

#[derive(ShmSafe)]
#[repr(u8)]
enum Shape {
    Dot,
    Line(OffsetPtr<Shape>, u32),
}

fn read(segment: &ManagedExternalBuffer<'_, ReadOnly>) {
    let _ = segment.find::<Node>("head");
    let _ = segment.find::<Tree<(u8, char)>>("tree");
    let _ = segment.find_slice::<Shape>("shapes");
    let _ = segment.find::<OffsetPtr<[bool; 3]>>("flags");
}

fn main() {
    let _ = read;
}
