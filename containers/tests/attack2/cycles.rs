//! A node type holding every container of itself: a forged cycle through each one (the
//! inner node's container header made a copy of the outer one's, so both reach the same
//! storage) must be refused, read-only (bounds checks only) and in a writable copy.

use shmkit_containers::{
    Box, BoxExt, Deque, DequeExt, HashMap, HashMapExt, List, ListExt, Map, MapExt, Vec, VecExt,
};
use shmkit_macros::ShmSafe;
use shmkit_runtime::{AlignedBuffer, ManagedExternalBuffer, ManagedHeapMemory};
use shmkit_test_support as support;

#[derive(ShmSafe)]
#[shm(crate = "crate::shm")]
#[repr(C)]
pub struct Node {
    pub v: u64,
    pub d: Deque<Node>,
    pub l: List<Node>,
    pub h: HashMap<u64, Node>,
    pub b: Box<Node>,
    pub m: Map<u64, Box<Node>>,
    pub k: Vec<Node>,
    pub vb: Vec<Box<Node>>,
}

pub fn node(v: u64) -> Node {
    Node {
        v,
        d: Deque::new(),
        l: List::new(),
        h: HashMap::new(),
        b: Box::new(),
        m: Map::new(),
        k: Vec::new(),
        vb: Vec::new(),
    }
}

pub fn off(seg: &ManagedHeapMemory, p: *const u8) -> usize {
    p as usize - seg.base_address().as_ptr() as usize
}

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Deque,
    List,
    HashMap,
    Box,
    Map,
    Vec,
    VecBox,
}

const ALL: [Kind; 7] = [
    Kind::Deque,
    Kind::List,
    Kind::HashMap,
    Kind::Box,
    Kind::Map,
    Kind::Vec,
    Kind::VecBox,
];

/// Field offset, header size, and offsets of the self-relative pointers in the header.
fn field(kind: Kind) -> (usize, usize, &'static [usize]) {
    use core::mem::{offset_of, size_of};
    match kind {
        Kind::Deque => (offset_of!(Node, d), size_of::<Deque<Node>>(), &[0]),
        Kind::List => (offset_of!(Node, l), size_of::<List<Node>>(), &[0, 8]),
        Kind::HashMap => (offset_of!(Node, h), size_of::<HashMap<u64, Node>>(), &[0]),
        Kind::Box => (offset_of!(Node, b), size_of::<Box<Node>>(), &[0]),
        Kind::Map => (offset_of!(Node, m), size_of::<Map<u64, Box<Node>>>(), &[0]),
        Kind::Vec => (offset_of!(Node, k), size_of::<Vec<Node>>(), &[0]),
        Kind::VecBox => (offset_of!(Node, vb), size_of::<Vec<Box<Node>>>(), &[0]),
    }
}

/// "n" = node 1 whose `kind` container holds node 2 (two levels for `Box`/`Arc`/`Vec`s
/// of them); returns the segment and the offset of node 2.
pub fn segment(kind: Kind) -> (ManagedHeapMemory, usize) {
    let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
    seg.construct("n", node(1)).unwrap();
    {
        let mut n = seg.find_mut::<Node>("n").unwrap().unwrap();
        match kind {
            Kind::Deque => n.d_mut().push_back(node(2)).unwrap(),
            Kind::List => n.l_mut().push_back(node(2)).unwrap(),
            Kind::HashMap => {
                n.h_mut().insert_with(2u64, node(2), |_| ()).unwrap();
            }
            Kind::Box => n.b_mut().insert(node(2)).unwrap(),
            Kind::Map => {
                n.m_mut().insert_with(2u64, Box::new(), |_| ()).unwrap();
                n.m_mut().value_mut(&2).unwrap().insert(node(2)).unwrap();
            }
            Kind::Vec => n.k_mut().push(node(2)).unwrap(),
            Kind::VecBox => {
                n.vb_mut().push(Box::new()).unwrap();
                n.vb_mut().element_mut(0).unwrap().insert(node(2)).unwrap();
            }
        }
    }
    let n = seg.find::<Node>("n").unwrap().unwrap();
    let inner: *const Node = match kind {
        Kind::Deque => n.d.front().unwrap(),
        Kind::List => n.l.front().unwrap(),
        Kind::HashMap => n.h.get(&2).unwrap(),
        Kind::Box => n.b.get().unwrap(),
        Kind::Map => n.m.get(&2).unwrap().get().unwrap(),
        Kind::Vec => &n.k[0],
        Kind::VecBox => n.vb[0].get().unwrap(),
    };
    let outer = off(&seg, (&raw const *n).cast());
    let inner = off(&seg, inner.cast());
    assert_ne!(outer, inner);
    (seg, inner)
}

/// Offset of "n".
pub fn outer(seg: &ManagedHeapMemory) -> usize {
    let n = seg.find::<Node>("n").unwrap().unwrap();
    off(seg, (&raw const *n).cast())
}

/// Makes node 2's `kind` container a copy of node 1's (its pointers adjusted to reach the
/// same storage): node 2 then contains itself.
pub fn forge_cycle(kind: Kind) -> ManagedHeapMemory {
    let (mut seg, inner) = segment(kind);
    let outer = outer(&seg);
    let (at, size, ptrs) = field(kind);
    let image = support::image_bytes(&mut seg);
    let mut header = image[outer + at..outer + at + size].to_vec();
    for &p in ptrs {
        let w = i64::from_ne_bytes(header[p..p + 8].try_into().unwrap());
        let w = w + outer as i64 - inner as i64;
        header[p..p + 8].copy_from_slice(&w.to_ne_bytes());
    }
    support::corrupt(&mut seg, inner + at, &header);
    seg
}

fn read_only(seg: &mut ManagedHeapMemory) -> bool {
    let image = AlignedBuffer::from_image(seg.image());
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    reader.find::<Node>("n").is_err()
}

fn writable(seg: &mut ManagedHeapMemory) -> bool {
    match ManagedHeapMemory::from_image(seg.image()) {
        Err(_) => true,
        Ok(copy) => copy.find::<Node>("n").is_err(),
    }
}

#[test]
fn the_unforged_segments_are_accepted() {
    for kind in ALL {
        let (mut seg, _) = segment(kind);
        assert!(!read_only(&mut seg), "{kind:?} read-only");
        assert!(!writable(&mut seg), "{kind:?} writable");
    }
}

#[test]
fn a_cycle_through_each_container_is_refused_read_only() {
    for kind in ALL {
        let mut seg = forge_cycle(kind);
        assert!(
            read_only(&mut seg),
            "{kind:?}: a cycle must be refused read-only"
        );
    }
}

#[test]
fn a_cycle_through_each_container_is_refused_writable() {
    for kind in ALL {
        let mut seg = forge_cycle(kind);
        assert!(
            writable(&mut seg),
            "{kind:?}: a cycle must be refused writable"
        );
    }
}
