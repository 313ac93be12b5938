//! One owner per node, also in forged bytes: a list found in a writable mapping that did
//! not write it is lent only if each node is a block of its own whose tag names the link
//! that owns it (a forged file could otherwise give two lists one node, link a node of one
//! list into another, or make an object's block or the middle of a node a node: two
//! `&mut` to the same bytes, or a double free).

use shmkit_containers::{List, ListExt, Vec, VecExt};
use shmkit_runtime::__private::crash::crashes_at;
use shmkit_runtime::{Error, ManagedHeapMemory, ShmMut, ShmSafe};
use shmkit_test_support::{self as support, sweep};

/// Where the fields of a list header and of a node are (the layouts in the module docs).
const TAIL: usize = 8;
const LEN: usize = 16;
const BUSY: usize = 24;
const NEXT: usize = 8;
const VALUE: usize = 24;

/// A heap segment holding "a" and "b" (`List<u64>`, [1, 2, 3] and [7, 8]) and "n" (a
/// named `[u64; 4]`, a node's worth of bytes).
fn segment() -> ManagedHeapMemory {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    for (name, items) in [("a", &[1u64, 2, 3][..]), ("b", &[7, 8])] {
        seg.construct(name, List::<u64>::new()).unwrap();
        let mut list = seg.find_mut::<List<u64>>(name).unwrap().unwrap();
        list.extend(items.iter().copied()).unwrap();
    }
    seg.construct("n", [0u64; 4]).unwrap();
    seg
}

fn offset_of<T: ?Sized>(seg: &ManagedHeapMemory, p: *const T) -> usize {
    p.cast::<u8>() as usize - seg.base_address().as_ptr() as usize
}

/// The offsets of the header of list `name` and of its nodes.
fn offsets(seg: &ManagedHeapMemory, name: &str) -> (usize, std::vec::Vec<usize>) {
    let list = seg.find::<List<u64>>(name).unwrap().unwrap();
    let nodes = list.iter().map(|v| offset_of(seg, v) - VALUE).collect();
    (offset_of(seg, list), nodes)
}

/// Aims the link at `at` at `to` (segment offsets).
fn link(seg: &mut ManagedHeapMemory, at: usize, to: usize) {
    support::corrupt(seg, at, &(to as isize - at as isize).to_ne_bytes());
}

/// Makes the list at `header` claim the chain from `first` to `last`, of `len` nodes
/// (`busy` set: its hints are not checked).
fn claim(seg: &mut ManagedHeapMemory, header: usize, first: usize, last: usize, len: u64) {
    link(seg, header, first);
    link(seg, header + TAIL, last);
    support::corrupt(seg, header + LEN, &len.to_ne_bytes());
    support::corrupt(seg, header + BUSY, &1u64.to_ne_bytes());
}

/// The tag a node at `block` has when the owner at `owner` owns it (segment offsets).
fn tag(block: usize, owner: usize) -> [u8; 8] {
    (0x5EA1u64 << 48 | ((owner as u64).wrapping_sub(block as u64) & ((1 << 48) - 1))).to_ne_bytes()
}

/// What a writable copy of `seg` says when `name` is looked up as `T`.
fn lookup<T: ShmSafe>(seg: &mut ManagedHeapMemory, name: &str) -> Result<(), Error> {
    let copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    copy.find::<T>(name).map(|found| assert!(found.is_some()))
}

fn refused(result: Result<(), Error>) -> String {
    match result {
        Err(Error::InvalidValue {
            field, expected, ..
        }) => format!("{field}: {expected}"),
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn two_lists_never_share_a_node() {
    for busy in [false, true] {
        let mut seg = segment();
        let (_, a) = offsets(&seg, "a");
        let (b, _) = offsets(&seg, "b");
        claim(&mut seg, b, a[0], a[2], 3);
        if !busy {
            support::corrupt(&mut seg, b + BUSY, &0u64.to_ne_bytes());
        }
        let why = refused(lookup::<List<u64>>(&mut seg, "b"));
        assert!(
            why.starts_with("head") && why.contains("one owner"),
            "{why}"
        );
        // The genuine owner is still lent.
        lookup::<List<u64>>(&mut seg, "a").unwrap();
    }
}

/// A node of one list linked into another, after a node of its own: refused, also while
/// `busy` lets a tag name the owner before its own (the other list's node is owned by a
/// node of the other list, which neither is).
#[test]
fn a_node_of_one_list_cannot_be_linked_into_another() {
    let mut seg = segment();
    let (_, a) = offsets(&seg, "a");
    let (b, bn) = offsets(&seg, "b");
    link(&mut seg, bn[0] + NEXT, a[1]);
    claim(&mut seg, b, bn[0], a[2], 3);
    let why = refused(lookup::<List<u64>>(&mut seg, "b"));
    assert!(
        why.starts_with("[0].next") && why.contains("one owner"),
        "{why}"
    );
    lookup::<List<u64>>(&mut seg, "a").unwrap();
}

#[test]
fn a_list_cannot_claim_an_objects_block_nor_the_middle_of_a_node() {
    for target in ["object", "middle"] {
        let mut seg = segment();
        let n = offset_of(&seg, seg.find::<[u64; 4]>("n").unwrap().unwrap());
        let (_, a) = offsets(&seg, "a");
        let (b, _) = offsets(&seg, "b");
        let at = if target == "object" { n } else { a[0] + 8 };
        // The tag a genuine first node would have, forged where the node would start.
        support::corrupt(&mut seg, at, &tag(at, b));
        claim(&mut seg, b, at, at, 1);
        let why = refused(lookup::<List<u64>>(&mut seg, "b"));
        assert!(
            why.starts_with("head") && why.contains("start of a block of its own"),
            "{target}: {why}"
        );
    }
}

#[test]
fn a_read_only_copy_only_reads_and_checks_bounds() {
    let mut seg = segment();
    let (_, a) = offsets(&seg, "a");
    let (b, _) = offsets(&seg, "b");
    claim(&mut seg, b, a[0], a[2], 3);
    let image = shmkit_runtime::AlignedBuffer::from_image(seg.image());
    let reader = shmkit_runtime::ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    // Two shared views of one chain are no aliasing: nothing can write through either.
    assert_eq!(*reader.find::<List<u64>>("b").unwrap().unwrap(), [1, 2, 3]);
    assert_eq!(*reader.find::<List<u64>>("a").unwrap().unwrap(), [1, 2, 3]);
}

/// A heap segment holding "rows", a `Vec<List<u64>>` of `n` lists `[0, 1, .., i]`.
fn rows(n: u64) -> ManagedHeapMemory {
    let mut seg = ManagedHeapMemory::new(1 << 14).unwrap();
    seg.construct("rows", Vec::<List<u64>>::new()).unwrap();
    let mut rows = seg.find_mut::<Vec<List<u64>>>("rows").unwrap().unwrap();
    for i in 0..n {
        rows.push(0..=i).unwrap();
    }
    seg
}

/// The lists of "rows" in a segment, as std's.
fn rows_of(seg: &ManagedHeapMemory) -> std::vec::Vec<std::vec::Vec<u64>> {
    let rows = seg.find::<Vec<List<u64>>>("rows").unwrap().unwrap();
    rows.iter().map(|l| l.iter().copied().collect()).collect()
}

#[test]
fn a_writable_copy_lends_genuine_lists_and_frees_them_all() {
    let mut seg = rows(3);
    let mut copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    {
        let mut rows = copy.find_mut::<Vec<List<u64>>>("rows").unwrap().unwrap();
        let mut first = rows.element_mut(0).unwrap();
        first.push_front(9).unwrap();
        first.push_back(10).unwrap();
        let mut last = rows.element_mut(2).unwrap();
        assert_eq!(last.pop_front(), Some(0));
        let mut cursor = last.cursor_front_mut();
        cursor.move_next();
        cursor.insert_before(5).unwrap();
        assert_eq!(cursor.remove_current(), Some(2));
        let mut lists = rows.iter_mut().skip(1);
        let (mut one, mut two) = (lists.next().unwrap(), lists.next().unwrap());
        one.append(&mut two).unwrap();
        // Growth moves the headers: each first node then names its list's new `head`.
        rows.reserve(100).unwrap();
    }
    let mut again = ManagedHeapMemory::from_image(copy.image()).unwrap();
    assert_eq!(rows_of(&again), [vec![9, 0, 10], vec![0, 1, 1, 5], vec![]]);
    assert!(again.destroy::<Vec<List<u64>>>("rows").unwrap());
    assert!(again.all_memory_deallocated());
}

/// A writer that died inside an operation can leave a tag that names the owner before
/// its own (module docs), at the front or further on; a move of the header meanwhile keeps
/// the list one that a writable copy lends, and the next operation repairs it.
#[test]
fn an_interrupted_list_moves_and_is_still_lent() {
    type Op = fn(&mut ShmMut<'_, List<u64>>);
    let ops: [(u32, Op); 4] = [
        (0, |l| l.push_front(9).unwrap()),
        (1, |l| {
            l.pop_front();
        }),
        (2, |l| l.cursor_front_mut().insert_after(9).unwrap()),
        (3, |l| {
            let mut cursor = l.cursor_front_mut();
            cursor.move_next();
            cursor.remove_current();
        }),
    ];
    for (salt, op) in ops {
        for n in sweep::steps(salt) {
            let mut seg = rows(3);
            let finished = {
                let mut rows = seg.find_mut::<Vec<List<u64>>>("rows").unwrap().unwrap();
                let mut list = rows.element_mut(2).unwrap();
                crashes_at(n, || op(&mut list))
            };
            seg.find_mut::<Vec<List<u64>>>("rows")
                .unwrap()
                .unwrap()
                .reserve(100)
                .unwrap();
            let mut copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
            copy.find::<Vec<List<u64>>>("rows")
                .unwrap_or_else(|e| panic!("stopped at step {n}: {e}"));
            let before = rows_of(&copy);
            copy.find_mut::<Vec<List<u64>>>("rows")
                .unwrap()
                .unwrap()
                .element_mut(2)
                .unwrap()
                .push_back(4)
                .unwrap();
            let after = rows_of(&ManagedHeapMemory::from_image(copy.image()).unwrap());
            assert_eq!(after[2][..], [&before[2][..], &[4]].concat()[..]);
            if finished.is_ok() {
                break;
            }
        }
    }
}
