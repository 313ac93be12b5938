//! Allocation failure leaves a map as it was, and misuse is an error, never a panic or a
//! write.

use shmkit_containers::{HashMap, HashMapExt, Vec};
use shmkit_runtime::sync::Mutex;
use shmkit_runtime::{AllocErrorKind, Error, ManagedHeapMemory};

/// What a map is: its elements (sorted) and capacity.
fn state<V: Clone>(m: &HashMap<u64, V>) -> (std::vec::Vec<(u64, V)>, usize) {
    let mut pairs: std::vec::Vec<(u64, V)> = m.iter().map(|(k, v)| (*k, v.clone())).collect();
    pairs.sort_by_key(|p| p.0);
    (pairs, m.capacity())
}

#[test]
fn a_full_segment_leaves_the_map_as_it_was() {
    let mut seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    seg.construct("m", HashMap::<u64, u64>::new()).unwrap();
    let mut m = seg.find_mut::<HashMap<u64, u64>>("m").unwrap().unwrap();
    let err = loop {
        // Only an insertion that must grow the table can fail.
        let before = (m.len() == m.capacity()).then(|| state(&m));
        let k = m.len() as u64;
        match m.insert(k, k * 2) {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(Some(state(&m)), before, "a failed insert changed the map");
                break e;
            }
        }
    };
    assert!(
        matches!(err.kind(), AllocErrorKind::OutOfMemory { .. }),
        "{err}"
    );
    assert!(matches!(Error::from(err), Error::OutOfMemory { .. }));
    let before = state(&m);
    assert!(m.entry(1 << 40).is_err());
    assert!(m.reserve(1000).is_err());
    assert!(m.insert_with(1 << 41, 1, |_| ()).is_err());
    assert!(m.extend((0..100).map(|i| (i + (1 << 42), i))).is_err());
    assert_eq!(state(&m), before);
    // Existing keys are still replaced: no room is needed for them.
    // (Growth comes first, as in std, so this needs the table to have room.)
    m.retain(|k, _| k % 2 == 0);
    assert_eq!(m.insert(0, 7).unwrap(), Some(0));
    m.shrink_to_fit().unwrap();
    let n = m.len() as u64;
    m.insert(n * 10, 1).unwrap();
}

#[test]
fn a_value_that_cannot_be_built_leaves_the_map_and_the_segment_as_they_were() {
    type Rows = HashMap<u64, Vec<u64>>;
    let rows = |m: &Rows| {
        let mut rows: std::vec::Vec<(u64, std::vec::Vec<u64>)> =
            m.iter().map(|(k, v)| (*k, v.to_vec())).collect();
        rows.sort();
        (rows, m.capacity())
    };
    let mut seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    seg.construct("m", Rows::new()).unwrap();
    seg.find_mut::<Rows>("m")
        .unwrap()
        .unwrap()
        .insert_with(1, 0..10u64, |_| ())
        .unwrap();
    let before = rows(seg.find::<Rows>("m").unwrap().unwrap());
    let free = seg.free_memory();
    {
        let mut m = seg.find_mut::<Rows>("m").unwrap().unwrap();
        // Too long to fit: the key built for it is dropped again; the table had room.
        for k in [2, 1] {
            let err = m.insert_with(k, 0..100_000u64, |_| ()).unwrap_err();
            assert!(
                matches!(err.kind(), AllocErrorKind::OutOfMemory { .. }),
                "{err}"
            );
        }
        assert!(m.entry(3).unwrap().or_insert(0..100_000u64).is_err());
    }
    assert_eq!(rows(seg.find::<Rows>("m").unwrap().unwrap()), before);
    assert_eq!(seg.free_memory(), free, "a failed insertion leaked");
}

#[test]
fn a_capacity_beyond_isize_max_bytes_is_refused_before_allocating() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("m", HashMap::<u64, u64>::new()).unwrap();
    let mut m = seg.find_mut::<HashMap<u64, u64>>("m").unwrap().unwrap();
    m.insert(1, 1).unwrap();
    for additional in [usize::MAX, usize::MAX / 8, isize::MAX as usize / 16] {
        let err = m.reserve(additional).unwrap_err();
        assert!(
            matches!(err.kind(), AllocErrorKind::InvalidRequest { .. }),
            "{err}"
        );
    }
    assert_eq!(state(&m), (vec![(1, 1)], 3));
}

/// A map outside every segment (here in a `Mutex` on the stack) cannot allocate: an error
/// names the address, and nothing is written.
#[test]
fn a_map_outside_a_segment_cannot_grow() {
    let outside = Mutex::new(HashMap::<u64, u64>::new());
    let err = outside.lock().unwrap().insert(1, 1).unwrap_err();
    assert!(
        matches!(err.kind(), AllocErrorKind::NotInSegment { .. }),
        "{err}"
    );
    let guard = outside.lock().unwrap();
    assert!(guard.is_empty() && guard.get(&1).is_none() && guard.iter().next().is_none());
}
