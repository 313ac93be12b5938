//! Allocation failure leaves a list exactly as it was (its node freed again), and misuse
//! is an error, never a panic or a write.

use shmkit_containers::{List, ListExt, Vec};
use shmkit_runtime::sync::Mutex;
use shmkit_runtime::{AllocErrorKind, Error, ManagedHeapMemory};

/// A list's elements, front to back.
fn elements(l: &List<u64>) -> std::vec::Vec<u64> {
    l.iter().copied().collect()
}

#[test]
fn a_full_segment_leaves_the_list_as_it_was() {
    let mut seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    seg.construct("l", List::<u64>::new()).unwrap();
    let mut l = seg.find_mut::<List<u64>>("l").unwrap().unwrap();
    let mut i = 0;
    let err = loop {
        let pushed = if i % 2 == 0 {
            l.push_back(i)
        } else {
            l.push_front(i)
        };
        if let Err(e) = pushed {
            break e;
        }
        i += 1;
    };
    assert!(
        matches!(err.kind(), AllocErrorKind::OutOfMemory { .. }),
        "{err}"
    );
    assert!(matches!(Error::from(err), Error::OutOfMemory { .. }));
    let before = elements(&l);
    assert_eq!(before.len() as u64, i);
    assert!(l.push_back(1).is_err() && l.push_front(1).is_err());
    // An iterator that does not say its length: what it appended is removed again.
    assert!(l.extend((0..u64::MAX).filter(|_| true)).is_err());
    {
        let mut cursor = l.cursor_front_mut();
        cursor.move_next();
        assert!(cursor.insert_after(5).is_err() && cursor.insert_before(5).is_err());
        assert_eq!(cursor.index(), Some(1));
    }
    assert_eq!(elements(&l), before);
    assert_eq!(l.len(), before.len());
    // Room again after giving some back.
    l.pop_front().unwrap();
    l.push_back(99).unwrap();
    assert_eq!(l.back(), Some(&99));
    // Nothing leaked by the failures: dropping every node frees every byte.
    assert!(seg.destroy::<List<u64>>("l").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// A nested vector that cannot be built frees the node it was to live in.
#[test]
fn an_element_that_cannot_be_built_frees_its_node() {
    let mut seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    seg.construct("rows", List::<Vec<u64>>::new()).unwrap();
    seg.find_mut::<List<Vec<u64>>>("rows")
        .unwrap()
        .unwrap()
        .push_back([1, 2])
        .unwrap();
    let free = seg.free_memory();
    {
        let mut rows = seg.find_mut::<List<Vec<u64>>>("rows").unwrap().unwrap();
        let err = rows.push_back(0..100_000).unwrap_err();
        assert!(
            matches!(err.kind(), AllocErrorKind::OutOfMemory { .. }),
            "{err}"
        );
        assert!(rows.push_front((0..u64::MAX).filter(|_| true)).is_err());
        assert_eq!(format!("{:?}", *rows), "[[1, 2]]");
    }
    assert_eq!(seg.free_memory(), free);
    assert!(seg.destroy::<List<Vec<u64>>>("rows").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// A list outside every segment (here in a `Mutex` on the stack) cannot allocate: an
/// error names the address, and nothing is written.
#[test]
fn a_list_outside_a_segment_cannot_grow() {
    let outside = Mutex::new(List::<u64>::new());
    let err = outside.lock().unwrap().push_back(1).unwrap_err();
    assert!(
        matches!(err.kind(), AllocErrorKind::NotInSegment { .. }),
        "{err}"
    );
    assert!(outside
        .lock()
        .unwrap()
        .cursor_front_mut()
        .insert_after(1)
        .is_err());
    assert!(outside.lock().unwrap().is_empty());
}

/// Nodes never move between segments: appending a list of another segment is refused,
/// and both lists stay as they were.
#[test]
fn appending_a_list_of_another_segment_is_refused() {
    let mut ours = ManagedHeapMemory::new(1 << 16).unwrap();
    let mut theirs = ManagedHeapMemory::new(1 << 16).unwrap();
    ours.construct("l", List::<u64>::new()).unwrap();
    theirs.construct("l", List::<u64>::new()).unwrap();
    let mut a = ours.find_mut::<List<u64>>("l").unwrap().unwrap();
    let mut b = theirs.find_mut::<List<u64>>("l").unwrap().unwrap();
    a.extend([1, 2]).unwrap();
    b.extend([3]).unwrap();
    let err = a.append(&mut b).unwrap_err();
    assert_eq!(err.from, &*b as *const List<u64> as usize);
    assert!(err.to_string().contains("another segment"), "{err}");
    assert!(matches!(Error::from(err), Error::InvalidAddress { .. }));
    assert_eq!((elements(&a), elements(&b)), (vec![1, 2], vec![3]));
    // An empty list from anywhere appends nothing, which is fine.
    b.clear();
    a.append(&mut b).unwrap();
    // A list outside every segment cannot take nodes either.
    let outside = Mutex::new(List::<u64>::new());
    assert!(outside.lock().unwrap().append(&mut a).is_err());
    assert_eq!(elements(&a), [1, 2]);
}
