//! `drain`: the range taken by value, the tail moved down when the iterator drops, bad
//! ranges refused, and what a forgotten iterator or a panicking drop leaves.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use shmkit_containers::{Vec, VecExt};
use shmkit_runtime::{ManagedHeapMemory, PositionIndependent, ShmImmutable, ShmSafe};

fn seg_with(values: impl IntoIterator<Item = u32>) -> ManagedHeapMemory {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("v", Vec::<u32>::new()).unwrap();
    seg.find_mut::<Vec<u32>>("v")
        .unwrap()
        .unwrap()
        .extend(values)
        .unwrap();
    seg
}

#[test]
fn every_range_form_takes_what_std_takes() {
    let mut seg = seg_with(0..10);
    let mut v = seg.find_mut::<Vec<u32>>("v").unwrap().unwrap();
    assert!(v.drain(2..5).unwrap().eq([2, 3, 4]));
    assert_eq!(v.as_slice(), [0, 1, 5, 6, 7, 8, 9]);
    assert!(v.drain(..=1).unwrap().eq([0, 1]));
    assert!(v.drain(3..).unwrap().rev().eq([9, 8]));
    assert!(v.drain(1..1).unwrap().eq([]));
    assert!(v.drain(..).unwrap().eq([5, 6, 7]));
    assert!(v.is_empty() && v.capacity() >= 10);
}

#[test]
fn a_range_past_the_end_or_backwards_is_none_and_changes_nothing() {
    let mut seg = seg_with(0..4);
    let mut v = seg.find_mut::<Vec<u32>>("v").unwrap().unwrap();
    assert!(v.drain(2..5).is_none());
    assert!(v.drain(5..).is_none());
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 3..1;
    assert!(v.drain(backwards).is_none());
    assert!(v.drain(..=usize::MAX).is_none());
    assert!(v
        .drain((
            std::ops::Bound::Excluded(usize::MAX),
            std::ops::Bound::Unbounded
        ))
        .is_none());
    assert_eq!(v.as_slice(), [0, 1, 2, 3]);
}

#[test]
fn dropping_the_iterator_early_drops_the_rest_and_closes_the_gap() {
    let mut seg = seg_with(0..8);
    let mut v = seg.find_mut::<Vec<u32>>("v").unwrap().unwrap();
    let mut d = v.drain(1..6).unwrap();
    assert_eq!((d.next(), d.next_back()), (Some(1), Some(5)));
    assert_eq!(format!("{d:?}"), "Drain([2, 3, 4])");
    drop(d);
    assert_eq!(v.as_slice(), [0, 6, 7]);
}

#[test]
fn a_forgotten_iterator_leaves_the_vector_ending_where_the_range_started() {
    let mut seg = seg_with(0..8);
    {
        let mut v = seg.find_mut::<Vec<u32>>("v").unwrap().unwrap();
        std::mem::forget(v.drain(3..5).unwrap());
        assert_eq!(v.as_slice(), [0, 1, 2]);
        v.push(9).unwrap();
        assert_eq!(v.as_slice(), [0, 1, 2, 9]);
    }
    assert!(seg.destroy::<Vec<u32>>("v").unwrap());
    assert!(seg.all_memory_deallocated());
}

thread_local! {
    static DROPS: Cell<u32> = const { Cell::new(0) };
}

/// Plain data whose drop counts, and panics for the value 13.
#[derive(Debug, PartialEq)]
struct Loud(u32);

// SAFETY: a plain integer.
unsafe impl ShmSafe for Loud {
    const ALL_BIT_PATTERNS_VALID: bool = true;
}
// SAFETY: as above.
unsafe impl PositionIndependent for Loud {}
// SAFETY: no interior mutability.
unsafe impl ShmImmutable for Loud {}

impl Drop for Loud {
    fn drop(&mut self) {
        DROPS.with(|d| d.set(d.get() + 1));
        assert_ne!(self.0, 13, "unlucky");
    }
}

#[test]
fn a_panicking_drop_of_a_removed_element_still_closes_the_gap_and_drops_each_once() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("v", Vec::<Loud>::new()).unwrap();
    {
        let mut v = seg.find_mut::<Vec<Loud>>("v").unwrap().unwrap();
        v.extend([1, 13, 2, 3, 4].map(Loud)).unwrap();
        DROPS.with(|d| d.set(0));
        let panicked = catch_unwind(AssertUnwindSafe(|| drop(v.drain(1..3).unwrap())));
        assert!(panicked.is_err());
        // 13 and 2 dropped once each: 2 after 13's panic, as a slice's drop does.
        assert_eq!(DROPS.with(Cell::get), 2);
        assert_eq!(
            v.iter().map(|l| l.0).collect::<std::vec::Vec<_>>(),
            [1, 3, 4]
        );
    }
    DROPS.with(|d| d.set(0));
    assert!(seg.destroy::<Vec<Loud>>("v").unwrap());
    assert_eq!(DROPS.with(Cell::get), 3);
}
