//! One owner per buffer, also in forged bytes: a vector found in a writable mapping that
//! did not write it is lent only if its buffer is a block of its own, whose first word
//! names it (a forged file could otherwise give two vectors one buffer, or a vector an
//! object's block or the middle of another buffer: two `&mut` to the same bytes, or a
//! double free).

use shmkit_containers::{Vec, VecExt};
use shmkit_runtime::{Error, ManagedHeapMemory};
use shmkit_test_support as support;

/// A heap segment holding "v" and "w" (`Vec<u64>`, [1, 2, 3] and [7]), "rows" (a
/// `Vec<Vec<u64>>` of two rows) and "n" (a named `u64`).
fn segment() -> ManagedHeapMemory {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("v", Vec::<u64>::new()).unwrap();
    seg.construct("w", Vec::<u64>::new()).unwrap();
    seg.construct("rows", Vec::<Vec<u64>>::new()).unwrap();
    seg.construct("n", 5u64).unwrap();
    seg.find_mut::<Vec<u64>>("v")
        .unwrap()
        .unwrap()
        .extend([1, 2, 3])
        .unwrap();
    seg.find_mut::<Vec<u64>>("w")
        .unwrap()
        .unwrap()
        .push(7)
        .unwrap();
    let mut rows = seg.find_mut::<Vec<Vec<u64>>>("rows").unwrap().unwrap();
    for n in [2, 3] {
        rows.push(0..n).unwrap();
    }
    seg
}

fn offset_of(seg: &ManagedHeapMemory, p: *const u8) -> usize {
    p as usize - seg.base_address().as_ptr() as usize
}

/// Aims the buffer pointer of the vector header at `header` (an offset) at `target`, with
/// capacity and length `len`.
fn aim(seg: &mut ManagedHeapMemory, header: usize, target: usize, len: u64) {
    let ptr = target as isize - header as isize;
    let mut bytes = [0u8; 24];
    bytes[..8].copy_from_slice(&ptr.to_ne_bytes());
    bytes[8..16].copy_from_slice(&len.to_ne_bytes());
    bytes[16..].copy_from_slice(&len.to_ne_bytes());
    support::corrupt(seg, header, &bytes);
}

/// What a writable copy of `seg` says when `name` is looked up as `T`.
fn lookup<T: shmkit_runtime::ShmSafe>(
    seg: &mut ManagedHeapMemory,
    name: &str,
) -> Result<(), Error> {
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
fn a_writable_copy_lends_genuine_vectors_and_frees_them_all() {
    let mut seg = segment();
    let mut copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    assert_eq!(*copy.find::<Vec<u64>>("v").unwrap().unwrap(), [1, 2, 3]);
    {
        let mut rows = copy.find_mut::<Vec<Vec<u64>>>("rows").unwrap().unwrap();
        // Growth moves the rows: each row's buffer then names the row's new place.
        rows.reserve(100).unwrap();
        rows[1].as_slice();
    }
    let again = ManagedHeapMemory::from_image(copy.image()).unwrap();
    let rows = again.find::<Vec<Vec<u64>>>("rows").unwrap().unwrap();
    assert_eq!(
        (rows[0].as_slice(), rows[1].as_slice()),
        (&[0, 1][..], &[0, 1, 2][..])
    );
    for name in ["v", "w"] {
        assert!(copy.destroy::<Vec<u64>>(name).unwrap());
    }
    assert!(copy.destroy::<Vec<Vec<u64>>>("rows").unwrap());
    assert!(copy.destroy::<u64>("n").unwrap());
    assert!(copy.all_memory_deallocated());
}

#[test]
fn two_vectors_never_share_a_buffer() {
    let mut seg = segment();
    let v = seg.find::<Vec<u64>>("v").unwrap().unwrap();
    let buffer = offset_of(&seg, v.as_ptr().cast());
    let w = offset_of(
        &seg,
        seg.find::<Vec<u64>>("w").unwrap().unwrap() as *const _ as *const u8,
    );
    aim(&mut seg, w, buffer, 3);
    let why = refused_as_shared(lookup::<Vec<u64>>(&mut seg, "w"));
    assert!(why.starts_with("ptr") && why.contains("one owner"), "{why}");
    // The genuine owner is still lent, whichever is looked up first.
    lookup::<Vec<u64>>(&mut seg, "v").unwrap();
}

#[test]
fn a_row_cannot_take_a_sibling_rows_buffer() {
    let mut seg = segment();
    let rows = seg.find::<Vec<Vec<u64>>>("rows").unwrap().unwrap();
    let row0 = offset_of(&seg, rows.as_ptr().cast());
    let row1_buffer = offset_of(&seg, rows[1].as_ptr().cast());
    aim(&mut seg, row0, row1_buffer, 2);
    let why = refused_as_shared(lookup::<Vec<Vec<u64>>>(&mut seg, "rows"));
    assert!(
        why.starts_with("[0].ptr") && why.contains("one owner"),
        "{why}"
    );
}

#[test]
fn a_vector_cannot_claim_an_objects_block_nor_the_middle_of_a_buffer() {
    for target in ["object", "middle"] {
        let mut seg = segment();
        let n = offset_of(
            &seg,
            seg.find::<u64>("n").unwrap().unwrap() as *const u64 as *const u8,
        );
        let v_buffer = offset_of(
            &seg,
            seg.find::<Vec<u64>>("v").unwrap().unwrap().as_ptr().cast(),
        );
        let w = offset_of(
            &seg,
            seg.find::<Vec<u64>>("w").unwrap().unwrap() as *const _ as *const u8,
        );
        // The tag a genuine owner would have, forged where the block would start.
        let at = if target == "object" { n } else { v_buffer + 8 };
        let tag = 0x5EA1u64 << 48 | ((w as u64).wrapping_sub(at as u64) & ((1 << 48) - 1));
        support::corrupt(&mut seg, at, &tag.to_ne_bytes());
        aim(&mut seg, w, at + 8, 1);
        let why = refused_as_shared(lookup::<Vec<u64>>(&mut seg, "w"));
        assert!(
            why.contains("start of a block of its own"),
            "{target}: {why}"
        );
    }
}

#[test]
fn a_read_only_copy_only_reads_and_checks_bounds() {
    let mut seg = segment();
    let v = seg.find::<Vec<u64>>("v").unwrap().unwrap();
    let buffer = offset_of(&seg, v.as_ptr().cast());
    let w = offset_of(
        &seg,
        seg.find::<Vec<u64>>("w").unwrap().unwrap() as *const _ as *const u8,
    );
    aim(&mut seg, w, buffer, 3);
    let image = shmkit_runtime::AlignedBuffer::from_image(seg.image());
    let reader = shmkit_runtime::ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    // Two shared views of one buffer are no aliasing: nothing can write through either.
    assert_eq!(*reader.find::<Vec<u64>>("w").unwrap().unwrap(), [1, 2, 3]);
    assert_eq!(*reader.find::<Vec<u64>>("v").unwrap().unwrap(), [1, 2, 3]);
}
