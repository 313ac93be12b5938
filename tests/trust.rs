//! Bytes from outside (issue 8) as far as types decide: a read-only mapping lends no
//! interior mutability, values are validity-checked before the first reference to them,
//! and fingerprints tell apart the types that safe code relies on. Heap images and external
//! buffers only, so that Miri runs these too (`.ci/miri`).

#![allow(missing_docs)]

use shmkit::{AlignedBuffer, ManagedExternalBuffer, ManagedHeapMemory, OffsetPtr, ShmSafe};

#[derive(ShmSafe)]
#[repr(C)]
pub struct Node {
    pub value: u64,
    pub next: OffsetPtr<Node>,
}

/// A read-only mapping still lends plain data, a list that points at its own type included
/// (`Node: ShmImmutable` although deciding it meets `OffsetPtr<Node>`).
#[test]
fn a_read_only_mapping_lends_plain_data_and_lists() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    let tail = seg
        .construct(
            "tail",
            Node {
                value: 2,
                next: OffsetPtr::null(),
            },
        )
        .unwrap() as *const Node;
    seg.construct(
        "head",
        Node {
            value: 1,
            next: OffsetPtr::null(),
        },
    )
    .unwrap();
    seg.find_mut::<Node>("head")
        .unwrap()
        .unwrap()
        .next_mut()
        .set_target(tail);
    seg.construct_array("flags", 3, true).unwrap();

    let image = AlignedBuffer::from_image(seg.image());
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    let head = reader.find::<Node>("head").unwrap().unwrap();
    // SAFETY: the pointer aims at the live `tail` object of this mapping.
    let next = unsafe { head.next.as_ref() }.unwrap();
    assert_eq!((head.value, next.value), (1, 2));
    assert_eq!(reader.find_slice::<bool>("flags").unwrap().unwrap(), &[true; 3]);
}
