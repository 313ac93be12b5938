//! Random operation sequences on segment deques and on std deques side by side: after
//! every step the elements must be the same, whichever way they are read. Pushes at both
//! ends make the rings wrap, and growth of several deques in one segment interleaves.

use std::collections::VecDeque;

use shmkit_containers::{Deque, DequeExt, InsertError};
use shmkit_runtime::{ManagedHeapMemory, ShmMut};
use shmkit_test_support::Rng;

/// Operations per sequence: thousands natively, fewer under Miri.
pub const OPS: usize = if cfg!(miri) { 300 } else { 6000 };

/// Seeds of the heap sequences (fixed, so a failure is replayed as it happened).
const SEEDS: [u64; 3] = [0x5eed, 0xdead_beef, 42];

/// Checks `d` against `model`: both ways round, by index, as slices, the ends.
pub fn assert_same(d: &Deque<u64>, model: &VecDeque<u64>, step: usize) {
    assert!(d.iter().eq(model.iter()), "step {step}: {d:?} vs {model:?}");
    assert!(
        d.iter().rev().eq(model.iter().rev()),
        "step {step}: backwards"
    );
    let (a, b) = d.as_slices();
    assert!(a.iter().chain(b).eq(model.iter()), "step {step}: slices");
    assert!(b.is_empty() || a.len() + b.len() == d.len());
    assert_eq!(
        (d.len(), d.is_empty(), d.front(), d.back()),
        (model.len(), model.is_empty(), model.front(), model.back()),
        "step {step}"
    );
    assert!(d.capacity() >= d.len());
    for i in [0, d.len() / 2, d.len().saturating_sub(1), d.len()] {
        assert_eq!(d.get(i), model.get(i), "step {step}: [{i}]");
    }
}

/// Runs `ops` random operations on `deques` and on std models of them; returns how many
/// steps found a ring that wraps.
pub fn run<P: DequeExt<u64>>(deques: &mut [P], seed: u64, ops: usize) -> usize {
    let mut rng = Rng::new(seed);
    let mut models: Vec<VecDeque<u64>> =
        deques.iter().map(|d| d.iter().copied().collect()).collect();
    let mut wrapped = 0;
    for step in 0..ops {
        let which = rng.range(0, deques.len() as u64) as usize;
        let (d, model) = (&mut deques[which], &mut models[which]);
        let len = model.len();
        let index = rng.range(0, len as u64 + 2) as usize;
        let x = rng.range(0, 40);
        match rng.range(0, 27) {
            0..=3 => {
                d.push_back(x).unwrap();
                model.push_back(x);
            }
            4..=7 => {
                d.push_front(x).unwrap();
                model.push_front(x);
            }
            8 => assert_eq!(d.pop_front(), model.pop_front()),
            9 => assert_eq!(d.pop_back(), model.pop_back()),
            10 => assert_eq!(d.pop_front_with(|e| *e), model.pop_front()),
            11 => assert_eq!(d.pop_back_with(|e| *e), model.pop_back()),
            12 => match d.element_mut(index) {
                Some(mut e) => {
                    *e += x;
                    model[index] += x;
                }
                None => assert!(index >= len),
            },
            13 => {
                for (mut e, m) in d.iter_mut().rev().zip(model.iter_mut().rev()) {
                    *e ^= x;
                    *m ^= x;
                }
                if let (Some(mut e), Some(m)) = (d.front_mut(), model.front_mut()) {
                    *e += 1;
                    *m += 1;
                }
                if let (Some(mut e), Some(m)) = (d.back_mut(), model.back_mut()) {
                    *e += 2;
                    *m += 2;
                }
            }
            14 => {
                d.truncate(index);
                model.truncate(index);
            }
            15 => {
                let more = rng.range(0, 64) as usize;
                d.reserve(more).unwrap();
                assert!(d.capacity() >= len + more);
            }
            16 => {
                d.shrink_to_fit().unwrap();
                assert!(d.capacity() >= len && (len > 0 || d.capacity() == 0));
            }
            17 => {
                let items = (0..rng.range(0, 12)).map(|i| i + x);
                d.extend(items.clone()).unwrap();
                model.extend(items);
            }
            18 => {
                let m = rng.range(2, 6);
                d.retain(|e| e % m != 0);
                model.retain(|e| e % m != 0);
            }
            19 => {
                let slice = d.make_contiguous().get_mut_slice();
                assert_eq!(slice, model.make_contiguous());
                if let Some(first) = slice.first_mut() {
                    *first = x;
                    model[0] = x;
                }
                assert!(d.as_slices().1.is_empty());
            }
            20 => {
                let (start, end) = (rng.range(0, len as u64 + 2) as usize, index);
                match d.range(start..end) {
                    Some(r) => assert!(r.eq(model.range(start..end))),
                    None => assert!(start > end || end > len),
                }
                assert_eq!(
                    d.range(start..).map(|r| r.len()),
                    (start <= len).then(|| len - start)
                );
                assert_eq!(d.contains(&x), model.contains(&x));
                if index < len {
                    assert_eq!(d[index], model[index]);
                }
            }
            21 => {
                let (a, b) = d.as_mut_slices();
                let (ma, mb) = model.as_mut_slices();
                // Different split points, the same elements: change them in order.
                for (e, m) in a.iter_mut().chain(b).zip(ma.iter_mut().chain(mb)) {
                    *e = e.wrapping_mul(3);
                    *m = m.wrapping_mul(3);
                }
            }
            22 => match d.insert(index, x) {
                Ok(()) => model.insert(index, x),
                Err(e) => {
                    assert!(index > len);
                    assert_eq!(e, InsertError::OutOfBounds { index, len });
                }
            },
            23 => assert_eq!(d.remove(index), model.remove(index)),
            24 => assert_eq!(d.remove_with(index, |e| *e), model.remove(index)),
            _ => {
                if x < 4 {
                    d.clear();
                    model.clear();
                }
            }
        }
        if !d.as_slices().1.is_empty() {
            wrapped += 1;
        }
        for (d, model) in deques.iter().zip(&models) {
            assert_same(d, model, step);
        }
    }
    wrapped
}

#[test]
fn random_operations_match_std_on_a_heap_segment() {
    for seed in SEEDS {
        let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
        seg.construct_array_with("d", 3, |_| Deque::<u64>::new())
            .unwrap();
        {
            let mut all = seg.find_slice_mut::<Deque<u64>>("d").unwrap().unwrap();
            let mut deques: Vec<ShmMut<'_, Deque<u64>>> = all.iter_mut().collect();
            let wrapped = run(&mut deques, seed, OPS);
            assert!(
                wrapped > OPS / 10,
                "seed {seed:#x}: the rings wrapped {wrapped} times only"
            );
        }
        assert!(seg.destroy::<Deque<u64>>("d").unwrap());
        assert!(seg.all_memory_deallocated(), "seed {seed:#x}");
    }
}

/// Deques compare, order and hash as std's do, and index and print like them.
#[test]
fn comparisons_hashing_and_debug_follow_std() {
    use std::hash::{BuildHasher, RandomState};

    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct_array_with("d", 2, |_| Deque::<u32>::new())
        .unwrap();
    let mut all = seg.find_slice_mut::<Deque<u32>>("d").unwrap().unwrap();
    let mut it = all.iter_mut();
    let (mut a, mut b) = (it.next().unwrap(), it.next().unwrap());
    // The same elements, split differently in the two rings.
    a.extend([1, 2, 3]).unwrap();
    b.extend([3]).unwrap();
    b.push_front(2).unwrap();
    b.push_front(1).unwrap();
    assert!(!b.as_slices().1.is_empty() || !b.as_slices().0.is_empty());
    assert_eq!(*a, *b);
    assert_eq!(*a, [1, 2, 3]);
    assert_eq!(*a, &[1, 2, 3][..]);
    let hasher = RandomState::new();
    let std: VecDeque<u32> = [1, 2, 3].into();
    assert_eq!(hasher.hash_one(&*a), hasher.hash_one(&*b));
    assert_eq!(hasher.hash_one(&*a), hasher.hash_one(&std));
    b.push_back(0).unwrap();
    assert!(*a < *b);
    assert_eq!(a.cmp(&b), std::cmp::Ordering::Less);
    assert_eq!(format!("{:?}", *b), "[1, 2, 3, 0]");
    assert_eq!((&*a).into_iter().sum::<u32>(), 6);
    assert_eq!((a[1], a.get(3), a.contains(&3)), (2, None, true));
    assert_eq!(Deque::<u32>::default(), Deque::new());
    let (two, one) = (2, 1);
    assert!(a.range(two..one).is_none() && a.range(..=3).is_none() && a.range(1..=2).is_some());
}

/// `Index` panics out of bounds, as std's does, naming the index.
#[test]
#[should_panic(expected = "index 3 is out of bounds for a Deque of 3 elements")]
fn indexing_out_of_bounds_panics() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("d", Deque::<u32>::new()).unwrap();
    let mut d = seg.find_mut::<Deque<u32>>("d").unwrap().unwrap();
    d.extend([1, 2, 3]).unwrap();
    let _ = d[3];
}

/// Zero-sized elements are counted, never allocated.
#[test]
fn zero_sized_elements_allocate_nothing() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("units", Deque::<()>::new()).unwrap();
    let free = seg.free_memory();
    let mut units = seg.find_mut::<Deque<()>>("units").unwrap().unwrap();
    units.extend(std::iter::repeat_n((), 1000)).unwrap();
    units.push_front(()).unwrap();
    assert_eq!((units.len(), units.capacity()), (1001, usize::MAX));
    assert_eq!((units.pop_front(), units.pop_back()), (Some(()), Some(())));
    assert_eq!(units.iter().rev().count(), 999);
    units.retain(|_| false);
    units.shrink_to_fit().unwrap();
    assert!(units.make_contiguous().is_empty());
    assert_eq!(seg.free_memory(), free);
}
