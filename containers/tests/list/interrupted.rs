//! Operations that did not finish: a list whose writer died in one (its `busy` word set,
//! its hints wrong) is read along its links and repaired by the next mutating operation;
//! a panic in a closure leaves a consistent list.

use std::panic::{catch_unwind, AssertUnwindSafe};

use shmkit_containers::{List, ListExt, Vec};
use shmkit_runtime::ManagedHeapMemory;
use shmkit_test_support as support;

/// The header's words: head, tail, len, busy (the layout in the module docs).
fn header(l: &List<u64>) -> [u64; 4] {
    // SAFETY: a `List` is 32 bytes of four 8-byte words, initialised, borrowed here.
    unsafe { *(l as *const List<u64>).cast::<[u64; 4]>() }
}

/// The state a writer killed inside an operation could leave: `busy` set, the length,
/// the tail and a `prev` hint wrong.
#[test]
fn the_next_operation_repairs_an_interrupted_list() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("l", List::<u64>::new()).unwrap();
    seg.find_mut::<List<u64>>("l")
        .unwrap()
        .unwrap()
        .extend([1, 2, 3])
        .unwrap();
    let (at, second) = {
        let base = seg.base_address().as_ptr() as usize;
        let l = seg.find::<List<u64>>("l").unwrap().unwrap();
        let second = l.iter().nth(1).unwrap() as *const u64 as usize - 24;
        (l as *const List<u64> as usize - base, second - base)
    };
    support::corrupt(&mut seg, at + 8, &(1isize << 40).to_ne_bytes()); // tail
    support::corrupt(&mut seg, at + 16, &7u64.to_ne_bytes()); // len
    support::corrupt(&mut seg, at + 24, &1u64.to_ne_bytes()); // busy
    support::corrupt(&mut seg, second + 16, &(-(1isize << 40)).to_ne_bytes()); // prev
    let mut l = seg.find_mut::<List<u64>>("l").unwrap().unwrap();
    assert_eq!((l.len(), l.back()), (3, Some(&3)));
    assert!(l.iter().rev().eq(&[3, 2, 1]));
    // A mutating operation rebuilds the hints first: afterwards they are used again.
    l.push_back(4).unwrap();
    assert_eq!(header(&l)[2..], [4, 0]);
    assert!(l.iter().rev().eq(&[4, 3, 2, 1]));
    assert_eq!(l.pop_back(), Some(4));
    let mut cursor = l.cursor_back_mut();
    cursor.move_prev();
    assert_eq!(cursor.remove_current(), Some(2));
    assert_eq!(*seg.find::<List<u64>>("l").unwrap().unwrap(), [1, 3]);
    assert!(seg.destroy::<List<u64>>("l").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// A panic in `retain`'s predicate ends the operation with the list consistent: what was
/// judged before is removed, the rest kept.
#[test]
fn a_panicking_predicate_leaves_a_consistent_list() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("l", List::<u64>::new()).unwrap();
    let mut l = seg.find_mut::<List<u64>>("l").unwrap().unwrap();
    l.extend(0..10).unwrap();
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        l.retain(|&x| {
            assert!(x != 6, "the predicate panics at 6");
            x % 2 == 0
        })
    }));
    assert!(panicked.is_err());
    assert_eq!(*l, [0, 2, 4, 6, 7, 8, 9]);
    assert_eq!(header(&l)[2..], [7, 0], "length right, not busy");
    assert!(l.iter().rev().eq(&[9, 8, 7, 6, 4, 2, 0]));
}

/// A panic while a nested element is built (its source iterator panics) frees the node.
#[test]
fn a_panicking_source_frees_the_node() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("rows", List::<Vec<u64>>::new()).unwrap();
    seg.find_mut::<List<Vec<u64>>>("rows")
        .unwrap()
        .unwrap()
        .push_back([1])
        .unwrap();
    let free = seg.free_memory();
    {
        let mut rows = seg.find_mut::<List<Vec<u64>>>("rows").unwrap().unwrap();
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            rows.push_front((0..10).map(|x| {
                if x == 5 {
                    panic!("the source panics")
                } else {
                    x
                }
            }))
        }));
        assert!(panicked.is_err());
        assert_eq!(rows.len(), 1);
    }
    assert_eq!(seg.free_memory(), free);
}
