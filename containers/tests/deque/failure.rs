//! Allocation failure leaves a deque exactly as it was, and misuse is an error, never a
//! panic or a write.

use shmkit_containers::{Deque, DequeExt, Vec, VecExt};
use shmkit_runtime::sync::Mutex;
use shmkit_runtime::{AllocErrorKind, Error, ManagedHeapMemory};

/// What a deque is: its elements, capacity and where its two runs are.
fn state(d: &Deque<u64>) -> (std::vec::Vec<u64>, usize, [(*const u64, usize); 2]) {
    let (a, b) = d.as_slices();
    (
        d.iter().copied().collect(),
        d.capacity(),
        [(a.as_ptr(), a.len()), (b.as_ptr(), b.len())],
    )
}

#[test]
fn a_full_segment_leaves_the_deque_as_it_was() {
    let mut seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    seg.construct("d", Deque::<u64>::new()).unwrap();
    let mut d = seg.find_mut::<Deque<u64>>("d").unwrap().unwrap();
    let mut i = 0u64;
    let err = loop {
        let before = (d.len() == d.capacity()).then(|| state(&d));
        // Both ends, so that the ring wraps when growth fails.
        let pushed = if i % 3 == 0 {
            d.push_front(i)
        } else {
            d.push_back(i)
        };
        if let Err(e) = pushed {
            assert_eq!(Some(state(&d)), before, "a failed push changed the deque");
            break e;
        }
        i += 1;
    };
    assert!(
        matches!(err.kind(), AllocErrorKind::OutOfMemory { .. }),
        "{err}"
    );
    assert!(matches!(Error::from(err), Error::OutOfMemory { .. }));
    assert!(!d.as_slices().1.is_empty(), "the ring wraps");
    let before = state(&d);
    assert!(d.reserve(1).is_err());
    // Inserting in the middle of the full ring fails the same way, moving nothing.
    let middle = d.len() / 2;
    assert!(matches!(
        d.insert(middle, 7),
        Err(shmkit_containers::InsertError::Alloc(e)) if matches!(e.kind(), AllocErrorKind::OutOfMemory { .. })
    ));
    assert_eq!(state(&d), before);
    assert_eq!(
        d.insert(d.len() + 1, 7),
        Err(shmkit_containers::InsertError::OutOfBounds {
            index: d.len() + 1,
            len: d.len()
        })
    );
    assert_eq!(
        (d.remove(d.len()), d.remove_with(d.len(), |_| ())),
        (None, None)
    );
    // An iterator that does not say its length: what it appended is dropped again.
    assert!(d.extend((0..u64::MAX).filter(|_| true)).is_err());
    assert_eq!(state(&d), before);
    // Shrinking needs no memory, also for a ring that wraps.
    d.truncate(d.len() / 2);
    d.shrink_to_fit().unwrap();
    assert_eq!(
        d.iter().copied().collect::<std::vec::Vec<_>>(),
        before.0[..before.0.len() / 2]
    );
    d.push_back(1).unwrap();
}

#[test]
fn growth_that_must_move_nested_rows_and_fails_keeps_them() {
    let mut seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    seg.construct("rows", Deque::<Vec<u64>>::new()).unwrap();
    let mut rows = seg.find_mut::<Deque<Vec<u64>>>("rows").unwrap().unwrap();
    let mut i = 0;
    let err = loop {
        // Each row allocates after the deque's buffer, so it cannot grow in place.
        let pushed = if i % 2 == 0 {
            rows.push_front(Vec::new())
        } else {
            rows.push_back(Vec::new())
        };
        if let Err(e) = pushed {
            break e;
        }
        let row = if i % 2 == 0 {
            rows.front_mut()
        } else {
            rows.back_mut()
        };
        if let Err(e) = row.unwrap().extend_from_slice(&[i; 5]) {
            break e;
        }
        i += 1;
    };
    assert!(
        matches!(err.kind(), AllocErrorKind::OutOfMemory { .. }),
        "{err}"
    );
    for row in rows.iter() {
        assert!(
            row.is_empty() || row.iter().all(|&x| x == row[0]) && row.len() == 5,
            "{row:?}"
        );
    }
    assert!(rows.iter().filter(|r| !r.is_empty()).count() as u64 >= i);
}

#[test]
fn a_capacity_beyond_isize_max_bytes_is_refused_before_allocating() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("d", Deque::<u64>::new()).unwrap();
    let mut d = seg.find_mut::<Deque<u64>>("d").unwrap().unwrap();
    d.push_back(1).unwrap();
    for additional in [usize::MAX, usize::MAX / 8] {
        let err = d.reserve(additional).unwrap_err();
        assert!(
            matches!(err.kind(), AllocErrorKind::InvalidRequest { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("capacity overflow"), "{err}");
    }
    assert_eq!(*d, [1]);
    assert_eq!(
        (d.element_mut(1).is_none(), d.range(0..2).is_none()),
        (true, true)
    );
    assert_eq!(d.pop_back_with(|e| *e), Some(1));
    assert_eq!(
        (d.pop_front(), d.pop_back_with(|_| unreachable!("empty"))),
        (None, None)
    );
}

/// A deque outside every segment (here in a `Mutex` on the stack) cannot allocate.
#[test]
fn a_deque_outside_a_segment_cannot_grow() {
    let outside = Mutex::new(Deque::<u64>::new());
    let err = outside.lock().unwrap().push_front(1).unwrap_err();
    assert!(
        matches!(err.kind(), AllocErrorKind::NotInSegment { .. }),
        "{err}"
    );
    assert!(outside.lock().unwrap().is_empty());
}
