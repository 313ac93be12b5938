//! Lists of vectors and vectors of lists: a position-dependent element is built in its
//! node and stays there, a list header moved by its vector is relocated, and everything
//! is dropped in place.

use std::collections::LinkedList;

use shmkit_containers::{List, ListExt, Vec, VecExt};
use shmkit_runtime::{ManagedHeapMemory, ShmMut};
use shmkit_test_support::Rng;

use crate::model::OPS;

type Rows = List<Vec<u32>>;

/// The rows as std vectors.
fn snapshot(rows: &Rows) -> LinkedList<std::vec::Vec<u32>> {
    rows.iter().map(|r| r.to_vec()).collect()
}

/// Random operations on `rows` and on a std model.
fn run(rows: &mut ShmMut<'_, Rows>, seed: u64, ops: usize) {
    let mut rng = Rng::new(seed);
    let mut model = snapshot(rows);
    for step in 0..ops {
        let x = rng.range(0, 30) as u32;
        match rng.range(0, 10) {
            0 | 1 => {
                rows.push_back(0..x).unwrap();
                model.push_back((0..x).collect());
            }
            2 => {
                rows.push_front([x, x]).unwrap();
                model.push_front(vec![x, x]);
            }
            3 => {
                if let (Some(mut row), Some(m)) = (rows.back_mut(), model.back_mut()) {
                    row.extend(0..x).unwrap();
                    m.extend(0..x);
                }
            }
            4 => assert_eq!(rows.pop_front_with(|r| r.to_vec()), model.pop_front()),
            5 => assert_eq!(rows.pop_back_with(|r| r.to_vec()), model.pop_back()),
            6 => {
                rows.retain(|r| r.len() % 3 != 1);
                model = model.into_iter().filter(|r| r.len() % 3 != 1).collect();
            }
            7 => {
                for (mut row, m) in rows.iter_mut().zip(model.iter_mut()) {
                    row.push(x).unwrap();
                    m.push(x);
                    if x % 3 == 0 {
                        row.shrink_to_fit().unwrap();
                    }
                }
            }
            8 => {
                // A row inserted and one removed in the middle, through a cursor.
                let mut v: std::vec::Vec<_> = model.into_iter().collect();
                let at = rng.range(0, v.len() as u64 + 1) as usize;
                let mut cursor = rows.cursor_front_mut();
                for _ in 0..at {
                    cursor.move_next();
                }
                cursor.insert_before(&[x][..]).unwrap();
                v.insert(at, vec![x]);
                let removed = cursor.remove_current_with(|r| r.to_vec());
                assert_eq!(removed, (at + 1 < v.len()).then(|| v.remove(at + 1)));
                model = v.into_iter().collect();
            }
            _ => {
                if x < 5 {
                    rows.clear();
                    model.clear();
                }
            }
        }
        assert_eq!(snapshot(rows), model, "step {step} (seed {seed:#x})");
    }
}

#[test]
fn lists_of_vectors_match_std_and_drop_in_place() {
    let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
    seg.construct("rows", Rows::new()).unwrap();
    run(
        &mut seg.find_mut::<Rows>("rows").unwrap().unwrap(),
        0xfeed,
        OPS / 2,
    );
    assert!(seg.destroy::<Rows>("rows").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// Elements never move: the address of each row stays the same while others come and go
/// around it, and so do the buffers of the vectors in them.
#[test]
fn elements_stay_where_they_were_built() {
    let mut seg = ManagedHeapMemory::new(1 << 18).unwrap();
    seg.construct("rows", Rows::new()).unwrap();
    let mut rows = seg.find_mut::<Rows>("rows").unwrap().unwrap();
    rows.push_back([1, 2, 3]).unwrap();
    let (row, buffer) = {
        let r = rows.front().unwrap();
        (r as *const Vec<u32>, r.as_ptr())
    };
    for i in 0..50 {
        rows.push_front([i]).unwrap();
        rows.push_back(0..i).unwrap();
        if i % 3 == 0 {
            rows.pop_front_with(|_| ());
        }
    }
    rows.retain(|r| r.len() != 1);
    let found = rows.iter().find(|r| r.as_slice() == [1, 2, 3]).unwrap();
    assert_eq!((found as *const Vec<u32>, found.as_ptr()), (row, buffer));
}

/// A vector of lists: growing the vector moves the list headers (relocating their links
/// to the nodes, which stay); lists built in place from sources.
#[test]
fn vectors_of_lists_relocate_the_headers() {
    let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
    seg.construct("lists", Vec::<List<u64>>::new()).unwrap();
    let mut model: std::vec::Vec<LinkedList<u64>> = std::vec::Vec::new();
    {
        let mut lists = seg.find_mut::<Vec<List<u64>>>("lists").unwrap().unwrap();
        let mut moved = 0;
        for i in 0..60u64 {
            let buffer = lists.as_ptr();
            lists.push(0..i % 7).unwrap(); // a list built in place from a range
            model.push((0..i % 7).collect());
            if lists.as_ptr() != buffer && i > 0 {
                moved += 1;
            }
            let mut last = lists.last_mut().unwrap();
            last.push_front(i).unwrap();
            model.last_mut().unwrap().push_front(i);
            if i % 4 == 0 {
                lists.insert(0, List::new()).unwrap();
                model.insert(0, LinkedList::new());
            }
            if i % 5 == 0 {
                let m = lists.remove_with(1, |l| l.iter().copied().collect::<LinkedList<_>>());
                assert_eq!(m, Some(model.remove(1)));
            }
            for (l, m) in lists.iter().zip(&model) {
                crate::model::assert_same(l, m, i as usize);
            }
        }
        assert!(
            moved > 0,
            "the outer buffer never moved: relocation untested"
        );
        lists.retain(|l| l.len() % 2 == 0);
        model.retain(|l| l.len() % 2 == 0);
        for (mut l, m) in lists.iter_mut().zip(&mut model) {
            l.push_back(7).unwrap();
            m.push_back(7);
        }
        assert!(lists
            .iter()
            .map(|l| l.iter().copied().collect::<LinkedList<_>>())
            .eq(model.iter().cloned()));
    }
    assert!(seg.destroy::<Vec<List<u64>>>("lists").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// Lists of lists, built in place from nested sources.
#[test]
fn lists_of_lists_are_built_in_place() {
    let mut seg = ManagedHeapMemory::new(1 << 18).unwrap();
    seg.construct("nested", List::<List<u64>>::new()).unwrap();
    {
        let mut nested = seg.find_mut::<List<List<u64>>>("nested").unwrap().unwrap();
        nested.push_back([1, 2]).unwrap();
        nested.push_front(List::new()).unwrap();
        nested.front_mut().unwrap().push_back(0).unwrap();
        nested.extend([[3u64], [4]]).unwrap();
        assert_eq!(format!("{:?}", *nested), "[[0], [1, 2], [3], [4]]");
        assert_eq!(nested.iter().nth(2).unwrap(), &[3]);
        assert!(!nested.contains(&List::new()));
        assert_eq!(nested.pop_front_with(|l| l.len()), Some(1));
        assert!(nested.contains(&List::new()) == nested.iter().any(|l| l.is_empty()));
    }
    assert!(seg.destroy::<List<List<u64>>>("nested").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// Lists of strings: each built in its node from a `&str`, found by `&str`.
#[test]
fn lists_of_strings_are_built_from_str() {
    use shmkit_containers::String;

    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("names", List::<String>::new()).unwrap();
    {
        let mut names = seg.find_mut::<List<String>>("names").unwrap().unwrap();
        names.push_back("ada").unwrap();
        names.push_front("grace").unwrap();
        names.extend(["edsger", "barbara"]).unwrap();
        let mut cursor = names.cursor_back_mut();
        cursor.insert_before("alan").unwrap();
        assert_eq!(cursor.remove_current_with(|s| s.len()), Some(7));
        assert!(names
            .iter()
            .map(|s| s.as_str())
            .eq(["grace", "ada", "edsger", "alan"]));
        assert!(names.iter().any(|s| s == "ada"));
        assert_eq!(
            names.pop_front_with(|s| s.as_str().to_owned()).as_deref(),
            Some("grace")
        );
    }
    assert!(seg.destroy::<List<String>>("names").unwrap());
    assert!(seg.all_memory_deallocated());
}
