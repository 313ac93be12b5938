use shmkit::{ManagedHeapMemory, OffsetPtr, ShmMut, ShmSafe};

#[derive(ShmSafe)]
#[repr(C)]
pub struct Node {
    pub value: u64,
    pub next: OffsetPtr<Node>,
    pub links: [OffsetPtr<u64>; 2],
}

fn relink(
    mut node: ShmMut<'_, Node>,
    target: &Node,
    mut other: ShmMut<'_, Node>,
) -> shmkit::Result<()> {
    // Plain fields: `&mut`. Pointers: only in-place operations, each target checked.
    *node.value_mut() += 1;
    node.next_mut().set_target(target)?;
    node.next_mut().swap_targets(&mut other.next_mut())?;
    let mut links = node.links_mut().into_slice();
    links.index(0).unwrap().set_from(&target.links[1])?;
    Ok(())
}

fn node(value: u64) -> Node {
    Node {
        value,
        next: OffsetPtr::null(),
        links: [OffsetPtr::null(), OffsetPtr::null()],
    }
}

fn main() {
    // Pointers aim into the segment they live in: the nodes are built in one.
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("nodes", [node(1), node(2), node(3)]).unwrap();
    let target_addr = {
        let mut nodes = seg.find_mut::<[Node; 3]>("nodes").unwrap().unwrap();
        let mut nodes = nodes.as_mut().into_slice();
        let mut it = nodes.iter_mut();
        let (a, b, target) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        relink(a, &target, b).unwrap();
        &*target as *const Node
    };
    let nodes = seg.find::<[Node; 3]>("nodes").unwrap().unwrap();
    assert_eq!(nodes[0].value, 2);
    assert!(nodes[0].next.is_null());
    assert_eq!(nodes[1].next.get() as *const Node, target_addr);
}
