//! Bytes from elsewhere: a vector found in a mapping that did not write it is checked
//! first (its length against its capacity, its buffer inside the segment, its elements),
//! and read at the new address when it is fine.

use shmkit_containers::{Vec, VecExt};
use shmkit_runtime::{AlignedBuffer, Error, ManagedExternalBuffer, ManagedHeapMemory};
use shmkit_test_support as support;

/// A heap segment holding "v" (`Vec<u64>` [1, 2, 3]), "rows" (two rows) and "flags"
/// (`Vec<bool>` [true, false]), and the offset of each header.
fn segment() -> (ManagedHeapMemory, [usize; 3]) {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    let offset = |seg: &ManagedHeapMemory, p: usize| p - seg.base_address().as_ptr() as usize;
    let v = seg.construct("v", Vec::<u64>::new()).unwrap() as *const _ as usize;
    let rows = seg.construct("rows", Vec::<Vec<u64>>::new()).unwrap() as *const _ as usize;
    let flags = seg.construct("flags", Vec::<bool>::new()).unwrap() as *const _ as usize;
    let offsets = [offset(&seg, v), offset(&seg, rows), offset(&seg, flags)];
    seg.find_mut::<Vec<u64>>("v")
        .unwrap()
        .unwrap()
        .extend([1, 2, 3])
        .unwrap();
    {
        let mut r = seg.find_mut::<Vec<Vec<u64>>>("rows").unwrap().unwrap();
        for n in [2, 3] {
            r.push(Vec::new()).unwrap();
            r.last_mut().unwrap().extend(0..n).unwrap();
        }
    }
    seg.find_mut::<Vec<bool>>("flags")
        .unwrap()
        .unwrap()
        .extend([true, false])
        .unwrap();
    (seg, offsets)
}

#[test]
fn a_copy_of_the_segment_reads_its_vectors_at_the_new_address() {
    let (mut seg, _) = segment();
    let image = AlignedBuffer::from_image(seg.image());
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    let v = reader.find::<Vec<u64>>("v").unwrap().unwrap();
    assert_eq!(*v, [1, 2, 3]);
    assert!(!seg.contains(v.as_ptr().cast()));
    let rows = reader.find::<Vec<Vec<u64>>>("rows").unwrap().unwrap();
    assert_eq!(
        (rows[0].as_slice(), rows[1].as_slice()),
        (&[0, 1][..], &[0, 1, 2][..])
    );
    assert_eq!(
        *reader.find::<Vec<bool>>("flags").unwrap().unwrap(),
        [true, false]
    );
}

/// The `InvalidValue` a copy of `seg` reports for `name` (as `Vec<T>`) after `bytes` are
/// written at `at`.
fn refused<T: shmkit_runtime::ShmImmutable + std::fmt::Debug>(
    name: &str,
    at: usize,
    bytes: &[u8],
) -> (String, &'static str) {
    let (mut seg, _) = segment();
    support::corrupt(&mut seg, at, bytes);
    let image = AlignedBuffer::from_image(seg.image());
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    match reader.find::<Vec<T>>(name) {
        Err(Error::InvalidValue {
            field, expected, ..
        }) => (field, expected),
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn a_length_beyond_the_capacity_is_refused() {
    let (_, [v, ..]) = segment();
    let (field, expected) = refused::<u64>("v", v + 8, &100u64.to_ne_bytes());
    assert_eq!(field, "len");
    assert!(expected.contains("at most its capacity"), "{expected}");
}

#[test]
fn a_buffer_outside_the_segment_is_refused() {
    let (_, [v, ..]) = segment();
    let (field, _) = refused::<u64>("v", v, &(1isize << 40).to_ne_bytes());
    assert_eq!(field, "ptr");
    // A capacity that reaches past the segment's end.
    let (field, _) = refused::<u64>("v", v + 16, &(1u64 << 30).to_ne_bytes());
    assert_eq!(field, "ptr");
    // Misaligned for the element, inside a nested row (offset 9: the tag bits of an
    // `OffsetPtr<u64>` are 1 and 2, and 1 alone is null).
    let (seg, _) = segment();
    let row0 = seg.find::<Vec<Vec<u64>>>("rows").unwrap().unwrap().as_ptr() as usize
        - seg.base_address().as_ptr() as usize;
    let (field, expected) = refused::<Vec<u64>>("rows", row0, &9isize.to_ne_bytes());
    assert_eq!(field, "[0].ptr");
    assert!(
        expected.contains("inside the pointer's own segment"),
        "{expected}"
    );
}

#[test]
fn an_invalid_element_is_refused_by_its_index() {
    let (seg, _) = segment();
    let elements = seg.find::<Vec<bool>>("flags").unwrap().unwrap().as_ptr() as usize
        - seg.base_address().as_ptr() as usize;
    let (field, expected) = refused::<bool>("flags", elements + 1, &[2]);
    assert_eq!(field, "[1]");
    assert!(expected.contains("bool"), "{expected}");
}

/// All-zero bytes are an empty vector, also from elsewhere.
#[test]
fn zeroed_bytes_are_an_empty_vector() {
    let (_, [v, ..]) = segment();
    let (mut seg, _) = segment();
    support::corrupt(&mut seg, v, &[0; 24]);
    let image = AlignedBuffer::from_image(seg.image());
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    let found = reader.find::<Vec<u64>>("v").unwrap().unwrap();
    assert!(found.is_empty() && found.capacity() == 0);
}
