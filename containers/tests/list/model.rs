//! Random operation sequences on segment lists and on std lists side by side: after every
//! step the elements must be the same, read from the front and from the back.

use std::collections::LinkedList;

use shmkit_containers::{List, ListExt};
use shmkit_runtime::{ManagedHeapMemory, ShmMut};
use shmkit_test_support::Rng;

/// Operations per sequence: thousands natively, fewer under Miri.
pub const OPS: usize = if cfg!(miri) { 300 } else { 6000 };

/// Seeds of the heap sequences (fixed, so a failure is replayed as it happened).
const SEEDS: [u64; 3] = [0x5eed, 0xdead_beef, 42];

/// Checks `list` against `model`: both ways round, the ends, the length.
pub fn assert_same(list: &List<u64>, model: &LinkedList<u64>, step: usize) {
    assert!(
        list.iter().eq(model.iter()),
        "step {step}: {list:?} vs {model:?}"
    );
    assert!(
        list.iter().rev().eq(model.iter().rev()),
        "step {step}: backwards"
    );
    assert_eq!(
        (list.len(), list.is_empty(), list.front(), list.back()),
        (model.len(), model.is_empty(), model.front(), model.back()),
        "step {step}"
    );
}

/// A cursor and a model of it (a vector and the cursor's index, None at the ghost) take
/// `steps` random steps side by side.
fn cursor_steps(
    list: &mut impl ListExt<u64>,
    model: &mut LinkedList<u64>,
    rng: &mut Rng,
    steps: u64,
) {
    let mut v: Vec<u64> = model.iter().copied().collect();
    let (mut cursor, mut at) = if rng.range(0, 2) == 0 {
        (list.cursor_front_mut(), (!v.is_empty()).then_some(0))
    } else {
        (list.cursor_back_mut(), v.len().checked_sub(1))
    };
    for _ in 0..steps {
        let x = rng.range(100, 200);
        match rng.range(0, 10) {
            0 | 1 => {
                cursor.move_next();
                at = match at {
                    None => (!v.is_empty()).then_some(0),
                    Some(i) => (i + 1 < v.len()).then_some(i + 1),
                };
            }
            2 => {
                cursor.move_prev();
                at = match at {
                    None => v.len().checked_sub(1),
                    Some(i) => i.checked_sub(1),
                };
            }
            3 => {
                cursor.insert_after(x).unwrap();
                v.insert(at.map_or(0, |i| i + 1), x);
            }
            4 => {
                cursor.insert_before(x).unwrap();
                match at {
                    None => v.push(x),
                    Some(i) => {
                        v.insert(i, x);
                        at = Some(i + 1);
                    }
                }
            }
            5 => {
                let expected = at.map(|i| v.remove(i));
                assert_eq!(cursor.remove_current(), expected);
                at = at.filter(|&i| i < v.len());
            }
            6 => {
                let expected = at.map(|i| v.remove(i));
                assert_eq!(cursor.remove_current_with(|e| *e), expected);
                at = at.filter(|&i| i < v.len());
            }
            7 => {
                if let (Some(mut e), Some(i)) = (cursor.current(), at) {
                    *e += x;
                    v[i] += x;
                }
            }
            8 => {
                let next = match at {
                    None => v.first(),
                    Some(i) => v.get(i + 1),
                };
                assert_eq!(cursor.peek_next().as_deref(), next);
                let prev = match at {
                    None => v.last(),
                    Some(i) => i.checked_sub(1).map(|j| &v[j]),
                };
                assert_eq!(cursor.peek_prev().as_deref(), prev);
            }
            _ => {
                assert_eq!(cursor.index(), at);
                assert_eq!(cursor.current().as_deref(), at.map(|i| &v[i]));
                assert!(cursor.as_list().iter().eq(v.iter()));
            }
        }
        assert_eq!(cursor.index(), at);
    }
    *model = v.into_iter().collect();
}

/// Runs `ops` random operations on `lists` (several lists in one segment, so that their
/// nodes interleave) and on std models of them.
pub fn run<P: ListExt<u64>>(lists: &mut [P], seed: u64, ops: usize) {
    let mut rng = Rng::new(seed);
    let mut models: Vec<LinkedList<u64>> =
        lists.iter().map(|l| l.iter().copied().collect()).collect();
    for step in 0..ops {
        let which = rng.range(0, lists.len() as u64) as usize;
        let x = rng.range(0, 40);
        let (list, model) = (&mut lists[which], &mut models[which]);
        match rng.range(0, 20) {
            0..=3 => {
                list.push_back(x).unwrap();
                model.push_back(x);
            }
            4..=6 => {
                list.push_front(x).unwrap();
                model.push_front(x);
            }
            7 => assert_eq!(list.pop_front(), model.pop_front()),
            8 => assert_eq!(list.pop_back(), model.pop_back()),
            9 => assert_eq!(list.pop_front_with(|e| *e), model.pop_front()),
            10 => assert_eq!(list.pop_back_with(|e| *e), model.pop_back()),
            11 => {
                if let (Some(mut e), Some(m)) = (list.front_mut(), model.front_mut()) {
                    *e += x;
                    *m += x;
                }
                if let (Some(mut e), Some(m)) = (list.back_mut(), model.back_mut()) {
                    *e ^= x;
                    *m ^= x;
                }
            }
            12 => {
                // Guards from both ends, as a double-ended iterator hands them out.
                let len = model.len();
                let mut guards = list.iter_mut();
                assert_eq!(guards.len(), len);
                let (mut lo, mut hi) = (0, len);
                for i in 0..len {
                    let (at, guard) = if i % 2 == 0 {
                        lo += 1;
                        (lo - 1, guards.next())
                    } else {
                        hi -= 1;
                        (hi, guards.next_back())
                    };
                    *guard.unwrap() ^= x + at as u64;
                }
                assert!(guards.next().is_none() && guards.next_back().is_none());
                for (at, m) in model.iter_mut().enumerate() {
                    *m ^= x + at as u64;
                }
            }
            13 => {
                let m = rng.range(2, 6);
                list.retain(|e| e % m != 0);
                *model = model.iter().copied().filter(|e| e % m != 0).collect();
            }
            14 => {
                let items = (0..rng.range(0, 12)).map(|i| i + x);
                list.extend(items.clone()).unwrap();
                model.extend(items);
            }
            15 => {
                let other = rng.range(0, lists.len() as u64) as usize;
                if other != which {
                    let (a, b) = two(lists, which, other);
                    a.append(b).unwrap();
                    let mut moved = std::mem::take(&mut models[other]);
                    models[which].append(&mut moved);
                }
            }
            16 | 17 => {
                let steps = rng.range(1, 24);
                cursor_steps(list, model, &mut rng, steps);
            }
            18 => {
                assert_eq!(list.contains(&x), model.contains(&x));
            }
            _ => {
                if x < 8 {
                    list.clear();
                    model.clear();
                }
            }
        }
        for (list, model) in lists.iter().zip(&models) {
            assert_same(list, model, step);
        }
    }
}

/// Two distinct elements of `all`, mutably.
pub fn two<P>(all: &mut [P], i: usize, j: usize) -> (&mut P, &mut P) {
    if i < j {
        let (lo, hi) = all.split_at_mut(j);
        (&mut lo[i], &mut hi[0])
    } else {
        let (lo, hi) = all.split_at_mut(i);
        (&mut hi[0], &mut lo[j])
    }
}

#[test]
fn random_operations_match_std_on_a_heap_segment() {
    for seed in SEEDS {
        let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
        seg.construct_array_with("l", 3, |_| List::<u64>::new())
            .unwrap();
        {
            let mut all = seg.find_slice_mut::<List<u64>>("l").unwrap().unwrap();
            let mut lists: Vec<ShmMut<'_, List<u64>>> = all.iter_mut().collect();
            run(&mut lists, seed, OPS);
        }
        assert!(seg.destroy::<List<u64>>("l").unwrap());
        assert!(seg.all_memory_deallocated(), "seed {seed:#x}");
    }
}

/// Lists compare, order and hash as std's do, and print like them.
#[test]
fn comparisons_hashing_and_debug_follow_std() {
    use std::hash::{BuildHasher, RandomState};

    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct_array_with("l", 2, |_| List::<u32>::new())
        .unwrap();
    let mut all = seg.find_slice_mut::<List<u32>>("l").unwrap().unwrap();
    let mut it = all.iter_mut();
    let (mut a, mut b) = (it.next().unwrap(), it.next().unwrap());
    a.extend([1, 2, 3]).unwrap();
    b.push_front(3).unwrap();
    b.push_front(2).unwrap();
    b.push_front(1).unwrap();
    assert_eq!(*a, *b);
    assert_eq!(*a, [1, 2, 3]);
    assert_eq!(*a, [1, 2, 3][..]);
    let hasher = RandomState::new();
    let std: LinkedList<u32> = [1, 2, 3].into();
    assert_eq!(hasher.hash_one(&*a), hasher.hash_one(&std));
    b.push_back(0).unwrap();
    assert!(*a < *b);
    assert_eq!(a.cmp(&b), std::cmp::Ordering::Less);
    assert_eq!(format!("{:?}", *b), "[1, 2, 3, 0]");
    assert_eq!((&*a).into_iter().sum::<u32>(), 6);
    assert_eq!(List::<u32>::default(), List::new());
    let mut both = a.iter();
    assert_eq!(
        (both.next_back(), both.clone().count(), both.len()),
        (Some(&3), 2, 2)
    );
}
