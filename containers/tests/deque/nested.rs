//! Deques of vectors and vectors of deques: the inner headers are position-dependent, so
//! the deque relocates them whenever it moves them (growth, `make_contiguous`, `retain`,
//! `shrink_to_fit`), never hands one out by value, and drops them in place.

use std::collections::VecDeque;

use shmkit_containers::{Deque, DequeExt, Vec, VecExt};
use shmkit_runtime::{ManagedHeapMemory, ShmMut};
use shmkit_test_support::Rng;

use crate::model::OPS;

type Rows = Deque<Vec<u32>>;

/// The rows as std vectors.
fn snapshot(rows: &Rows) -> VecDeque<std::vec::Vec<u32>> {
    rows.iter().map(|r| r.to_vec()).collect()
}

/// Random operations on `rows` and on a std model; returns how often growth moved the
/// elements to a new block.
fn run(rows: &mut ShmMut<'_, Rows>, seed: u64, ops: usize) -> usize {
    let mut rng = Rng::new(seed);
    let mut model = snapshot(rows);
    let mut moves = 0;
    for step in 0..ops {
        let len = model.len();
        let index = rng.range(0, len as u64 + 1) as usize;
        let x = rng.range(0, 30) as u32;
        let (first, full) = (rows.front().map(|r| r as *const _), len == rows.capacity());
        match rng.range(0, 14) {
            0 | 1 => {
                rows.push_back(0..x).unwrap();
                model.push_back((0..x).collect());
                if full && first.is_some() && rows.front().map(|r| r as *const _) != first {
                    moves += 1;
                }
            }
            2 | 3 => {
                rows.push_front([x]).unwrap();
                model.push_front(vec![x]);
            }
            4 => {
                if let Some(mut row) = rows.element_mut(index) {
                    row.extend(0..x).unwrap();
                    model[index].extend(0..x);
                }
            }
            5 => assert_eq!(rows.pop_front_with(|r| r.to_vec()), model.pop_front()),
            6 => assert_eq!(rows.pop_back_with(|r| r.to_vec()), model.pop_back()),
            7 => {
                rows.retain(|r| r.len() % 3 != 1);
                model.retain(|r| r.len() % 3 != 1);
            }
            8 => {
                let mut contiguous = rows.make_contiguous();
                for (i, mut row) in contiguous.iter_mut().enumerate() {
                    row.push(i as u32).unwrap();
                }
                for (i, m) in model.iter_mut().enumerate() {
                    m.push(i as u32);
                }
            }
            9 => {
                for (mut row, m) in rows.iter_mut().zip(model.iter_mut()) {
                    row.push(x).unwrap();
                    m.push(x);
                }
            }
            10 => {
                rows.shrink_to_fit().unwrap();
            }
            11 => {
                rows.insert(index, 0..x).unwrap();
                model.insert(index, (0..x).collect());
            }
            12 => assert_eq!(rows.remove_with(index, |r| r.to_vec()), model.remove(index)),
            _ => {
                rows.truncate(index + 3);
                model.truncate(index + 3);
            }
        }
        assert_eq!(snapshot(rows), model, "step {step} (seed {seed:#x})");
    }
    moves
}

#[test]
fn deques_of_vectors_match_std_and_relocate_their_rows() {
    let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
    seg.construct("rows", Rows::new()).unwrap();
    let moves = run(
        &mut seg.find_mut::<Rows>("rows").unwrap().unwrap(),
        0xfeed,
        OPS / 2,
    );
    assert!(
        moves > 0,
        "growth never moved the rows: relocation untested"
    );
    assert!(seg.destroy::<Rows>("rows").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// A ring that wraps grows in place (the part at the start of the buffer copied after
/// the end) and into a new block (each row copied where the new capacity looks for it):
/// the rows keep their order and contents either way, and stay usable in place.
#[test]
fn a_wrapped_ring_grows_in_place_and_into_a_new_block() {
    for in_place in [true, false] {
        let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
        seg.construct("rows", Rows::new()).unwrap();
        seg.construct("gap", Vec::<u8>::new()).unwrap();
        seg.find_mut::<Rows>("rows")
            .unwrap()
            .unwrap()
            .reserve(4)
            .unwrap();
        // Room right after the deque's buffer, kept from the rows' own buffers until the
        // deque grows.
        seg.find_mut::<Vec<u8>>("gap")
            .unwrap()
            .unwrap()
            .reserve(4096)
            .unwrap();
        let (before, first) = {
            let mut rows = seg.find_mut::<Rows>("rows").unwrap().unwrap();
            let cap = rows.capacity() as u32;
            rows.extend((0..cap).map(|i| [i; 3])).unwrap();
            // Two rows leave the front and two come back at the end: the ring wraps.
            rows.pop_front_with(|_| ());
            rows.pop_front_with(|_| ());
            rows.push_back([100]).unwrap();
            rows.push_front(0..5).unwrap();
            assert!(!rows.as_slices().1.is_empty(), "the ring wraps");
            (snapshot(&rows), rows.front().unwrap() as *const Vec<u32>)
        };
        if in_place {
            seg.find_mut::<Vec<u8>>("gap")
                .unwrap()
                .unwrap()
                .shrink_to_fit()
                .unwrap();
        }
        let mut rows = seg.find_mut::<Rows>("rows").unwrap().unwrap();
        rows.push_back([7]).unwrap();
        let stayed = std::ptr::eq(rows.front().unwrap(), first);
        assert_eq!(stayed, in_place, "grown in place: {stayed}");
        let mut expected = before;
        expected.push_back(vec![7]);
        assert_eq!(snapshot(&rows), expected);
        assert!(
            rows.as_slices().1.is_empty(),
            "no longer wraps after growing"
        );
        for mut row in rows.iter_mut() {
            row.push(1).unwrap();
        }
        assert!(seg.destroy::<Rows>("rows").unwrap());
        assert!(seg.destroy::<Vec<u8>>("gap").unwrap());
        assert!(seg.all_memory_deallocated());
    }
}

/// Shrinking a wrapped ring moves the rows to the start of the buffer first (in place:
/// it needs no memory).
#[test]
fn shrinking_a_wrapped_ring_keeps_its_rows() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("rows", Rows::new()).unwrap();
    let mut rows = seg.find_mut::<Rows>("rows").unwrap().unwrap();
    rows.reserve(16).unwrap();
    let cap = rows.capacity();
    rows.extend((0..cap as u32).map(|i| [i])).unwrap();
    for _ in 0..8 {
        rows.pop_front_with(|_| ());
    }
    rows.extend([[99], [98], [97], [96], [95]]).unwrap();
    rows.truncate(rows.len() - 2);
    let before = snapshot(&rows);
    assert!(!rows.as_slices().1.is_empty(), "the ring wraps");
    rows.shrink_to_fit().unwrap();
    assert_eq!(snapshot(&rows), before);
    assert!(rows.capacity() >= rows.len() && rows.capacity() < cap);
    rows.push_front([11]).unwrap();
    assert_eq!(rows[0], [11]);
    for mut row in rows.iter_mut() {
        row.push(1).unwrap();
    }
}

/// A vector of deques: growing the vector moves the deque headers (their buffers stay).
#[test]
fn vectors_of_deques_relocate_the_headers() {
    let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
    seg.construct("all", Vec::<Deque<u64>>::new()).unwrap();
    let mut model: std::vec::Vec<VecDeque<u64>> = std::vec::Vec::new();
    {
        let mut all = seg.find_mut::<Vec<Deque<u64>>>("all").unwrap().unwrap();
        let mut moved = 0;
        for i in 0..60u64 {
            let buffer = all.as_ptr();
            all.push(0..i % 7).unwrap(); // a deque built in place from a range
            model.push((0..i % 7).collect());
            if all.as_ptr() != buffer && i > 0 {
                moved += 1;
            }
            all.last_mut().unwrap().push_front(i).unwrap();
            model.last_mut().unwrap().push_front(i);
            if i % 4 == 0 {
                all.insert(0, Deque::new()).unwrap();
                model.insert(0, VecDeque::new());
            }
            for (d, m) in all.iter().zip(&model) {
                crate::model::assert_same(d, m, i as usize);
            }
        }
        assert!(
            moved > 0,
            "the outer buffer never moved: relocation untested"
        );
    }
    assert!(seg.destroy::<Vec<Deque<u64>>>("all").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// Deques of strings: built in their slots from `&str`, relocated as the ring grows.
#[test]
fn deques_of_strings_grow_and_wrap() {
    use shmkit_containers::String;

    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("names", Deque::<String>::new()).unwrap();
    {
        let mut names = seg.find_mut::<Deque<String>>("names").unwrap().unwrap();
        let mut model = VecDeque::new();
        for i in 0..40 {
            let name = format!("name {i}");
            if i % 3 == 0 {
                names.push_front(name.as_str()).unwrap();
                model.push_front(name);
            } else {
                names.push_back(name.as_str()).unwrap();
                model.push_back(name);
            }
            if i % 5 == 0 {
                assert_eq!(
                    names.pop_back_with(|s| s.as_str().to_owned()),
                    model.pop_back()
                );
            }
        }
        assert!(names
            .iter()
            .map(|s| s.as_str())
            .eq(model.iter().map(|s| s.as_str())));
        names.make_contiguous();
        names.retain(|s| !s.ends_with('7'));
        model.retain(|s| !s.ends_with('7'));
        names.shrink_to_fit().unwrap();
        assert!(names
            .iter()
            .map(|s| s.as_str())
            .eq(model.iter().map(|s| s.as_str())));
    }
    assert!(seg.destroy::<Deque<String>>("names").unwrap());
    assert!(seg.all_memory_deallocated());
}
