//! Bytes from elsewhere: a deque found in a mapping that did not write it is checked
//! first (its head and length against its capacity, its buffer inside the segment, the
//! elements it counts, where the ring wraps too), and read at the new address when fine.

use shmkit_containers::{Deque, DequeExt, Vec};
use shmkit_runtime::{AlignedBuffer, Error, ManagedExternalBuffer, ManagedHeapMemory};
use shmkit_test_support as support;

/// Where the header's fields are (the layout in the module docs).
const HEAD: usize = 8;
const LEN: usize = 16;
const CAP: usize = 24;

/// Pushes `items` onto the empty `d` so that they start in the last slot of its buffer:
/// a ring that wraps.
fn wrapped<T: shmkit_runtime::ShmSafe + Clone>(d: &mut impl DequeExt<T>, items: &[T]) {
    d.reserve(items.len() + 1).unwrap();
    // Placeholders up to the slot before the last, the one there popped once the items
    // follow it.
    for _ in 0..d.capacity() - 1 {
        d.push_back(items[0].clone()).unwrap();
    }
    while d.len() > 1 {
        d.pop_front_with(|_| ());
    }
    d.extend(items.iter().cloned()).unwrap();
    d.pop_front_with(|_| ());
    assert!(!d.as_slices().1.is_empty(), "the ring wraps");
}

/// A heap segment holding "d" (`Deque<u64>` [1..=6], wrapped), "rows" (two rows) and
/// "flags" (`Deque<bool>` [true, false, true, true], wrapped).
fn segment() -> ManagedHeapMemory {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("d", Deque::<u64>::new()).unwrap();
    seg.construct("rows", Deque::<Vec<u64>>::new()).unwrap();
    seg.construct("flags", Deque::<bool>::new()).unwrap();
    wrapped(
        &mut seg.find_mut::<Deque<u64>>("d").unwrap().unwrap(),
        &[1, 2, 3, 4, 5, 6],
    );
    {
        let mut rows = seg.find_mut::<Deque<Vec<u64>>>("rows").unwrap().unwrap();
        rows.push_back(0..2).unwrap();
        rows.push_front(0..3).unwrap();
    }
    wrapped(
        &mut seg.find_mut::<Deque<bool>>("flags").unwrap().unwrap(),
        &[true, false, true, true],
    );
    seg
}

/// The offset of the header of `name` in `seg`.
fn header<T: shmkit_runtime::ShmSafe>(seg: &ManagedHeapMemory, name: &str) -> usize {
    let d = seg.find::<Deque<T>>(name).unwrap().unwrap();
    d as *const Deque<T> as usize - seg.base_address().as_ptr() as usize
}

/// A read-only copy of `seg` after writing `bytes` at `at`.
fn copy_with(mut seg: ManagedHeapMemory, at: usize, bytes: &[u8]) -> AlignedBuffer {
    support::corrupt(&mut seg, at, bytes);
    AlignedBuffer::from_image(seg.image())
}

/// The `InvalidValue` a copy of the segment reports for "d" after `bytes` are written at
/// `field` of its header.
fn refused(field: usize, bytes: &[u8]) -> (String, &'static str) {
    let seg = segment();
    let at = header::<u64>(&seg, "d") + field;
    let image = copy_with(seg, at, bytes);
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    match reader.find::<Deque<u64>>("d") {
        Err(Error::InvalidValue {
            field, expected, ..
        }) => (field, expected),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_copy_of_the_segment_reads_its_deques_at_the_new_address() {
    let mut seg = segment();
    let image = AlignedBuffer::from_image(seg.image());
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    let d = reader.find::<Deque<u64>>("d").unwrap().unwrap();
    assert_eq!(*d, [1, 2, 3, 4, 5, 6]);
    assert!(!d.as_slices().1.is_empty() && d.iter().rev().eq(&[6, 5, 4, 3, 2, 1]));
    assert!(!seg.contains(d.as_slices().0.as_ptr().cast()));
    let rows = reader.find::<Deque<Vec<u64>>>("rows").unwrap().unwrap();
    assert_eq!(format!("{:?}", *rows), "[[0, 1, 2], [0, 1]]");
    assert_eq!(
        *reader.find::<Deque<bool>>("flags").unwrap().unwrap(),
        [true, false, true, true]
    );
}

#[test]
fn a_head_or_a_length_beyond_the_capacity_is_refused() {
    let seg = segment();
    let cap = seg.find::<Deque<u64>>("d").unwrap().unwrap().capacity() as u64;
    drop(seg);
    let (field, expected) = refused(HEAD, &cap.to_ne_bytes());
    assert_eq!(field, "head");
    assert!(expected.contains("inside its capacity"), "{expected}");
    let (field, expected) = refused(LEN, &(cap + 1).to_ne_bytes());
    assert_eq!(field, "len");
    assert!(expected.contains("at most its capacity"), "{expected}");
    let (field, _) = refused(LEN, &u64::MAX.to_ne_bytes());
    assert_eq!(field, "len");
    // No buffer (capacity 0) but a head or a length.
    let (field, _) = refused(CAP, &0u64.to_ne_bytes());
    assert_eq!(field, "head");
}

#[test]
fn a_buffer_outside_the_segment_is_refused() {
    let (field, expected) = refused(0, &(1isize << 40).to_ne_bytes());
    assert_eq!(field, "ptr");
    assert!(
        expected.contains("inside the pointer's own segment"),
        "{expected}"
    );
    // A capacity that reaches past the segment's end.
    let (field, _) = refused(CAP, &(1u64 << 30).to_ne_bytes());
    assert_eq!(field, "ptr");
}

/// An invalid element where the ring wraps is refused by its index.
#[test]
fn an_invalid_element_is_refused_by_its_index() {
    let mut seg = segment();
    let (at, index) = {
        let flags = seg.find::<Deque<bool>>("flags").unwrap().unwrap();
        let (a, b) = flags.as_slices();
        (
            b.as_ptr() as usize - seg.base_address().as_ptr() as usize,
            a.len(),
        )
    };
    support::corrupt(&mut seg, at, &[2]);
    let image = AlignedBuffer::from_image(seg.image());
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    match reader.find::<Deque<bool>>("flags") {
        Err(Error::InvalidValue {
            field, expected, ..
        }) => {
            assert_eq!(field, format!("[{index}]"));
            assert!(expected.contains("bool"), "{expected}");
        }
        other => panic!("{other:?}"),
    }
}

/// All-zero bytes are an empty deque, also from elsewhere.
#[test]
fn zeroed_bytes_are_an_empty_deque() {
    let seg = segment();
    let at = header::<u64>(&seg, "d");
    let image = copy_with(seg, at, &[0; 32]);
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    let found = reader.find::<Deque<u64>>("d").unwrap().unwrap();
    assert!(found.is_empty() && found.capacity() == 0 && found.iter().next().is_none());
}
