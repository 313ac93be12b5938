//! Vectors of vectors: the inner headers are position-dependent, so the outer vector
//! relocates them when it moves its buffer, never hands one out by value, and drops them
//! in place.

use shmkit_containers::{Vec, VecExt};
use shmkit_runtime::{ManagedHeapMemory, ShmMut};
use shmkit_test_support::Rng;

use crate::model::OPS;

type Rows = Vec<Vec<u64>>;

/// The rows as std vectors.
fn snapshot(rows: &Rows) -> std::vec::Vec<std::vec::Vec<u64>> {
    rows.iter().map(|r| r.to_vec()).collect()
}

/// Random operations on `rows` and on a std model; returns how often the outer buffer
/// moved (which relocates every row header in it).
pub fn run(rows: &mut ShmMut<'_, Rows>, seed: u64, ops: usize) -> usize {
    let mut rng = Rng::new(seed);
    let mut model = snapshot(rows);
    let mut moves = 0;
    for step in 0..ops {
        let len = model.len();
        let index = rng.range(0, len as u64 + 1) as usize;
        let x = rng.range(0, 30);
        let buffer = rows.as_ptr();
        match rng.range(0, 12) {
            0..=2 => {
                rows.push(Vec::new()).unwrap();
                model.push(std::vec::Vec::new());
            }
            3..=5 => {
                if let Some(mut row) = rows.element_mut(index) {
                    row.extend(0..x).unwrap();
                    model[index].extend(0..x);
                }
            }
            6 => assert_eq!(rows.pop_with(|r| r.to_vec()), model.pop()),
            7 => assert_eq!(
                rows.remove_with(index, |r| r.to_vec()),
                (index < len).then(|| model.remove(index))
            ),
            8 => {
                rows.insert(index, Vec::new()).unwrap();
                model.insert(index, std::vec::Vec::new());
            }
            9 => {
                rows.retain(|r| r.len() % 3 != 1);
                model.retain(|r| r.len() % 3 != 1);
                rows.dedup();
                model.dedup();
            }
            10 => {
                for (mut row, m) in rows.iter_mut().zip(model.iter_mut()) {
                    row.push(x).unwrap();
                    m.push(x);
                    if x % 3 == 0 {
                        row.shrink_to_fit().unwrap();
                    }
                }
            }
            _ => {
                rows.truncate(index + 3);
                model.truncate(index + 3);
                rows.shrink_to_fit().unwrap();
            }
        }
        if rows.as_ptr() != buffer && len > 0 {
            moves += 1;
        }
        assert_eq!(snapshot(rows), model, "step {step} (seed {seed:#x})");
    }
    moves
}

#[test]
fn nested_vectors_match_std_and_are_relocated_when_the_outer_buffer_moves() {
    let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
    seg.construct("rows", Rows::new()).unwrap();
    let moves = run(
        &mut seg.find_mut::<Rows>("rows").unwrap().unwrap(),
        0xfeed,
        OPS / 2,
    );
    assert!(
        moves > 0,
        "the outer buffer never moved: relocation untested"
    );
    assert!(seg.destroy::<Rows>("rows").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// Truncating, clearing and popping drop the rows in place, giving their buffers back.
#[test]
fn dropping_rows_in_place_frees_their_buffers() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("rows", Rows::new()).unwrap();
    let empty = seg.free_memory();
    let mut rows = seg.find_mut::<Rows>("rows").unwrap().unwrap();
    for i in 0..8 {
        rows.push(Vec::new()).unwrap();
        rows.last_mut().unwrap().extend(0..i * 10).unwrap();
    }
    rows.truncate(5);
    rows.pop_with(|r| assert_eq!(r.len(), 40));
    rows.remove_with(0, |r| assert!(r.is_empty()));
    assert_eq!(rows.len(), 3);
    rows.clear();
    rows.shrink_to_fit().unwrap();
    assert_eq!(seg.free_memory(), empty);
}
