//! The crash sweep: every mutating operation of a list of vectors (owning elements) is
//! stopped at each of its steps in turn (`crashes_at`, the containers' crash points), as a
//! SIGKILL there would stop it. After each stop the lists must be memory-safe to read
//! (both ways, in place and in a copy that validates them), to mutate (the next operation
//! repairs the hints and tags) and to drop (the segment then checks sound; what the stopped
//! operation owned may leak), and every operation must eventually run to its end. Under
//! Miri too, which checks all of that for undefined behaviour.

use shmkit_containers::{List, ListExt, VecExt};
use shmkit_runtime::__private::crash::crashes_at;
use shmkit_runtime::{ManagedHeapMemory, ShmMut};
use shmkit_test_support::sweep;

type Rows = List<shmkit_containers::Vec<u32>>;

/// One mutating operation on the first list, the second one at hand (for `append`).
type Op = fn(&mut ShmMut<'_, Rows>, &mut ShmMut<'_, Rows>);

const OPS: &[(&str, Op)] = &[
    ("push_back", |l, _| l.push_back(7..9).unwrap()),
    ("push_front", |l, _| l.push_front([5u32, 6]).unwrap()),
    ("pop_front_with", |l, _| {
        l.pop_front_with(|row| row.len());
    }),
    ("pop_back_with", |l, _| {
        l.pop_back_with(|row| row.len());
    }),
    ("clear", |l, _| l.clear()),
    ("retain", |l, _| l.retain(|row| row.len() % 2 == 0)),
    ("extend", |l, _| l.extend([[1u32], [2]]).unwrap()),
    ("append", |l, other| l.append(other).unwrap()),
    ("cursor edits", |l, _| {
        let mut cursor = l.cursor_front_mut();
        cursor.move_next();
        cursor.insert_before([9u32]).unwrap();
        cursor.insert_after([8u32]).unwrap();
        cursor.remove_current_with(|row| row.len());
    }),
    ("grow a row", |l, _| {
        l.back_mut().unwrap().extend(10..40).unwrap();
    }),
];

/// Rows to start each list from.
const ROWS: u32 = 4;

/// Reads `list` from both ends (what a reader after the crash would do): the rows from
/// the front, and whether the back agrees.
fn read(list: &Rows) -> std::vec::Vec<std::vec::Vec<u32>> {
    let rows: std::vec::Vec<std::vec::Vec<u32>> = list.iter().map(|r| r.to_vec()).collect();
    assert!(list
        .iter()
        .rev()
        .map(|r| r.to_vec())
        .eq(rows.iter().rev().cloned()));
    assert_eq!(
        (list.len(), list.back().map(|r| r.to_vec())),
        (rows.len(), rows.last().cloned())
    );
    rows
}

#[test]
fn every_operation_stopped_at_every_step_leaves_readable_usable_lists() {
    let mut steps_seen = 0;
    for (i, &(what, op)) in OPS.iter().enumerate() {
        for n in sweep::steps(i as u32) {
            let mut seg = ManagedHeapMemory::new(16 * 1024).unwrap();
            seg.construct_array_with("lists", 2, |_| Rows::new())
                .unwrap();
            let finished = {
                let mut all = seg.find_slice_mut::<Rows>("lists").unwrap().unwrap();
                let mut lists = all.iter_mut();
                let (mut l, mut other) = (lists.next().unwrap(), lists.next().unwrap());
                l.extend((0..ROWS).map(|i| 0..=i)).unwrap();
                other.extend([[40u32, 41]]).unwrap();
                crashes_at(n, || op(&mut l, &mut other))
            };
            let before: std::vec::Vec<_> = {
                let lists = seg.find_slice::<Rows>("lists").unwrap().unwrap();
                lists.iter().map(read).collect()
            };
            // A writable copy validates (each node owned through its one link) and reads
            // the same, as bytes from elsewhere.
            {
                let copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
                let lists = copy
                    .find_slice::<Rows>("lists")
                    .unwrap_or_else(|e| panic!("{what} stopped at step {n}: {e}"))
                    .unwrap();
                assert!(
                    lists.iter().map(read).eq(before.iter().cloned()),
                    "{what} at step {n}"
                );
            }
            // The next operation repairs what the stopped one left, and goes on.
            {
                let mut all = seg.find_slice_mut::<Rows>("lists").unwrap().unwrap();
                for (mut list, rows) in all.iter_mut().zip(&before) {
                    list.push_back([99u32]).unwrap();
                    let mut expected = rows.clone();
                    expected.push(vec![99]);
                    assert_eq!(read(&list), expected, "{what} at step {n}");
                }
            }
            assert!(seg.destroy::<Rows>("lists").unwrap(), "{what} at step {n}");
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
