use shmkit::{OffsetPtr, ShmMut, ShmSafe};

#[derive(ShmSafe)]
#[repr(C)]
pub struct Node {
    pub value: u64,
    pub next: OffsetPtr<Node>,
    pub links: [OffsetPtr<u64>; 2],
}

fn relink(mut node: ShmMut<'_, Node>, target: &Node, mut other: ShmMut<'_, Node>) {
    // Plain fields: `&mut`. Pointers: only in-place operations.
    *node.value_mut() += 1;
    node.next_mut().set_target(target);
    node.next_mut().swap_targets(&mut other.next_mut());
    let mut links = node.links_mut().into_slice();
    links.index(0).unwrap().set_from(&target.links[1]);
}

fn main() {
    let target = Node {
        value: 1,
        next: OffsetPtr::null(),
        links: [OffsetPtr::null(), OffsetPtr::null()],
    };
    let mut a = Node {
        value: 1,
        next: OffsetPtr::null(),
        links: [OffsetPtr::null(), OffsetPtr::null()],
    };
    let mut b = Node {
        value: 2,
        next: OffsetPtr::null(),
        links: [OffsetPtr::null(), OffsetPtr::null()],
    };
    // SAFETY: the nodes stay where they are while the guards live.
    let (ga, gb) = unsafe { (ShmMut::new(&mut a), ShmMut::new(&mut b)) };
    relink(ga, &target, gb);
    assert_eq!(a.value, 2);
    assert!(a.next.is_null());
    assert_eq!(b.next.get() as *const Node, &target as *const Node);
}
