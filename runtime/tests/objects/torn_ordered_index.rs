//! A torn ordered index, forged deep below its root in an image (Miri runs this file):
//! the cold check and crash recovery follow each link only once it names an entry (a used
//! block of the chain holding a consistent entry, not met before), so a bad link is never
//! read through. The check refuses it; recovery drops the link and keeps the rest.

use shmkit_runtime::{
    AlignedBuffer, Error, ManagedExternalBuffer, ManagedHeapMemory, OrderedIndex,
};
use shmkit_test_support::internals::{corrupt, offsets, ORDERED_LINKS};

/// Padded elements: 7 bytes of each stay uninitialised after the store.
const PADDED: [(u8, u64); 2] = [(1, 10), (2, 20)];
const NAMES: usize = 32;

fn name(i: usize) -> String {
    format!("n{i:02}")
}

/// The word at `at` of `image`.
fn word(image: &AlignedBuffer, at: usize) -> u64 {
    // SAFETY: callers read header words and entry links, which shmkit wrote whole.
    u64::from_ne_bytes(std::array::from_fn(|i| unsafe {
        image[at + i].assume_init()
    }))
}

/// A private copy of `image`, to forge (`corrupt`) and copy out again.
fn heap_copy(image: &AlignedBuffer) -> ManagedHeapMemory<OrderedIndex> {
    ManagedHeapMemory::options()
        .index::<OrderedIndex>()
        .from_image(image)
        .unwrap()
}

/// The children of the entry at `e`.
fn children(image: &AlignedBuffer, e: u64) -> [u64; 2] {
    [0, 8].map(|side| word(image, e as usize + ORDERED_LINKS + side))
}

/// An ordered-index image holding `NAMES` numbers and the padded "p"; the offset of the
/// tree's root, of a leaf at least two levels below it, of the root's child on the other
/// side (not an ancestor of the leaf), and of "p"'s data.
struct Tree {
    image: AlignedBuffer,
    root: u64,
    leaf: u64,
    other: u64,
    padding: u64,
}

fn tree() -> Tree {
    let mut seg = ManagedHeapMemory::options()
        .index::<OrderedIndex>()
        .create(64 * 1024)
        .unwrap();
    for i in 0..NAMES {
        seg.construct(&*name(i), i as u64).unwrap();
    }
    let p = seg.construct_from_iter("p", PADDED).unwrap().as_ptr();
    let padding = (p.addr() - seg.base_address().as_ptr().addr()) as u64;
    let image = AlignedBuffer::from_image(seg.image());
    let root = word(&image, offsets::NAMED_ROOT);
    let [left, right] = children(&image, root);
    assert!(left != 0 && right != 0, "the root has two children");
    // Down the left side to a leaf.
    let (mut leaf, mut depth) = (left, 1);
    while let Some(&next) = children(&image, leaf).iter().find(|&&c| c != 0) {
        (leaf, depth) = (next, depth + 1);
    }
    assert!(depth >= 2, "a leaf two levels below the root");
    Tree {
        image,
        root,
        leaf,
        other: right,
        padding,
    }
}

/// Every object of the tree is found, and the index holds each once.
fn all_found(seg: &ManagedExternalBuffer<'_, shmkit_runtime::Exclusive, OrderedIndex>) {
    seg.check().unwrap();
    for i in 0..NAMES {
        assert_eq!(
            seg.find::<u64>(&name(i)).unwrap(),
            Some(&(i as u64)),
            "{}",
            name(i)
        );
    }
    assert_eq!(seg.find_slice::<(u8, u64)>("p").unwrap(), Some(&PADDED[..]));
    assert_eq!(seg.num_named_objects(), NAMES + 1);
}

/// A leaf's left link forged to what a torn or corrupted tree can hold: past the segment,
/// misaligned, into an object's padding, back to the root (a cycle), to an entry of the
/// other side (linked twice).
#[test]
fn a_torn_ordered_index_is_refused_or_rebuilt_without_following_a_bad_link() {
    let t = tree();
    let size = t.image.len() as u64;
    for (what, link) in [
        ("past the segment", size + 64),
        ("misaligned", t.other + 4),
        ("into padding", t.padding),
        ("the root", t.root),
        ("an entry linked elsewhere", t.other),
    ] {
        let mut forged = heap_copy(&t.image);
        corrupt(
            &mut forged,
            t.leaf as usize + ORDERED_LINKS,
            &link.to_ne_bytes(),
        );
        let mut cold = AlignedBuffer::from_image(forged.image());
        let err = ManagedExternalBuffer::options()
            .index::<OrderedIndex>()
            .open(&mut cold)
            .map(drop)
            .unwrap_err();
        assert!(matches!(err, Error::Corrupted { .. }), "{what}: {err:?}");
        // Copied while the index lock was held: the indexes are rebuilt at open.
        corrupt(&mut forged, offsets::INDEX_LOCK, &1u32.to_ne_bytes());
        let mut image = AlignedBuffer::from_image(forged.image());
        let heap = ManagedHeapMemory::options()
            .index::<OrderedIndex>()
            .from_image(&image)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(heap.num_named_objects(), NAMES + 1, "{what}");
        let seg = ManagedExternalBuffer::options()
            .index::<OrderedIndex>()
            .open(&mut image)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        all_found(&seg);
    }
}
