//! The crash sweep: every mutating operation of a deque of vectors (owning elements, in a
//! ring that wraps) is stopped at each of its steps in turn (`crashes_at`, the containers'
//! crash points), as a SIGKILL there would stop it. After each stop the deque must be
//! memory-safe to read (both ways, in place and in a copy that validates it), to mutate
//! and to drop (the segment then checks sound; what the stopped operation owned may
//! leak), and every operation must eventually run to its end. Under Miri too.

use shmkit_containers::{Deque, DequeExt, Vec, VecExt};
use shmkit_runtime::__private::crash::crashes_at;
use shmkit_runtime::{AlignedBuffer, ManagedExternalBuffer, ManagedHeapMemory, ShmMut};
use shmkit_test_support::sweep;

type Rows = Deque<Vec<u32>>;

/// One mutating operation on the rows.
type Op = fn(&mut ShmMut<'_, Rows>);

const OPS: &[(&str, Op)] = &[
    ("push_back", |d| d.push_back(7..9).unwrap()),
    ("push_front", |d| d.push_front([5u32, 6]).unwrap()),
    ("push past the capacity", |d| {
        let more = d.capacity() - d.len() + 1;
        d.extend((0..more).map(|i| 0..=i as u32)).unwrap();
    }),
    ("insert", |d| d.insert(2, [5u32, 6]).unwrap()),
    ("remove_with", |d| {
        d.remove_with(1, |row| row.len());
    }),
    ("pop_front_with", |d| {
        d.pop_front_with(|row| row.len());
    }),
    ("pop_back_with", |d| {
        d.pop_back_with(|row| row.len());
    }),
    ("truncate", |d| d.truncate(2)),
    ("clear", |d| d.clear()),
    ("retain", |d| d.retain(|row| row.len() % 2 == 0)),
    ("make_contiguous", |d| {
        d.make_contiguous();
    }),
    ("reserve", |d| d.reserve(64).unwrap()),
    ("shrink_to_fit", |d| d.shrink_to_fit().unwrap()),
    ("grow a row", |d| {
        d.front_mut().unwrap().extend(10..40).unwrap();
    }),
];

/// How the deque starts: a ring that wraps, full or with the last slot freed (dropped,
/// so that counting it would be a use after free), with the block after its buffer in use
/// or free (growth into a new block or in place).
#[derive(Clone, Copy, Debug)]
struct Start {
    full: bool,
    room_after: bool,
}

/// A segment holding "rows", a ring of rows `[0]`, `[0, 1]`, … that wraps, as `start` says.
fn fresh(start: Start) -> ManagedHeapMemory {
    let mut seg = ManagedHeapMemory::new(16 * 1024).unwrap();
    seg.construct("rows", Rows::new()).unwrap();
    seg.construct("gap", Vec::<u8>::new()).unwrap();
    seg.find_mut::<Rows>("rows")
        .unwrap()
        .unwrap()
        .reserve(6)
        .unwrap();
    seg.find_mut::<Vec<u8>>("gap")
        .unwrap()
        .unwrap()
        .reserve(4096)
        .unwrap();
    {
        let mut d = seg.find_mut::<Rows>("rows").unwrap().unwrap();
        let cap = d.capacity() as u32;
        d.extend((0..cap - 2).map(|i| 0..=i)).unwrap();
        d.pop_front_with(|_| ());
        d.pop_front_with(|_| ());
        d.extend([[50u32], [51], [52], [53]]).unwrap();
        assert!(
            d.len() == d.capacity() && !d.as_slices().1.is_empty(),
            "full, wrapped"
        );
        if !start.full {
            d.pop_back_with(|_| ());
        }
    }
    if start.room_after {
        seg.find_mut::<Vec<u8>>("gap")
            .unwrap()
            .unwrap()
            .shrink_to_fit()
            .unwrap();
    }
    seg
}

/// Whether `row` is one the operations could have left: a row they start from or push
/// (`0..=k`, `[50]`…`[53]`, `[5, 6]`, `[7, 8]`, and the sweep's own `[98]`, `[99]`), or one
/// being grown (`0..=k` then
/// `10, 11, …`). Never empty: a row read from a slot the deque did not fill (zeroed
/// memory) would be.
fn plausible(row: &[u32]) -> bool {
    match row {
        [] => false,
        [5, 6] | [7, 8] | [98] | [99] => true,
        [x] if (50..54).contains(x) => true,
        _ => {
            let k = row.iter().zip(0..).take_while(|(x, i)| *x == i).count() as u32;
            k > 0
                && row[k as usize..]
                    .iter()
                    .copied()
                    .eq(10..10 + row.len() as u32 - k)
        }
    }
}

/// Reads the deque from both ends (what a reader after the crash would do).
fn read(d: &Rows) -> std::vec::Vec<std::vec::Vec<u32>> {
    let rows: std::vec::Vec<std::vec::Vec<u32>> = d.iter().map(|r| r.to_vec()).collect();
    assert!(rows.iter().all(|r| plausible(r)), "{rows:?}");
    assert!(d
        .iter()
        .rev()
        .map(|r| r.to_vec())
        .eq(rows.iter().rev().cloned()));
    let (a, b) = d.as_slices();
    assert!(a
        .iter()
        .chain(b)
        .map(|r| r.to_vec())
        .eq(rows.iter().cloned()));
    assert!(d.len() <= d.capacity());
    rows
}

#[test]
fn every_operation_stopped_at_every_step_leaves_a_readable_usable_deque() {
    let mut steps_seen = 0;
    // Under Miri, which takes minutes per start: growth in place and into a new block,
    // each once.
    let starts: &[(bool, bool)] = if cfg!(miri) {
        &[(true, false), (false, true)]
    } else {
        &[(true, false), (true, true), (false, false)]
    };
    for start in starts
        .iter()
        .map(|&(full, room_after)| Start { full, room_after })
    {
        for (i, &(what, op)) in OPS.iter().enumerate() {
            for n in sweep::steps(i as u32) {
                let mut seg = fresh(start);
                let finished = {
                    let mut rows = seg.find_mut::<Rows>("rows").unwrap().unwrap();
                    crashes_at(n, || op(&mut rows))
                };
                let at = format!("{what} ({start:?}) stopped at step {n}");
                let before = read(seg.find::<Rows>("rows").unwrap().unwrap());
                {
                    let image = AlignedBuffer::from_image(seg.image());
                    let reader = ManagedExternalBuffer::options()
                        .read_only()
                        .open(&image)
                        .unwrap();
                    let copy = reader
                        .find::<Rows>("rows")
                        .unwrap_or_else(|e| panic!("{at}: {e}"))
                        .unwrap();
                    assert_eq!(read(copy), before, "{at}");
                }
                {
                    let mut rows = seg.find_mut::<Rows>("rows").unwrap().unwrap();
                    rows.push_front([98u32]).unwrap();
                    rows.push_back([99u32]).unwrap();
                    let mut expected = before.clone();
                    expected.insert(0, vec![98]);
                    expected.push(vec![99]);
                    assert_eq!(read(&rows), expected, "{at}");
                }
                assert!(seg.destroy::<Rows>("rows").unwrap(), "{at}");
                assert!(seg.destroy::<Vec<u8>>("gap").unwrap(), "{at}");
                seg.check().unwrap_or_else(|e| panic!("{at}: {e}"));
                match finished {
                    Ok(()) => {
                        assert!(seg.all_memory_deallocated(), "{what} leaked");
                        break;
                    }
                    Err(_step) => steps_seen += 1,
                }
                assert!(n < 1000, "{what} never ran to its end");
            }
        }
    }
    assert!(
        steps_seen * sweep::STRIDE as usize > 3 * starts.len() * OPS.len(),
        "only {steps_seen} steps swept"
    );
}
