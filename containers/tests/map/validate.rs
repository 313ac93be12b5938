//! Bytes from elsewhere: a map found in a mapping that did not write it is checked first
//! (every node pointer inside the segment and aligned, each node reached once and apart
//! from the others, levels stepping down by one, counts in range, the length, the
//! elements), and read at the new address when it is fine.
//!
//! The forgeries below write into the nodes of a `Map<u64, _>`, whose layout is: the
//! owner's tag at 0, `len: u16` at 8, `level: u16` at 10, 11 keys from 16, 11 values after
//! them, and in an internal node 12 edges (offsets relative to themselves) after the
//! values; the header is the root's offset, then the length.

use shmkit_containers::{Map, MapExt};
use shmkit_runtime::{AlignedBuffer, Error, ManagedExternalBuffer, ManagedHeapMemory};
use shmkit_test_support as support;

/// Elements of "m": enough for a root two levels above the leaves.
const N: u64 = 400;
/// Where the edges of an internal node of a `Map<u64, u64>` start.
const EDGES: usize = KEYS + 2 * 11 * 8;
/// Where the values of a `Map<u64, bool>` node start.
const FLAGS: usize = KEYS + 11 * 8;
/// Where a node's count, its level and its keys are.
const LEN: usize = 8;
const LEVEL: usize = 10;
const KEYS: usize = 16;

/// A heap segment holding "m" (`Map<u64, u64>`, `k -> 2k` for `k < N`) and "flags"
/// (`Map<u64, bool>`, `k -> k is even` for `k < 8`), and the offsets of the two headers.
fn segment() -> (ManagedHeapMemory, usize, usize) {
    let mut seg = ManagedHeapMemory::new(1 << 18).unwrap();
    let base = seg.base_address().as_ptr() as usize;
    let m = seg.construct("m", Map::<u64, u64>::new()).unwrap() as *const _ as usize - base;
    let flags =
        seg.construct("flags", Map::<u64, bool>::new()).unwrap() as *const _ as usize - base;
    seg.find_mut::<Map<u64, u64>>("m")
        .unwrap()
        .unwrap()
        .extend((0..N).map(|k| (k, 2 * k)))
        .unwrap();
    seg.find_mut::<Map<u64, bool>>("flags")
        .unwrap()
        .unwrap()
        .extend((0..8).map(|k| (k, k % 2 == 0)))
        .unwrap();
    (seg, m, flags)
}

/// The offset stored in the pointer at `at`.
fn offset_at(seg: &ManagedHeapMemory, at: usize) -> isize {
    assert!(at + 8 <= seg.size());
    // SAFETY: an aligned word inside the segment, which `seg` keeps mapped; nothing
    // writes it meanwhile.
    unsafe { seg.base_address().as_ptr().add(at).cast::<isize>().read() }
}

/// Where the pointer at `at` leads (an offset in the segment).
fn target(seg: &ManagedHeapMemory, at: usize) -> usize {
    at.wrapping_add_signed(offset_at(seg, at))
}

/// A read-only copy of `seg` at another address.
fn copy(seg: &mut ManagedHeapMemory) -> AlignedBuffer {
    AlignedBuffer::from_image(seg.image())
}

/// The `InvalidValue` a copy of `segment()` reports for `name` (a `Map<u64, T>`) after
/// `forge` wrote into it (given the segment and the two header offsets).
fn refused<T: shmkit_runtime::ShmImmutable>(
    name: &str,
    forge: impl FnOnce(&mut ManagedHeapMemory, usize, usize),
) -> (String, &'static str) {
    let (mut seg, m, flags) = segment();
    forge(&mut seg, m, flags);
    let image = copy(&mut seg);
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    match reader.find::<Map<u64, T>>(name) {
        Err(Error::InvalidValue {
            field, expected, ..
        }) => (field, expected),
        Err(other) => panic!("{name}: {other:?}"),
        Ok(_) => panic!("{name}: accepted"),
    }
}

#[test]
fn a_copy_of_the_segment_reads_its_maps_at_the_new_address() {
    let (mut seg, m, _) = segment();
    assert_ne!(target(&seg, m), m, "not a node");
    let image = copy(&mut seg);
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    let map = reader.find::<Map<u64, u64>>("m").unwrap().unwrap();
    assert!(map
        .iter()
        .map(|(k, v)| (*k, *v))
        .eq((0..N).map(|k| (k, 2 * k))));
    assert_eq!((map.get(&7), map.range(10..13).count()), (Some(&14), 3));
    let flags = reader.find::<Map<u64, bool>>("flags").unwrap().unwrap();
    assert_eq!(flags.values().filter(|f| **f).count(), 4);
}

#[test]
fn a_root_outside_the_segment_or_misaligned_is_refused() {
    let (field, expected) = refused::<u64>("m", |seg, m, _| {
        support::corrupt(seg, m, &(1isize << 40).to_ne_bytes())
    });
    assert_eq!(field, "root");
    assert!(
        expected.contains("inside the map's own segment"),
        "{expected}"
    );
    // An odd offset: bit 0 set, so not null, and the target off by one byte.
    let (field, _) = refused::<u64>("m", |seg, m, _| {
        let odd = offset_at(seg, m) + 1;
        support::corrupt(seg, m, &odd.to_ne_bytes())
    });
    assert_eq!(field, "root");
}

#[test]
fn counts_and_levels_out_of_range_are_refused() {
    let (field, expected) = refused::<u64>("m", |seg, m, _| {
        let root = target(seg, m);
        support::corrupt(seg, root + LEVEL, &21u16.to_ne_bytes())
    });
    assert_eq!(field, "root");
    assert!(expected.contains("at most 20 levels"), "{expected}");
    let (field, expected) = refused::<u64>("m", |seg, m, _| {
        let root = target(seg, m);
        support::corrupt(seg, root + LEN, &12u16.to_ne_bytes())
    });
    assert_eq!(field, "root");
    assert!(expected.contains("at most 11 keys"), "{expected}");
    // A child that claims the root's own level.
    let (field, expected) = refused::<u64>("m", |seg, m, _| {
        let child = target(seg, target(seg, m) + EDGES);
        let level = 2u16; // the root's, asserted below
        support::corrupt(seg, child + LEVEL, &level.to_ne_bytes())
    });
    assert_eq!(field, "root.edges[0]");
    assert!(
        expected.contains("one level below its parent"),
        "{expected}"
    );
}

/// No cycle can be written: an edge back to the root claims the wrong level, and two
/// edges to one node are one node reached twice.
#[test]
fn cycles_and_shared_nodes_are_refused() {
    let (field, expected) = refused::<u64>("m", |seg, m, _| {
        let root = target(seg, m);
        let back = root as isize - (root + EDGES) as isize;
        support::corrupt(seg, root + EDGES, &back.to_ne_bytes())
    });
    assert_eq!(field, "root.edges[0]");
    assert!(
        expected.contains("one level below its parent"),
        "{expected}"
    );
    let (field, expected) = refused::<u64>("m", |seg, m, _| {
        let edge = target(seg, m) + EDGES;
        let same = offset_at(seg, edge) - 8;
        support::corrupt(seg, edge + 8, &same.to_ne_bytes())
    });
    assert_eq!(field, "root.edges[1]");
    assert!(expected.contains("each appear once"), "{expected}");
    // A root aimed into the map's own header (offset 0 would be all-zero bytes: empty).
    let (field, expected) = refused::<u64>("m", |seg, m, _| {
        support::corrupt(seg, m, &8isize.to_ne_bytes())
    });
    assert_eq!(field, "root");
    assert!(expected.contains("overlap"), "{expected}");
}

#[test]
fn the_root_is_two_levels_up() {
    let (seg, m, _) = segment();
    let root = target(&seg, m);
    // SAFETY: the root node's level, an aligned `u16` inside the segment.
    let level = unsafe {
        seg.base_address()
            .as_ptr()
            .add(root + LEVEL)
            .cast::<u16>()
            .read()
    };
    assert_eq!(level, 2, "the forgeries above assume it");
}

/// A length below the elements counted is refused; one above is what a crash can leave
/// (raised before an element is published), harmless, and accepted.
#[test]
fn a_length_below_the_elements_is_refused_one_above_accepted() {
    let (field, expected) = refused::<u64>("m", |seg, m, _| {
        support::corrupt(seg, m + 8, &5u64.to_ne_bytes())
    });
    assert_eq!(field, "len");
    assert!(expected.contains("at least the elements"), "{expected}");
    let (mut seg, m, _) = segment();
    support::corrupt(&mut seg, m + 8, &(N + 3).to_ne_bytes());
    let image = copy(&mut seg);
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    let map = reader.find::<Map<u64, u64>>("m").unwrap().unwrap();
    assert_eq!(
        (map.len(), map.iter().count(), map.keys().rev().count()),
        (N as usize + 3, N as usize, N as usize)
    );
}

#[test]
fn an_invalid_value_is_refused_by_its_place() {
    let (field, expected) = refused::<bool>("flags", |seg, _, flags| {
        let root = target(seg, flags);
        support::corrupt(seg, root + FLAGS + 3, &[2])
    });
    assert_eq!(field, "root.vals[3]");
    assert!(expected.contains("bool"), "{expected}");
}

/// Keys out of order are wrong but harmless: the map is accepted, iterates every element
/// as stored, and lookups may miss.
#[test]
fn keys_out_of_order_are_harmless() {
    let (mut seg, _, flags) = segment();
    let root = target(&seg, flags);
    support::corrupt(&mut seg, root + KEYS, &7u64.to_ne_bytes());
    support::corrupt(&mut seg, root + KEYS + 7 * 8, &0u64.to_ne_bytes());
    let image = copy(&mut seg);
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    let map = reader.find::<Map<u64, bool>>("flags").unwrap().unwrap();
    assert_eq!(
        map.keys().copied().collect::<Vec<_>>(),
        [7, 1, 2, 3, 4, 5, 6, 0]
    );
    assert!(map.range(2..5).count() <= 8 && map.range(..).rev().count() == 8);
    let found = (0..8).filter(|k| map.contains_key(k)).count();
    assert!(found < 8, "{found}");
}

/// All-zero bytes are an empty map, also from elsewhere.
#[test]
fn zeroed_bytes_are_an_empty_map() {
    let (mut seg, m, _) = segment();
    support::corrupt(&mut seg, m, &[0; 16]);
    let image = copy(&mut seg);
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    let map = reader.find::<Map<u64, u64>>("m").unwrap().unwrap();
    assert!(map.is_empty() && map.iter().next().is_none() && map.get(&1).is_none());
}
