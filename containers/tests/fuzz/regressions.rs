//! The fuzzer's findings, minimised.

use shmkit_containers::{
    Arc, ArcExt, Deque, DequeExt, HashSet, HashSetExt, String, Vec, VecExt, Weak,
};
use shmkit_runtime::{Anonymous, Error, ManagedHeapMemory};
use shmkit_test_support as support;

fn offset_of<T>(seg: &ManagedHeapMemory, value: &T) -> usize {
    (value as *const T).addr() - seg.base_address().as_ptr().addr()
}

/// Forges the vector header at `at` (pointer, length, capacity) to hold two elements far
/// outside the segment.
fn aim_outside(seg: &mut ManagedHeapMemory, at: usize) {
    let mut header = [0u8; 24];
    header[..8].copy_from_slice(&(1u64 << 40).to_ne_bytes());
    header[8..16].copy_from_slice(&2u64.to_ne_bytes());
    header[16..].copy_from_slice(&2u64.to_ne_bytes());
    support::corrupt(seg, at, &header);
}

fn refused<T: std::fmt::Debug>(r: Result<T, Error>) -> std::string::String {
    match r {
        Err(Error::InvalidValue { field, .. }) => field,
        other => panic!("not refused: {other:?}"),
    }
}

/// `destroy` dropped an object its lookup refuses: the drop of a forged `Vec<Vec<u64>>`
/// followed its pointer out of the segment (a crash, from safe code).
#[test]
fn destroy_drops_only_what_a_lookup_would_lend() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    let rows = seg.construct("rows", Vec::<Vec<u64>>::new()).unwrap();
    let at = offset_of(&seg, rows);
    seg.find_mut::<Vec<Vec<u64>>>("rows")
        .unwrap()
        .unwrap()
        .extend([0..2, 0..3])
        .unwrap();
    aim_outside(&mut seg, at);
    let mut copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    assert_eq!(refused(copy.find::<Vec<Vec<u64>>>("rows")), "ptr");
    assert_eq!(refused(copy.destroy::<Vec<Vec<u64>>>("rows")), "ptr");
}

/// As above, for an anonymous object (no lookup validates it before) destroyed by its
/// address.
#[test]
fn destroy_ptr_drops_only_valid_values() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    let anonymous = seg.construct(Anonymous, Vec::<Vec<u64>>::new()).unwrap();
    let at = offset_of(&seg, anonymous);
    aim_outside(&mut seg, at);
    let mut copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    let forged = copy
        .base_address()
        .as_ptr()
        .wrapping_add(at)
        .cast::<Vec<Vec<u64>>>();
    assert_eq!(refused(copy.destroy_ptr(forged)), "ptr");
}

/// A deque of strings that grew into a new buffer while it wrapped: the wrapped strings
/// were copied twice (to their slots under the old capacity, then under the new), and the
/// copy made last, under the old capacity, was the one their buffers' owner tags named;
/// a writable copy then refused the deque ("[3].ptr": a block that names this pointer as
/// its one owner).
#[test]
fn a_deque_grown_while_wrapped_keeps_its_elements_owners() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("deque", Deque::<String>::new()).unwrap();
    // Four elements wrap in a buffer of four; the fifth moves them into a new one (a
    // block right after the buffer keeps it from growing in place).
    for i in 0..5 {
        let mut deque = seg.find_mut::<Deque<String>>("deque").unwrap().unwrap();
        match i % 2 {
            0 => deque.push_back(format!("back {i}")).unwrap(),
            _ => deque.push_front(format!("front {i}")).unwrap(),
        }
        seg.allocate(8).unwrap();
    }
    let copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    let deque = copy.find::<Deque<String>>("deque").unwrap().unwrap();
    assert_eq!(
        deque
            .iter()
            .map(|s| s.as_str())
            .collect::<std::vec::Vec<_>>(),
        ["front 3", "front 1", "back 0", "back 2", "back 4"]
    );
}

/// A set whose count is lower than its full buckets (a crash between publishing an
/// element and counting it, or bytes from elsewhere): its iterators yielded more than
/// their `size_hint` allowed, and std's `Filter::count` panicked on that (debug builds).
#[test]
fn a_hash_set_iterates_no_more_than_it_counts() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    let set = seg.construct("set", HashSet::<u64>::new()).unwrap();
    let items = offset_of(&seg, set) + 8;
    seg.find_mut::<HashSet<u64>>("set")
        .unwrap()
        .unwrap()
        .extend([1, 2, 3])
        .unwrap();
    support::corrupt(&mut seg, items, &1u64.to_ne_bytes());
    let copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    let set = copy.find::<HashSet<u64>>("set").unwrap().unwrap();
    assert_eq!(set.len(), 1);
    assert_eq!(set.iter().filter(|&&x| x > 0).count(), 1);
    assert!(set.contains(&1) && set.contains(&2) && set.contains(&3));
}

/// Two `Arc`s of one object share a value whose count word a forged file lowered to one
/// strong count: a writable copy lent both, and clearing one dropped the value and freed
/// its block under the other (the fuzzer's case: word = 0x1_0000_0001). Closed by trust
/// epochs: handles from before a copy never give their count back.
#[test]
fn a_forged_low_count_never_frees_a_value_another_arc_reads() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct_array_with("arcs", 2, |_| Arc::<String>::new())
        .unwrap();
    let value = {
        let mut arcs = seg.find_slice_mut::<Arc<String>>("arcs").unwrap().unwrap();
        let mut it = arcs.iter_mut();
        let (mut a, mut b) = (it.next().unwrap(), it.next().unwrap());
        a.insert("shared by two").unwrap();
        b.share(&a).unwrap();
        (a.get().unwrap() as *const String).addr()
    } - seg.base_address().as_ptr().addr();
    // The count word, a few words before the value: two strong counts, one weak.
    let word = |seg: &ManagedHeapMemory, at: usize| {
        let handle = seg.handle_from_address(seg.base_address().as_ptr().wrapping_add(at));
        support::get(seg, handle.unwrap(), 8)
    };
    let counts = (1..=3)
        .map(|k| value - 8 * k)
        .find(|&at| word(&seg, at) == (2u64 | 1 << 32).to_ne_bytes())
        .expect("the count word");
    support::corrupt(&mut seg, counts, &(1u64 | 1 << 32).to_ne_bytes());
    let mut copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    let mut arcs = copy.find_slice_mut::<Arc<String>>("arcs").unwrap().unwrap();
    arcs.index(0).unwrap().clear();
    let b = arcs.index(1).unwrap();
    assert_eq!(b.get().map(|s| s.as_str()), Some("shared by two"));
}

/// A forged `Weak` aiming at a vector's buffer: validating it in a writable mapping raised
/// the "strong count" it found there (the buffer's owner tag) to keep the value while
/// checking it, and kept it raised when the value was refused: a refused lookup wrote
/// into another object, which was refused from then on (the fuzzer's case: a `Weak` aimed
/// at an object's entry, whose header it broke). Closed by the shared tags of Arc blocks,
/// checked before any count is touched.
#[test]
fn a_refused_weak_writes_nothing() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    let v = seg.construct("v", Vec::<u64>::new()).unwrap();
    let header = offset_of(&seg, v);
    let w = seg.construct("w", Weak::<String>::new()).unwrap();
    let weak = offset_of(&seg, w);
    // Elements that read as no valid string.
    seg.find_mut::<Vec<u64>>("v")
        .unwrap()
        .unwrap()
        .extend([u64::MAX; 3])
        .unwrap();
    let v = seg.find::<Vec<u64>>("v").unwrap().unwrap();
    let block = offset_of(&seg, &v[0]) - 8;
    assert!(block > header);
    support::corrupt(
        &mut seg,
        weak,
        &(block as u64).wrapping_sub(weak as u64).to_ne_bytes(),
    );
    let copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    assert!(copy.find::<Weak<String>>("w").is_err());
    assert_eq!(*copy.find::<Vec<u64>>("v").unwrap().unwrap(), [u64::MAX; 3]);
}
