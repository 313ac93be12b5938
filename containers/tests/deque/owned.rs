//! One owner per buffer, also in forged bytes: a deque found in a writable mapping that
//! did not write it is lent only if its buffer is a block of its own, whose first word
//! names it (a forged file could otherwise give two deques one buffer, or a deque an
//! object's block or the middle of another buffer: two `&mut` to the same bytes, or a
//! double free).

use shmkit_containers::{Deque, DequeExt, Vec, VecExt};
use shmkit_runtime::{Error, ManagedHeapMemory, ShmSafe};
use shmkit_test_support as support;

type Rows = Vec<Deque<u64>>;

/// A heap segment holding "d" and "e" (`Deque<u64>`, [1, 2, 3] and [7]), "rows" (a
/// `Vec<Deque<u64>>` of two deques) and "n" (a named `u64`). Every ring starts at slot 0.
fn segment() -> ManagedHeapMemory {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("d", Deque::<u64>::new()).unwrap();
    seg.construct("e", Deque::<u64>::new()).unwrap();
    seg.construct("rows", Rows::new()).unwrap();
    seg.construct("n", 5u64).unwrap();
    seg.find_mut::<Deque<u64>>("d")
        .unwrap()
        .unwrap()
        .extend([1, 2, 3])
        .unwrap();
    seg.find_mut::<Deque<u64>>("e")
        .unwrap()
        .unwrap()
        .push_back(7)
        .unwrap();
    let mut rows = seg.find_mut::<Rows>("rows").unwrap().unwrap();
    for n in [2, 3] {
        rows.push(0..n).unwrap();
    }
    seg
}

fn offset_of<T: ?Sized>(seg: &ManagedHeapMemory, p: *const T) -> usize {
    p.cast::<u8>() as usize - seg.base_address().as_ptr() as usize
}

/// The offset of the buffer of a deque whose ring starts at slot 0.
fn buffer(seg: &ManagedHeapMemory, d: &Deque<u64>) -> usize {
    offset_of(seg, d.as_slices().0.as_ptr())
}

/// Aims the buffer pointer of the deque header at `header` (an offset) at `target`, with
/// the ring at slot 0 and capacity and length `len`.
fn aim(seg: &mut ManagedHeapMemory, header: usize, target: usize, len: u64) {
    let ptr = target as isize - header as isize;
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&ptr.to_ne_bytes());
    bytes[16..24].copy_from_slice(&len.to_ne_bytes());
    bytes[24..].copy_from_slice(&len.to_ne_bytes());
    support::corrupt(seg, header, &bytes);
}

/// What a writable copy of `seg` says when `name` is looked up as `T`.
fn lookup<T: ShmSafe>(seg: &mut ManagedHeapMemory, name: &str) -> Result<(), Error> {
    let copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    copy.find::<T>(name).map(|found| assert!(found.is_some()))
}

fn refused_as_shared(result: Result<(), Error>) -> String {
    match result {
        Err(Error::InvalidValue {
            field, expected, ..
        }) => format!("{field}: {expected}"),
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn a_writable_copy_lends_genuine_deques_and_frees_them_all() {
    let mut seg = segment();
    let mut copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    assert_eq!(*copy.find::<Deque<u64>>("d").unwrap().unwrap(), [1, 2, 3]);
    {
        // A wrapped ring grown (into a new block or in place), then shrunk: every
        // buffer it has names it.
        let mut d = copy.find_mut::<Deque<u64>>("d").unwrap().unwrap();
        d.pop_front();
        let mut next = 4;
        while d.len() < d.capacity() {
            d.push_back(next).unwrap();
            next += 1;
        }
        assert!(!d.as_slices().1.is_empty(), "the ring wraps");
        d.extend(next..next + 40).unwrap();
        d.truncate(5);
        d.shrink_to_fit().unwrap();
        let mut rows = copy.find_mut::<Rows>("rows").unwrap().unwrap();
        rows.element_mut(1).unwrap().push_front(9).unwrap();
        // Growth moves the deques: each one's buffer then names the deque's new place.
        let before = rows.as_ptr();
        rows.reserve(100).unwrap();
        assert_ne!(rows.as_ptr(), before, "the deques moved");
    }
    let again = ManagedHeapMemory::from_image(copy.image()).unwrap();
    assert_eq!(
        *again.find::<Deque<u64>>("d").unwrap().unwrap(),
        [2, 3, 4, 5, 6]
    );
    let rows = again.find::<Rows>("rows").unwrap().unwrap();
    assert!(rows[0] == [0, 1] && rows[1] == [9, 0, 1, 2], "{rows:?}");
    for name in ["d", "e"] {
        assert!(copy.destroy::<Deque<u64>>(name).unwrap());
    }
    assert!(copy.destroy::<Rows>("rows").unwrap());
    assert!(copy.destroy::<u64>("n").unwrap());
    assert!(copy.all_memory_deallocated());
}

#[test]
fn two_deques_never_share_a_buffer() {
    let mut seg = segment();
    let d = buffer(&seg, seg.find::<Deque<u64>>("d").unwrap().unwrap());
    let e = offset_of(&seg, seg.find::<Deque<u64>>("e").unwrap().unwrap());
    aim(&mut seg, e, d, 3);
    let why = refused_as_shared(lookup::<Deque<u64>>(&mut seg, "e"));
    assert!(why.starts_with("ptr") && why.contains("one owner"), "{why}");
    // The genuine owner is still lent, whichever is looked up first.
    lookup::<Deque<u64>>(&mut seg, "d").unwrap();
}

#[test]
fn a_nested_deque_cannot_take_a_siblings_buffer() {
    let mut seg = segment();
    let rows = seg.find::<Rows>("rows").unwrap().unwrap();
    let row0 = offset_of(&seg, rows.as_ptr());
    let row1_buffer = buffer(&seg, &rows[1]);
    aim(&mut seg, row0, row1_buffer, 2);
    let why = refused_as_shared(lookup::<Rows>(&mut seg, "rows"));
    assert!(
        why.starts_with("[0].ptr") && why.contains("one owner"),
        "{why}"
    );
}

#[test]
fn a_deque_cannot_claim_an_objects_block_nor_the_middle_of_a_buffer() {
    for target in ["object", "middle"] {
        let mut seg = segment();
        let n = offset_of(&seg, seg.find::<u64>("n").unwrap().unwrap());
        let d = buffer(&seg, seg.find::<Deque<u64>>("d").unwrap().unwrap());
        let e = offset_of(&seg, seg.find::<Deque<u64>>("e").unwrap().unwrap());
        // The tag a genuine owner would have, forged where the block would start.
        let at = if target == "object" { n } else { d + 8 };
        let tag = 0x5EA1u64 << 48 | ((e as u64).wrapping_sub(at as u64) & ((1 << 48) - 1));
        support::corrupt(&mut seg, at, &tag.to_ne_bytes());
        aim(&mut seg, e, at + 8, 1);
        let why = refused_as_shared(lookup::<Deque<u64>>(&mut seg, "e"));
        assert!(
            why.contains("start of a block of its own"),
            "{target}: {why}"
        );
    }
}

#[test]
fn a_read_only_copy_only_reads_and_checks_bounds() {
    let mut seg = segment();
    let d = buffer(&seg, seg.find::<Deque<u64>>("d").unwrap().unwrap());
    let e = offset_of(&seg, seg.find::<Deque<u64>>("e").unwrap().unwrap());
    aim(&mut seg, e, d, 3);
    let image = shmkit_runtime::AlignedBuffer::from_image(seg.image());
    let reader = shmkit_runtime::ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    // Two shared views of one buffer are no aliasing: nothing can write through either.
    assert_eq!(*reader.find::<Deque<u64>>("e").unwrap().unwrap(), [1, 2, 3]);
    assert_eq!(*reader.find::<Deque<u64>>("d").unwrap().unwrap(), [1, 2, 3]);
}
