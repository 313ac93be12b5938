//! Allocation failure leaves a vector exactly as it was, and misuse is an error, never a
//! panic or a write.

use shmkit_containers::{InsertError, Vec, VecExt};
use shmkit_runtime::sync::Mutex;
use shmkit_runtime::{AllocErrorKind, Error, ManagedHeapMemory};

/// What a vector is: its elements, capacity and buffer.
fn state<T: Clone>(v: &Vec<T>) -> (std::vec::Vec<T>, usize, *const T) {
    (v.to_vec(), v.capacity(), v.as_ptr())
}

#[test]
fn a_full_segment_leaves_the_vector_as_it_was() {
    let mut seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    seg.construct("v", Vec::<u64>::new()).unwrap();
    let mut v = seg.find_mut::<Vec<u64>>("v").unwrap().unwrap();
    let err = loop {
        let before = (v.len() == v.capacity()).then(|| state(&v));
        match v.push(v.len() as u64) {
            Ok(()) => {}
            Err(e) => {
                assert_eq!(Some(state(&v)), before, "a failed push changed the vector");
                break e;
            }
        }
    };
    assert!(
        matches!(err.kind(), AllocErrorKind::OutOfMemory { .. }),
        "{err}"
    );
    assert!(matches!(Error::from(err), Error::OutOfMemory { .. }));
    let before = state(&v);
    assert!(matches!(
        v.insert(0, 7),
        Err(InsertError::Alloc(e)) if matches!(e.kind(), AllocErrorKind::OutOfMemory { .. })
    ));
    assert!(v.extend_from_slice(&[1; 64]).is_err());
    assert_eq!(state(&v), before);
    // An iterator that does not say its length: what it appended is dropped again.
    assert!(v.extend((0..u64::MAX).filter(|_| true)).is_err());
    assert_eq!(v.as_slice(), before.0.as_slice());
    // Room again after giving some back.
    v.truncate(10);
    v.shrink_to_fit().unwrap();
    v.push(1).unwrap();
    assert_eq!(v.len(), 11);
}

#[test]
fn growth_that_must_move_nested_rows_and_fails_keeps_them() {
    let mut seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    seg.construct("rows", Vec::<Vec<u64>>::new()).unwrap();
    let mut rows = seg.find_mut::<Vec<Vec<u64>>>("rows").unwrap().unwrap();
    let mut i = 0;
    let err = loop {
        // Each row allocates after the outer buffer, so the outer one cannot grow in place.
        if let Err(e) = rows.push(Vec::new()) {
            break e;
        }
        if let Err(e) = rows.last_mut().unwrap().extend_from_slice(&[i; 5]) {
            break e;
        }
        i += 1;
    };
    assert!(
        matches!(err.kind(), AllocErrorKind::OutOfMemory { .. }),
        "{err}"
    );
    for (j, row) in rows.iter().enumerate() {
        assert!(
            row.is_empty() || row.as_slice() == [j as u64; 5],
            "row {j}: {row:?}"
        );
    }
}

#[test]
fn a_capacity_beyond_isize_max_bytes_is_refused_before_allocating() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("v", Vec::<u64>::new()).unwrap();
    let mut v = seg.find_mut::<Vec<u64>>("v").unwrap().unwrap();
    v.push(1).unwrap();
    for additional in [usize::MAX, usize::MAX / 8] {
        let err = v.reserve(additional).unwrap_err();
        assert!(
            matches!(err.kind(), AllocErrorKind::InvalidRequest { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("capacity overflow"), "{err}");
    }
    assert_eq!(*v, [1]);
}

#[test]
fn an_insertion_past_the_end_is_an_error_naming_the_index() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("v", Vec::<u64>::new()).unwrap();
    let mut v = seg.find_mut::<Vec<u64>>("v").unwrap().unwrap();
    v.push(1).unwrap();
    let err = v.insert(3, 9).unwrap_err();
    assert_eq!(err, InsertError::OutOfBounds { index: 3, len: 1 });
    assert_eq!(
        Error::from(err).to_string(),
        "index 3 is out of bounds for a container of 1 elements"
    );
    assert_eq!(
        (v.remove(1), v.swap_remove(5), v.element_mut(1).is_none()),
        (None, None, true)
    );
    assert_eq!(v.remove_with(4, |_| unreachable!("out of bounds")), None);
    assert_eq!(*v, [1]);
}

/// A vector outside every segment (here in a `Mutex` on the stack) cannot allocate: an
/// error names the address, and nothing is written.
#[test]
fn a_vector_outside_a_segment_cannot_grow() {
    let outside = Mutex::new(Vec::<u64>::new());
    let err = outside.lock().unwrap().push(1).unwrap_err();
    assert!(
        matches!(err.kind(), AllocErrorKind::NotInSegment { .. }),
        "{err}"
    );
    assert!(outside.lock().unwrap().is_empty());
}
