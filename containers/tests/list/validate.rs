//! Bytes from elsewhere: a list found in a mapping that did not write it is checked first
//! (every link inside the segment and apart from the others, no cycle, hints that match
//! the links unless an interrupted operation said they are not used, valid elements), and
//! read at the new address when it is fine.

use shmkit_containers::{List, ListExt, Vec};
use shmkit_runtime::{AlignedBuffer, Error, ManagedExternalBuffer, ManagedHeapMemory};
use shmkit_test_support as support;

/// Where the fields of a list header and of a node are (the layout in the module docs).
const TAIL: usize = 8;
const LEN: usize = 16;
const BUSY: usize = 24;
const NEXT: usize = 8;
const PREV: usize = 16;
const VALUE: usize = 24;

/// A heap segment holding "l" (`List<u64>` [1, 2, 3, 4]), "rows" (two `Vec<u64>` rows)
/// and "flags" (`List<bool>` [true, false]).
fn segment() -> ManagedHeapMemory {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("l", List::<u64>::new()).unwrap();
    seg.construct("rows", List::<Vec<u64>>::new()).unwrap();
    seg.construct("flags", List::<bool>::new()).unwrap();
    seg.find_mut::<List<u64>>("l")
        .unwrap()
        .unwrap()
        .extend([1, 2, 3, 4])
        .unwrap();
    seg.find_mut::<List<Vec<u64>>>("rows")
        .unwrap()
        .unwrap()
        .extend([0..2, 0..3])
        .unwrap();
    seg.find_mut::<List<bool>>("flags")
        .unwrap()
        .unwrap()
        .extend([true, false])
        .unwrap();
    seg
}

/// The offsets in `seg` of the header of "l" and of its nodes.
fn offsets(seg: &ManagedHeapMemory) -> (usize, std::vec::Vec<usize>) {
    let base = seg.base_address().as_ptr() as usize;
    let l = seg.find::<List<u64>>("l").unwrap().unwrap();
    let header = l as *const List<u64> as usize - base;
    let nodes = l
        .iter()
        .map(|v| v as *const u64 as usize - VALUE - base)
        .collect();
    (header, nodes)
}

/// The bytes of an offset that aims a link at `from` to `to` (both segment offsets).
fn link(from: usize, to: usize) -> [u8; 8] {
    (to as isize - from as isize).to_ne_bytes()
}

/// A read-only copy of `seg` after `edits` (offset, bytes).
fn copy_with(mut seg: ManagedHeapMemory, edits: &[(usize, &[u8])]) -> AlignedBuffer {
    for (at, bytes) in edits {
        support::corrupt(&mut seg, *at, bytes);
    }
    AlignedBuffer::from_image(seg.image())
}

/// The `InvalidValue` a copy of the segment reports for "l" after `edits`, made knowing
/// the header's and the nodes' offsets.
fn refused(
    edits: impl FnOnce(usize, &[usize]) -> std::vec::Vec<(usize, std::vec::Vec<u8>)>,
) -> (String, &'static str) {
    let seg = segment();
    let (header, nodes) = offsets(&seg);
    let edits = edits(header, &nodes);
    let edits: std::vec::Vec<(usize, &[u8])> = edits.iter().map(|(at, b)| (*at, &b[..])).collect();
    let image = copy_with(seg, &edits);
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    match reader.find::<List<u64>>("l") {
        Err(Error::InvalidValue {
            field, expected, ..
        }) => (field, expected),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_copy_of_the_segment_reads_its_lists_at_the_new_address() {
    let image = copy_with(segment(), &[]);
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    let l = reader.find::<List<u64>>("l").unwrap().unwrap();
    assert_eq!(*l, [1, 2, 3, 4]);
    assert!(l.iter().rev().eq(&[4, 3, 2, 1]));
    let rows = reader.find::<List<Vec<u64>>>("rows").unwrap().unwrap();
    assert_eq!(format!("{:?}", *rows), "[[0, 1], [0, 1, 2]]");
    assert_eq!(
        *reader.find::<List<bool>>("flags").unwrap().unwrap(),
        [true, false]
    );
}

#[test]
fn links_out_of_the_segment_are_refused() {
    let (field, expected) = refused(|h, _| vec![(h, (1isize << 40).to_ne_bytes().to_vec())]);
    assert_eq!(field, "head");
    assert!(
        expected.contains("inside the pointer's own segment"),
        "{expected}"
    );
    let (field, _) = refused(|_, n| vec![(n[1] + NEXT, (-(1isize << 40)).to_ne_bytes().to_vec())]);
    assert_eq!(field, "[1].next");
    // Misaligned for a node (offset 9: the tag bits of a node pointer are 1 and 2).
    let (field, _) = refused(|_, n| vec![(n[0] + NEXT, 9isize.to_ne_bytes().to_vec())]);
    assert_eq!(field, "[0].next");
}

#[test]
fn a_node_inside_the_header_is_refused() {
    let (field, expected) = refused(|h, _| vec![(h, link(h, h + TAIL).to_vec())]);
    assert_eq!(field, "head");
    assert!(
        expected.contains("apart from the list's header"),
        "{expected}"
    );
}

/// A cycle is refused rather than walked forever: with trusted hints (its `prev` links
/// disagree) and without (an interrupted operation: only the cycle search finds it).
#[test]
fn a_cycle_is_refused() {
    let (field, _) = refused(|_, n| vec![(n[3] + NEXT, link(n[3] + NEXT, n[1]).to_vec())]);
    assert_eq!(field, "[4].prev");
    // (A node's `next` aimed at itself is offset 0, which reads as null: no cycle.)
    for to in [0, 2] {
        let (field, expected) = refused(|h, n| {
            vec![
                (n[3] + NEXT, link(n[3] + NEXT, n[to]).to_vec()),
                (h + BUSY, 1u64.to_ne_bytes().to_vec()),
            ]
        });
        assert!(expected.contains("no cycle"), "{field}: {expected}");
    }
}

/// Nodes that overlap (here a node 8 bytes into the first one, whose `next` there is the
/// first node's null `prev`) are refused.
#[test]
fn overlapping_nodes_are_refused() {
    let (_, expected) = refused(|h, n| {
        vec![
            (n[1] + NEXT, link(n[1] + NEXT, n[0] + 8).to_vec()),
            (h + BUSY, 1u64.to_ne_bytes().to_vec()),
        ]
    });
    assert!(expected.contains("apart from one another"), "{expected}");
}

/// Hints that disagree with the links are refused unless the list says an operation was
/// interrupted.
#[test]
fn hints_that_disagree_are_refused() {
    let (field, expected) = refused(|h, _| vec![(h + LEN, 10u64.to_ne_bytes().to_vec())]);
    assert_eq!(field, "tail");
    assert!(expected.contains("length that match"), "{expected}");
    let (field, _) = refused(|h, n| vec![(h + TAIL, link(h + TAIL, n[1]).to_vec())]);
    assert_eq!(field, "tail");
    let (field, expected) = refused(|_, n| vec![(n[2] + PREV, 1isize.to_ne_bytes().to_vec())]);
    assert_eq!(field, "[2].prev");
    assert!(expected.contains("node before"), "{expected}");
}

/// A list whose writer died in an operation: its hints are garbage (a tail out of the
/// segment, a wrong length, a `prev` link to nowhere), which is fine since they are not
/// used; it reads right along its links.
#[test]
fn an_interrupted_list_reads_along_its_links() {
    let seg = segment();
    let (h, n) = offsets(&seg);
    let image = copy_with(
        seg,
        &[
            (h + BUSY, &1u64.to_ne_bytes()),
            (h + TAIL, &(1isize << 40).to_ne_bytes()),
            (h + LEN, &1000u64.to_ne_bytes()),
            (n[2] + PREV, &(-(1isize << 40)).to_ne_bytes()),
        ],
    );
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    let l = reader.find::<List<u64>>("l").unwrap().unwrap();
    assert_eq!((l.len(), l.front(), l.back()), (4, Some(&1), Some(&4)));
    assert!(l.iter().rev().eq(&[4, 3, 2, 1]));
    let mut both_ends = l.iter();
    assert_eq!(
        (
            both_ends.next_back(),
            both_ends.next(),
            both_ends.next_back(),
            both_ends.len()
        ),
        (Some(&4), Some(&1), Some(&3), 1)
    );
    assert_eq!(*l, [1, 2, 3, 4]);
}

#[test]
fn an_invalid_element_is_refused_by_its_index() {
    let mut seg = segment();
    let base = seg.base_address().as_ptr() as usize;
    let second = {
        let flags = seg.find::<List<bool>>("flags").unwrap().unwrap();
        flags.iter().nth(1).unwrap() as *const bool as usize - base
    };
    support::corrupt(&mut seg, second, &[2]);
    let image = AlignedBuffer::from_image(seg.image());
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    match reader.find::<List<bool>>("flags") {
        Err(Error::InvalidValue {
            field, expected, ..
        }) => {
            assert_eq!(field, "[1]");
            assert!(expected.contains("bool"), "{expected}");
        }
        other => panic!("{other:?}"),
    }
}

/// All-zero bytes are an empty list, also from elsewhere.
#[test]
fn zeroed_bytes_are_an_empty_list() {
    let seg = segment();
    let (h, _) = offsets(&seg);
    let image = copy_with(seg, &[(h, &[0; 32])]);
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    let l = reader.find::<List<u64>>("l").unwrap().unwrap();
    assert!(l.is_empty() && l.iter().len() == 0 && l.iter().next().is_none() && l.back().is_none());
}
