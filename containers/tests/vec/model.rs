//! Random operation sequences on segment vectors and on std vectors side by side: after
//! every step the elements must be the same.

use shmkit_containers::{InsertError, Vec, VecExt};
use shmkit_runtime::{ManagedHeapMemory, ShmMut};
use shmkit_test_support::Rng;

/// Operations per sequence: thousands natively, fewer under Miri.
pub const OPS: usize = if cfg!(miri) { 300 } else { 6000 };

/// Seeds of the heap sequences (fixed, so a failure is replayed as it happened).
const SEEDS: [u64; 3] = [0x5eed, 0xdead_beef, 42];

/// Runs `ops` random operations on `vs` (several vectors in one segment, so that their
/// growth interleaves and not all of it is in place) and on std models of them.
pub fn run<P: VecExt<u64>>(vs: &mut [P], seed: u64, ops: usize) {
    let mut rng = Rng::new(seed);
    let mut models: std::vec::Vec<std::vec::Vec<u64>> = vs.iter().map(|v| v.to_vec()).collect();
    for step in 0..ops {
        let which = rng.range(0, vs.len() as u64) as usize;
        let (v, model) = (&mut vs[which], &mut models[which]);
        let len = model.len();
        // Up to one past the end, so that out-of-bounds indices come up too.
        let index = rng.range(0, len as u64 + 2) as usize;
        let x = rng.range(0, 40);
        match rng.range(0, 26) {
            0..=5 => {
                v.push(x).unwrap();
                model.push(x);
            }
            6 => assert_eq!(v.pop(), model.pop()),
            7 => match v.insert(index, x) {
                Ok(()) => model.insert(index, x),
                Err(e) => {
                    assert!(index > len);
                    assert_eq!(e, InsertError::OutOfBounds { index, len });
                }
            },
            8 => assert_eq!(v.remove(index), (index < len).then(|| model.remove(index))),
            9 => assert_eq!(
                v.swap_remove(index),
                (index < len).then(|| model.swap_remove(index))
            ),
            10 => {
                v.truncate(index);
                model.truncate(index);
            }
            11 => {
                let more = rng.range(0, 64) as usize;
                v.reserve(more).unwrap();
                assert!(v.capacity() >= len + more);
            }
            12 => {
                v.shrink_to_fit().unwrap();
                assert!(v.capacity() >= len);
            }
            13 => {
                let src: std::vec::Vec<u64> = (0..rng.range(0, 24)).map(|i| i * x).collect();
                v.extend_from_slice(&src).unwrap();
                model.extend_from_slice(&src);
            }
            14 => {
                let items = (0..rng.range(0, 12)).map(|i| i + x);
                v.extend(items.clone()).unwrap();
                model.extend(items);
            }
            15 => {
                let m = rng.range(2, 6);
                v.retain(|e| e % m != 0);
                model.retain(|e| e % m != 0);
            }
            16 => {
                v.dedup();
                model.dedup();
            }
            17 => {
                if x % 2 == 0 {
                    v.sort();
                    model.sort();
                } else {
                    v.sort_by(|a, b| b.cmp(a));
                    model.sort_by(|a, b| b.cmp(a));
                }
            }
            18 => match v.element_mut(index) {
                Some(mut e) => {
                    *e += x;
                    model[index] += x;
                }
                None => assert!(index >= len),
            },
            19 => assert_eq!(v.pop_with(|e| *e), model.pop()),
            20 => assert_eq!(
                v.remove_with(index, |e| *e),
                (index < len).then(|| model.remove(index))
            ),
            21 => {
                for (mut e, m) in v.iter_mut().zip(model.iter_mut()) {
                    *e ^= x;
                    *m ^= x;
                }
                if let (Some(mut first), Some(m)) = (v.first_mut(), model.first_mut()) {
                    *first += 1;
                    *m += 1;
                }
                if let (Some(mut last), Some(m)) = (v.last_mut(), model.last_mut()) {
                    *last += 2;
                    *m += 2;
                }
            }
            22 => {
                if len > 1 {
                    v.as_mut_slice().swap(0, len - 1);
                    model.swap(0, len - 1);
                }
            }
            23 | 24 => {
                // A range that may reach one past the end, taken whole, in part from
                // either end, or not at all before the iterator drops.
                let end = rng.range(index as u64, len as u64 + 2) as usize;
                match v.drain(index..end) {
                    Some(mut drain) => {
                        let mut expected = model.drain(index..end);
                        assert_eq!(drain.len(), expected.len());
                        match x % 4 {
                            0 => assert!(drain.by_ref().eq(expected.by_ref())),
                            1 => assert_eq!(drain.next(), expected.next()),
                            2 => assert_eq!(drain.next_back(), expected.next_back()),
                            _ => {}
                        }
                        assert_eq!(drain.as_slice(), expected.as_slice());
                    }
                    None => assert!(end > len, "{index}..{end} of {len}"),
                }
            }
            _ => {
                if x < 4 {
                    v.clear();
                    model.clear();
                }
            }
        }
        assert_eq!(
            v.as_slice(),
            model.as_slice(),
            "step {step} (seed {seed:#x})"
        );
        assert!(v.capacity() >= v.len());
    }
}

#[test]
fn random_operations_match_std_on_a_heap_segment() {
    for seed in SEEDS {
        let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
        seg.construct_array_with("v", 3, |_| Vec::<u64>::new())
            .unwrap();
        {
            let mut all = seg.find_slice_mut::<Vec<u64>>("v").unwrap().unwrap();
            let mut vs: std::vec::Vec<ShmMut<'_, Vec<u64>>> = all.iter_mut().collect();
            run(&mut vs, seed, OPS);
        }
        assert!(seg.destroy::<Vec<u64>>("v").unwrap());
        assert!(seg.all_memory_deallocated(), "seed {seed:#x}");
    }
}

/// Vectors compare, order and hash as their elements do, and print as a list.
#[test]
fn comparisons_hashing_and_debug_follow_the_elements() {
    use std::hash::{BuildHasher, RandomState};

    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct_array_with("v", 2, |_| Vec::<u32>::new())
        .unwrap();
    let mut all = seg.find_slice_mut::<Vec<u32>>("v").unwrap().unwrap();
    let mut it = all.iter_mut();
    let (mut a, mut b) = (it.next().unwrap(), it.next().unwrap());
    a.extend([1, 2, 3]).unwrap();
    b.extend([1, 2, 3]).unwrap();
    assert_eq!(*a, *b);
    assert_eq!(*a, [1, 2, 3]);
    assert_eq!(*a, vec![1, 2, 3]);
    assert_eq!(*a, &[1, 2, 3][..]);
    let hasher = RandomState::new();
    assert_eq!(hasher.hash_one(&*a), hasher.hash_one(&[1u32, 2, 3][..]));
    b.push(0).unwrap();
    assert!(*a < *b);
    assert_eq!(a.cmp(&b), std::cmp::Ordering::Less);
    assert_eq!(format!("{:?}", *b), "[1, 2, 3, 0]");
    assert_eq!((&*a).into_iter().sum::<u32>(), 6);
    assert_eq!((a[1], a.first(), a.contains(&3)), (2, Some(&1), true));
    assert_eq!(a.binary_search(&3), Ok(2));
    assert_eq!(Vec::<u32>::default(), Vec::new());
}

/// `writer()` appends through `io::Write`.
#[test]
fn a_byte_vector_is_written_through_io_write() {
    use std::io::Write;

    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("log", Vec::<u8>::new()).unwrap();
    let mut log = seg.find_mut::<Vec<u8>>("log").unwrap().unwrap();
    write!(log.writer(), "{} + {} = {}", 1, 2, 3).unwrap();
    log.writer().write_all(b"!").unwrap();
    log.writer().flush().unwrap();
    assert_eq!(log.as_slice(), b"1 + 2 = 3!");
}

/// Zero-sized elements are counted, never allocated.
#[test]
fn zero_sized_elements_allocate_nothing() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("units", Vec::<()>::new()).unwrap();
    let free = seg.free_memory();
    let mut units = seg.find_mut::<Vec<()>>("units").unwrap().unwrap();
    units.extend(std::iter::repeat_n((), 1000)).unwrap();
    assert_eq!((units.len(), units.capacity()), (1000, usize::MAX));
    assert_eq!(units.pop(), Some(()));
    units.shrink_to_fit().unwrap();
    assert_eq!(seg.free_memory(), free);
}
