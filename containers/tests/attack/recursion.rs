//! Containers of a recursive type (`Node { kids: Vec<Node> }`): a forged cycle in a
//! read-only mapping (which checks only bounds) must be refused, not validated forever.

use shmkit_containers::{Vec, VecExt};
use shmkit_macros::ShmSafe;
use shmkit_runtime::{AlignedBuffer, ManagedExternalBuffer, ManagedHeapMemory};
use shmkit_test_support as support;

#[derive(ShmSafe)]
#[shm(crate = "crate::shm")]
#[repr(C)]
pub struct Node {
    pub v: u64,
    pub kids: Vec<Node>,
}

/// Offset of `Node::kids` and of `Vec`'s fields.
const KIDS: usize = 8;

fn off(seg: &ManagedHeapMemory, p: *const u8) -> usize {
    p as usize - seg.base_address().as_ptr() as usize
}

/// "n" = Node { v: 1, kids: [Node { v: 2, kids: [] }] }; returns the segment and the
/// offset of the outer kids' elements (where the inner node lies).
fn segment() -> (ManagedHeapMemory, usize) {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct(
        "n",
        Node {
            v: 1,
            kids: Vec::new(),
        },
    )
    .unwrap();
    {
        let mut n = seg.find_mut::<Node>("n").unwrap().unwrap();
        n.kids_mut()
            .push(Node {
                v: 2,
                kids: Vec::new(),
            })
            .unwrap();
    }
    let n = seg.find::<Node>("n").unwrap().unwrap();
    let elements = off(&seg, n.kids.as_ptr().cast());
    (seg, elements)
}

/// "n" with the inner node's `kids` aimed at the outer buffer (the inner node itself).
fn forged_cycle() -> ManagedHeapMemory {
    let (mut seg, elements) = segment();
    let inner_kids = elements + KIDS;
    let mut bytes = [0u8; 24];
    bytes[..8].copy_from_slice(&(elements as isize - inner_kids as isize).to_ne_bytes());
    bytes[8..16].copy_from_slice(&1u64.to_ne_bytes());
    bytes[16..].copy_from_slice(&1u64.to_ne_bytes());
    support::corrupt(&mut seg, inner_kids, &bytes);
    seg
}

/// The inner node's `kids` aimed at the outer buffer (the inner node itself): a cycle of
/// one block. A read-only opener validates "n" and must refuse it, not recurse until the
/// stack overflows.
#[test]
fn a_vec_of_its_own_type_forged_into_a_cycle_is_refused_read_only() {
    let mut seg = forged_cycle();
    let image = AlignedBuffer::from_image(seg.image());
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    assert!(reader.find::<Node>("n").is_err(), "a cycle must be refused");
}

/// The same forgery in a writable copy: the tags refuse it (the buffer names the outer
/// vector, not the inner one).
#[test]
fn a_vec_of_its_own_type_forged_into_a_cycle_is_refused_writable() {
    let mut seg = forged_cycle();
    let copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    assert!(copy.find::<Node>("n").is_err(), "a cycle must be refused");
}

/// A writable copy, tags and all consistent (each buffer names the one vector that points
/// at it, as a trusted writer nesting 20,000 levels deep would leave them): opening it
/// validates "chain" one level at a time, going on on a helper stack where the caller's
/// ends (as a `Box` chain does), instead of overflowing the stack (as it did before).
#[test]
fn a_deep_chain_of_vecs_of_its_own_type_is_validated_without_overflowing_the_stack() {
    const N: usize = 20_000;
    const MARK: u64 = 0x5EA1 << 48;
    const LOW: u64 = (1 << 48) - 1;
    let mut seg = ManagedHeapMemory::new(8 << 20).unwrap();
    seg.construct("chain", Vec::<Node>::new()).unwrap();
    {
        let mut outer = seg.find_mut::<Vec<Node>>("chain").unwrap().unwrap();
        outer.reserve(N).unwrap();
        for i in 0..N {
            outer
                .push(Node {
                    v: i as u64,
                    kids: Vec::new(),
                })
                .unwrap();
            outer
                .element_mut(i)
                .unwrap()
                .kids_mut()
                .push(Node {
                    v: 0,
                    kids: Vec::new(),
                })
                .unwrap();
        }
    }
    // Offsets: outer element i's kids header, and the elements of its buffer (M_i).
    let (kids, bufs): (std::vec::Vec<usize>, std::vec::Vec<usize>) = {
        let outer = seg.find::<Vec<Node>>("chain").unwrap().unwrap();
        outer
            .iter()
            .map(|n| {
                (
                    off(&seg, (&raw const n.kids).cast()),
                    off(&seg, n.kids.as_ptr().cast()),
                )
            })
            .unzip()
    };
    let cap = seg.find::<Vec<Node>>("chain").unwrap().unwrap()[1]
        .kids
        .capacity() as u64;
    for i in 0..N - 1 {
        // M_i.kids -> buffer i+1, which names M_i.kids as its owner.
        let from = bufs[i] + KIDS;
        let to = bufs[i + 1];
        let mut h = [0u8; 24];
        h[..8].copy_from_slice(&(to as isize - from as isize).to_ne_bytes());
        h[8..16].copy_from_slice(&1u64.to_ne_bytes());
        h[16..].copy_from_slice(&cap.to_ne_bytes());
        support::corrupt(&mut seg, from, &h);
        let block = to - 8;
        let tag = MARK | ((from as u64).wrapping_sub(block as u64) & LOW);
        support::corrupt(&mut seg, block, &tag.to_ne_bytes());
        // Outer element i+1 no longer owns its buffer: empty.
        support::corrupt(&mut seg, kids[i + 1], &[0u8; 24]);
    }
    let copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    // Either answer is sound; a stack overflow (abort) is not.
    let _ = copy.find::<Vec<Node>>("chain");
}
