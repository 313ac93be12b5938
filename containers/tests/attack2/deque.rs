//! `Deque::insert/remove/remove_with` at every index of a wrapped ring, with
//! position-dependent elements (whose buffers name their slot), zero-sized elements, and a
//! source that panics while the element is built after the shift.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};

use shmkit_containers::{Deque, DequeExt, Vec};
use shmkit_runtime::ManagedHeapMemory;

type D = Deque<Vec<u64>>;

/// A deque of capacity 8 whose ring wraps: elements 0..len, head at `head`.
fn wrapped(seg: &mut ManagedHeapMemory, head: usize, len: usize) -> VecDeque<std::vec::Vec<u64>> {
    seg.construct("d", D::new()).unwrap();
    let mut d = seg.find_mut::<D>("d").unwrap().unwrap();
    d.reserve(8).unwrap();
    let cap = d.capacity();
    for _ in 0..head {
        d.push_back([0u64]).unwrap();
        d.pop_front_with(|_| ());
    }
    let mut model = VecDeque::new();
    for i in 0..len as u64 {
        d.push_back([i, 100 + i]).unwrap();
        model.push_back(vec![i, 100 + i]);
    }
    assert_eq!(d.capacity(), cap);
    model
}

fn check(seg: &mut ManagedHeapMemory, model: &VecDeque<std::vec::Vec<u64>>) {
    let got = |d: &D| d.iter().map(|v| v.to_vec()).collect::<VecDeque<_>>();
    {
        let d = seg.find::<D>("d").unwrap().unwrap();
        assert_eq!(&got(d), model);
    }
    let copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    let d = copy.find::<D>("d");
    assert!(matches!(d, Ok(Some(_))), "the copy refuses: {:?}", d.err());
    assert_eq!(&got(d.unwrap().unwrap()), model);
}

#[test]
fn insert_and_remove_at_every_index_of_every_wrapped_ring_keep_a_deque_a_copy_accepts() {
    for head in 0..8 {
        for len in 0..7 {
            for index in 0..=len {
                let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
                let mut model = wrapped(&mut seg, head, len);
                {
                    let mut d = seg.find_mut::<D>("d").unwrap().unwrap();
                    d.insert(index, [7u64, 7, 7]).unwrap();
                }
                model.insert(index, vec![7, 7, 7]);
                check(&mut seg, &model);
                for r in [index, 0, len] {
                    if r >= model.len() {
                        continue;
                    }
                    {
                        let mut d = seg.find_mut::<D>("d").unwrap().unwrap();
                        let got = d.remove_with(r, |v| v.to_vec());
                        assert_eq!(got, model.remove(r));
                    }
                    check(&mut seg, &model);
                }
            }
        }
    }
}

#[test]
fn zero_sized_elements_insert_and_remove_at_every_index() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("z", Deque::<()>::new()).unwrap();
    let mut d = seg.find_mut::<Deque<()>>("z").unwrap().unwrap();
    for _ in 0..5 {
        d.push_back(()).unwrap();
        d.pop_front();
    }
    for i in 0..20 {
        d.insert(i / 2, ()).unwrap();
    }
    assert_eq!(d.len(), 20);
    assert!(d.insert(21, ()).is_err());
    for i in (0..20).rev() {
        assert_eq!(d.remove(i / 2), Some(()));
    }
    assert!(d.is_empty());
    assert_eq!(d.remove(0), None);
    let copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    assert!(copy.find::<Deque<()>>("z").unwrap().is_some());
}

/// An iterator that panics after `n` items: the source of a `Vec` element being built.
struct Fuse(u64);

impl Iterator for Fuse {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        if self.0 == 0 {
            panic!("a source that panics");
        }
        self.0 -= 1;
        Some(self.0)
    }
}

/// Building the inserted element panics after the elements from `index` on moved one
/// slot back: the deque must keep them (the doc's "on error the deque is as it was";
/// std's `VecDeque::insert` cannot lose elements), and stay a deque a copy accepts.
#[test]
fn a_source_that_panics_while_inserting_loses_no_elements() {
    for head in [0, 5] {
        let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
        let model = wrapped(&mut seg, head, 6);
        {
            let mut d = seg.find_mut::<D>("d").unwrap().unwrap();
            let r = catch_unwind(AssertUnwindSafe(|| {
                let _ = d.insert(2, Fuse(3));
            }));
            assert!(r.is_err());
        }
        check(&mut seg, &model);
    }
}

/// The same panic's leftovers must at least be a deque a copy accepts.
#[test]
fn a_source_that_panics_while_inserting_leaves_a_deque_a_copy_accepts() {
    for head in [0, 5] {
        let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
        let _ = wrapped(&mut seg, head, 6);
        let len = {
            let mut d = seg.find_mut::<D>("d").unwrap().unwrap();
            let _ = catch_unwind(AssertUnwindSafe(|| {
                let _ = d.insert(2, Fuse(3));
            }));
            d.len()
        };
        let copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
        let d = copy.find::<D>("d");
        assert!(matches!(d, Ok(Some(_))), "the copy refuses: {:?}", d.err());
        assert_eq!(d.unwrap().unwrap().len(), len);
        // And in place, it goes on working.
        let mut d = seg.find_mut::<D>("d").unwrap().unwrap();
        for i in 0..10 {
            d.insert(i % (d.len() + 1), [i as u64]).unwrap();
        }
        while d.remove_with(0, |_| ()).is_some() {}
    }
}

/// `remove_with` whose closure panics: nothing is removed.
#[test]
fn a_remove_with_closure_that_panics_removes_nothing() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    let model = wrapped(&mut seg, 6, 5);
    {
        let mut d = seg.find_mut::<D>("d").unwrap().unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            d.remove_with(1, |_| panic!("in remove_with"));
        }));
        assert!(r.is_err());
    }
    check(&mut seg, &model);
}

/// The same for `Vec::insert` (`containers/src/vec/raw.rs`, `insert`): the tail moved up
/// and uncounted while the element is built.
#[test]
fn a_source_that_panics_while_inserting_into_a_vec_loses_no_elements() {
    use shmkit_containers::VecExt;
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("v", Vec::<Vec<u64>>::new()).unwrap();
    let mut v = seg.find_mut::<Vec<Vec<u64>>>("v").unwrap().unwrap();
    for i in 0..6u64 {
        v.push([i]).unwrap();
    }
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _ = v.insert(2, Fuse(3));
    }));
    assert!(r.is_err());
    assert_eq!(v.len(), 6, "elements 2..6 were lost");
}
