//! The crash sweep: every mutating operation of a vector of vectors (owning elements) is
//! stopped at each of its steps in turn (`crashes_at`, the containers' crash points, see
//! `src/crash.rs`), as a SIGKILL there would stop it. After each stop the vector must be
//! memory-safe to read (every row iterated) and to drop (its segment then checks sound;
//! what the stopped operation owned may leak), and every operation must eventually run to
//! its end. Under Miri too, which checks the reads and drops for undefined behaviour.

use shmkit_containers::{Vec, VecExt};
use shmkit_runtime::__private::crash::crashes_at;
use shmkit_runtime::{ManagedHeapMemory, ShmMut};
use shmkit_test_support::sweep;

type Rows = Vec<Vec<u32>>;

/// One mutating operation on the rows `[[0], [0, 1], [0, 1, 2], …]`.
type Op = fn(&mut ShmMut<'_, Rows>);

const OPS: &[(&str, Op)] = &[
    ("push", |v| v.push(7..9).unwrap()),
    ("push past the capacity", |v| {
        let more = v.capacity() - v.len() + 1;
        v.extend((0..more).map(|i| 0..i as u32)).unwrap();
    }),
    ("insert", |v| v.insert(1, [5u32, 6]).unwrap()),
    ("pop_with", |v| {
        v.pop_with(|row| row.len());
    }),
    ("remove_with", |v| {
        v.remove_with(1, |row| row.len());
    }),
    ("truncate", |v| v.truncate(1)),
    ("clear", |v| v.clear()),
    ("retain", |v| v.retain(|row| row.len() % 2 == 0)),
    ("dedup_by", |v| {
        v.dedup_by(|a, b| a.len() / 2 == b.len() / 2)
    }),
    ("reserve", |v| v.reserve(64).unwrap()),
    ("shrink_to_fit", |v| v.shrink_to_fit().unwrap()),
    ("grow a row", |v| {
        v.element_mut(2).unwrap().extend(10..40).unwrap();
    }),
];

/// Rows to start from: enough to have spare capacity and more than one of each length.
const ROWS: u32 = 5;

fn fresh() -> ManagedHeapMemory {
    let seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    seg.construct("rows", Rows::new()).unwrap();
    seg
}

/// Reads every row (what a reader after the crash would do) and returns the total.
fn read_all(rows: &Rows) -> u64 {
    rows.iter()
        .flat_map(|row| row.iter())
        .map(|&x| u64::from(x))
        .sum()
}

#[test]
fn every_operation_stopped_at_every_step_leaves_a_readable_droppable_vector() {
    let mut steps_seen = 0;
    for (i, &(what, op)) in OPS.iter().enumerate() {
        for n in sweep::steps(i as u32) {
            let mut seg = fresh();
            {
                let mut rows = seg.find_mut::<Rows>("rows").unwrap().unwrap();
                rows.extend((0..ROWS).map(|i| 0..=i)).unwrap();
            }
            let finished = {
                let mut rows = seg.find_mut::<Rows>("rows").unwrap().unwrap();
                crashes_at(n, || op(&mut rows))
            };
            let rows = seg.find::<Rows>("rows").unwrap().unwrap();
            std::hint::black_box(read_all(rows));
            assert!(rows.len() <= rows.capacity(), "{what} at step {n}");
            assert!(seg.destroy::<Rows>("rows").unwrap(), "{what} at step {n}");
            seg.check()
                .unwrap_or_else(|e| panic!("{what} stopped at step {n}: {e}"));
            match finished {
                Ok(()) => {
                    // Nothing leaks when no step was interrupted.
                    assert!(seg.all_memory_deallocated(), "{what} leaked");
                    break;
                }
                Err(_step) => steps_seen += 1,
            }
            assert!(n < 1000, "{what} never ran to its end");
        }
    }
    assert!(
        steps_seen * sweep::STRIDE as usize > 3 * OPS.len(),
        "only {steps_seen} steps swept"
    );
}
