//! Allocation failure leaves a map exactly as it was (elements and segment memory), and a
//! map outside a segment cannot grow.

use std::collections::BTreeMap;

use shmkit_containers::{Map, MapExt, Vec};
use shmkit_runtime::sync::Mutex;
use shmkit_runtime::{AllocErrorKind, Error, ManagedHeapMemory};

use crate::model::contents;

/// Fills a small segment until an insert fails: with plain keys and values only a split
/// allocates, so the failing insert is one that needed new nodes (at several levels,
/// as the tree grows). The elements do not change, nor does the free memory (the same
/// insert fails again without taking any).
#[test]
fn an_insert_that_needs_a_split_in_a_full_segment_changes_nothing() {
    let mut seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    seg.construct("m", Map::<u64, u64>::new()).unwrap();
    let mut m = seg.find_mut::<Map<u64, u64>>("m").unwrap().unwrap();
    let mut model = BTreeMap::new();
    let (key, err) = (0u64..)
        .find_map(|k| {
            // Keys spread over the tree, so that splits happen in many places.
            let key = k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
            match m.insert(key, k) {
                Ok(_) => {
                    model.insert(key, k);
                    None
                }
                Err(e) => Some((key, e)),
            }
        })
        .unwrap();
    assert_eq!(contents(&m), model, "a failed insert changed the map");
    assert!(!m.contains_key(&key));
    let free = seg.free_memory();
    let mut m = seg.find_mut::<Map<u64, u64>>("m").unwrap().unwrap();
    assert!(m.insert(key, 0).is_err());
    assert_eq!(seg.free_memory(), free, "a failed insert kept memory");
    let mut m = seg.find_mut::<Map<u64, u64>>("m").unwrap().unwrap();
    assert!(
        matches!(err.kind(), AllocErrorKind::OutOfMemory { .. }),
        "{err}"
    );
    assert!(matches!(Error::from(err), Error::OutOfMemory { .. }));
    assert!(m.len() > 1000, "{} elements", m.len());
    // The entry API fails the same way, and removing makes room again.
    let before = contents(&m);
    let missing = (0..).find(|k| !m.contains_key(k)).unwrap();
    let mut failed = 0;
    for key in (missing..).filter(|k| !before.contains_key(k)).take(64) {
        if m.entry(key).unwrap().or_insert(1).is_err() {
            failed += 1;
            m.remove(&key);
        }
    }
    assert!(failed > 0, "the entry API never needed a split");
    let keys: std::vec::Vec<u64> = m.keys().copied().take(500).collect();
    for key in &keys {
        m.remove(key);
    }
    m.insert(missing, 1).unwrap();
}

/// Building a value or a key that does not fit fails before the tree is touched.
#[test]
fn a_value_or_key_that_does_not_fit_changes_nothing() {
    let mut seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    seg.construct("rows", Map::<u64, Vec<u64>>::new()).unwrap();
    seg.construct("paths", Map::<Vec<u64>, u64>::new()).unwrap();
    let huge = 0..100_000u64;
    {
        let mut rows = seg.find_mut::<Map<u64, Vec<u64>>>("rows").unwrap().unwrap();
        for k in 0..20 {
            rows.insert_with(k, 0..k, |_| ()).unwrap();
        }
    }
    let snapshot = |seg: &ManagedHeapMemory| -> BTreeMap<u64, std::vec::Vec<u64>> {
        let rows = seg.find::<Map<u64, Vec<u64>>>("rows").unwrap().unwrap();
        rows.iter().map(|(k, v)| (*k, v.to_vec())).collect()
    };
    let (before, free) = (snapshot(&seg), seg.free_memory());
    {
        let mut rows = seg.find_mut::<Map<u64, Vec<u64>>>("rows").unwrap().unwrap();
        // A new key, and an existing one whose value would be replaced.
        assert!(rows.insert_with(100, huge.clone(), |_| ()).is_err());
        assert!(rows.insert_with(5, huge.clone(), |_| ()).is_err());
        assert!(rows.entry(101).unwrap().or_insert(huge.clone()).is_err());
        let mut paths = seg
            .find_mut::<Map<Vec<u64>, u64>>("paths")
            .unwrap()
            .unwrap();
        assert!(paths.insert(huge.clone(), 1).is_err());
        assert!(paths.entry(huge.clone()).is_err());
        assert!(paths.is_empty());
    }
    assert_eq!((snapshot(&seg), seg.free_memory()), (before, free));
}

/// A map outside every segment (here in a `Mutex` on the stack) cannot allocate: an
/// error names the address, and nothing is written.
#[test]
fn a_map_outside_a_segment_cannot_grow() {
    let outside = Mutex::new(Map::<u64, u64>::new());
    let err = outside.lock().unwrap().insert(1, 2).unwrap_err();
    assert!(
        matches!(err.kind(), AllocErrorKind::NotInSegment { .. }),
        "{err}"
    );
    let mut map = outside.lock().unwrap();
    assert!(map.is_empty() && map.remove(&1).is_none() && map.pop_first().is_none());
    map.clear();
    map.retain(|_, _| false);
}
