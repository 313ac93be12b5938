//! Offset pointers inside a real segment mapped at two addresses at once: a list built
//! through one mapping is walked through the other, and the pointer operations (null,
//! arithmetic, comparison, tags) give the same answers in both.

use shmkit_runtime::{ManagedSharedMemory, OffsetPtr};

#[repr(C)]
struct Node {
    value: u64,
    next: OffsetPtr<Node>,
}

/// Removes the segment even when the test fails.
struct Remove(String);
impl Drop for Remove {
    fn drop(&mut self) {
        let _ = ManagedSharedMemory::remove(&self.0);
    }
}

#[test]
fn a_list_built_in_one_mapping_is_walked_in_another() {
    let name = format!("shmkit_t_ptrseg_{}", std::process::id());
    let _remove = Remove(name.clone());
    let a = ManagedSharedMemory::create(&name, 1 << 20).unwrap();
    let b = ManagedSharedMemory::open(&name).unwrap();
    assert_ne!(a.base_address(), b.base_address());

    // An array of nodes in mapping A, each pointing at the next; the last one is null.
    let n = 16;
    let nodes = a
        .allocate_aligned(n * size_of::<Node>(), align_of::<Node>())
        .unwrap()
        .cast::<Node>()
        .as_ptr();
    for i in 0..n {
        // SAFETY: `nodes` has room for `n` nodes; each OffsetPtr is set where it lives.
        unsafe {
            nodes.add(i).write(Node {
                value: i as u64 * 10,
                next: OffsetPtr::null(),
            });
            if i + 1 < n {
                (*nodes.add(i)).next.set(nodes.add(i + 1));
            }
        }
    }
    let handle = a.handle_from_address(nodes.cast()).unwrap();

    // Walk it through mapping B: every pointer lands inside B.
    let mut cur = b
        .address_from_handle(handle)
        .unwrap()
        .cast::<Node>()
        .as_ptr()
        .cast_const();
    let mut seen = Vec::new();
    while !cur.is_null() {
        assert!(b.contains(cur.cast()), "{cur:p} is not inside mapping B");
        // SAFETY: `cur` points at a node written above, through the other mapping.
        let node = unsafe { &*cur };
        seen.push(node.value);
        cur = node.next.get();
    }
    assert_eq!(seen, (0..n as u64).map(|i| i * 10).collect::<Vec<_>>());

    // Pointer operations agree between the two mappings.
    let in_b = b
        .address_from_handle(handle)
        .unwrap()
        .cast::<Node>()
        .as_ptr();
    // SAFETY: both point at node 0 of the same segment, seen through A and through B.
    let (first_a, first_b) = unsafe { (&*nodes, &*in_b) };
    // SAFETY: nodes 1 and 2 exist; reading their `next` fields.
    let (second_a, third_a) = unsafe { (&(*nodes.add(1)).next, &(*nodes.add(2)).next) };
    assert_eq!(
        first_a.next.offset(),
        first_b.next.offset(),
        "self-relative: same bytes"
    );
    assert!(second_a > &first_a.next, "ordered by target address");
    assert_eq!(
        third_a.offset_from(&first_a.next),
        2,
        "distance in elements"
    );
    // SAFETY: node 15's `next` is the null end of the list.
    assert!(unsafe { (*in_b.add(n - 1)).next.is_null() });

    // A write through B's pointer is visible through A.
    // SAFETY: node 1 seen through B; no other reference to it is live.
    unsafe { (*first_b.next.get()).value = 999 };
    // SAFETY: node 1 seen through A.
    assert_eq!(unsafe { (*nodes.add(1)).value }, 999);
}
