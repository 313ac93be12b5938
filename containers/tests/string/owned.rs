//! One owner per block for boxes, a shared tag and trust epochs for `Arc`s, also in forged
//! bytes: a writable mapping that did not write a segment lends no box whose block names
//! another owner, no box, vector or `Arc` that takes another kind's block, and no `Arc` of
//! an older epoch to a block made since; and `Arc`s from before the epoch never give their
//! counts back, so two of them in two objects, whose forged count says 1, never free the
//! value under each other (under Miri, a read after such a free is reported).

use shmkit_containers::{Arc, ArcExt, Box, BoxExt, Vec, VecExt, Weak, WeakExt};
use shmkit_runtime::sync::Mutex;
use shmkit_runtime::{Error, ManagedHeapMemory, ShmSafe};
use shmkit_test_support as support;

/// An `Arc` that objects of a mapping can share through `&`.
type Shared = Mutex<Arc<Vec<u64>>>;

/// The boxes of [`segment`]: as large as an `Arc<u64>`'s block, so that only their tags
/// tell the two apart.
type Boxed = Box<[u64; 3]>;

/// Bytes that read as an `Arc`'s counts (one `Arc`), first in box "a" and vector "v", so
/// that only the tags tell their blocks from an `Arc`'s.
const COUNTS: u64 = 1 | 1 << 32;

/// Where an `Arc`'s value lies after the counts its pointer aims at.
const VALUE: usize = 16;

fn offset(seg: &ManagedHeapMemory, p: *const impl Sized) -> usize {
    p.addr() - seg.base_address().as_ptr().addr()
}

/// Aims the pointer at offset `at` (a box's, a handle's, a vector's) at offset `target`.
fn aim(seg: &mut ManagedHeapMemory, at: usize, target: usize) {
    support::corrupt(seg, at, &(target as isize - at as isize).to_ne_bytes());
}

/// What a writable copy of `seg` says when `name` is looked up as `T`.
fn lookup<T: ShmSafe>(seg: &mut ManagedHeapMemory, name: &str) -> Result<(), Error> {
    let copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    copy.find::<T>(name).map(|found| assert!(found.is_some()))
}

/// The field and expectation of a refusal.
fn refused(result: Result<(), Error>) -> String {
    match result {
        Err(Error::InvalidValue {
            field, expected, ..
        }) => format!("{field}: {expected}"),
        other => panic!("not refused: {other:?}"),
    }
}

/// Offsets in the segment of [`segment`]: of its objects' pointers and of what they aim
/// at (a box's value, a vector's first element, an `Arc`'s counts).
struct At {
    a_value: usize,
    b: usize,
    v: usize,
    v_elements: usize,
    x: usize,
    x_shared: usize,
    y_shared: usize,
    n: usize,
}

/// A heap segment holding the boxes "a" and "b" ([`Boxed`]: [`COUNTS`] and 8s), the
/// vector "v" ([COUNTS, 2, 3]), the `Arc<u64>` "x" (11), the `Arc<u32>` "y" (12) and the
/// plain `u64` "n".
fn segment() -> (ManagedHeapMemory, At) {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    for (name, value) in [("a", COUNTS), ("b", 8)] {
        seg.construct(name, Boxed::new()).unwrap();
        let mut b = seg.find_mut::<Boxed>(name).unwrap().unwrap();
        b.insert([value; 3]).unwrap();
    }
    seg.construct("v", Vec::<u64>::new()).unwrap();
    let mut v = seg.find_mut::<Vec<u64>>("v").unwrap().unwrap();
    v.extend([COUNTS, 2, 3]).unwrap();
    seg.construct("x", Arc::<u64>::new()).unwrap();
    let mut x = seg.find_mut::<Arc<u64>>("x").unwrap().unwrap();
    x.insert(11).unwrap();
    seg.construct("y", Arc::<u32>::new()).unwrap();
    let mut y = seg.find_mut::<Arc<u32>>("y").unwrap().unwrap();
    y.insert(12).unwrap();
    seg.construct("n", 5u64).unwrap();
    let a = seg.find::<Boxed>("a").unwrap().unwrap();
    let v = seg.find::<Vec<u64>>("v").unwrap().unwrap();
    let x = seg.find::<Arc<u64>>("x").unwrap().unwrap();
    let y = seg.find::<Arc<u32>>("y").unwrap().unwrap();
    let at = At {
        a_value: offset(&seg, a.get().unwrap()),
        b: offset(&seg, seg.find::<Boxed>("b").unwrap().unwrap()),
        v: offset(&seg, v),
        v_elements: offset(&seg, v.as_ptr()),
        x: offset(&seg, x),
        x_shared: offset(&seg, x.get().unwrap()) - VALUE,
        y_shared: offset(&seg, y.get().unwrap()) - VALUE,
        n: offset(&seg, seg.find::<u64>("n").unwrap().unwrap()),
    };
    (seg, at)
}

#[test]
fn two_boxes_in_two_objects_never_share_a_block() {
    let (mut seg, at) = segment();
    aim(&mut seg, at.b, at.a_value);
    let why = refused(lookup::<Boxed>(&mut seg, "b"));
    assert!(why.starts_with("ptr") && why.contains("one owner"), "{why}");
    // The genuine owner is still lent.
    lookup::<Boxed>(&mut seg, "a").unwrap();
}

#[test]
fn boxes_vectors_and_arcs_never_take_each_others_blocks() {
    let (owner, shared) = ("as its one owner", "handles of its kind share");
    type Case = (&'static str, fn(&At) -> (usize, usize), &'static str);
    let cases: [Case; 6] = [
        (
            "a box, a vector's buffer",
            |at| (at.b, at.v_elements),
            owner,
        ),
        ("a box, an Arc's block", |at| (at.b, at.x_shared), owner),
        ("a vector, an Arc's block", |at| (at.v, at.x_shared), owner),
        ("an Arc, a box's block", |at| (at.x, at.a_value), shared),
        (
            "an Arc, a vector's buffer",
            |at| (at.x, at.v_elements),
            shared,
        ),
        (
            "an Arc<u64>, an Arc<u32>'s block",
            |at| (at.x, at.y_shared),
            shared,
        ),
    ];
    for (case, pointers, expected) in cases {
        let (mut seg, at) = segment();
        let (pointer, target) = pointers(&at);
        aim(&mut seg, pointer, target);
        let found = if pointer == at.v {
            // One element, which the block has room for (its capacity and length).
            support::corrupt(&mut seg, at.v + 8, &[1u64.to_ne_bytes(); 2].concat());
            lookup::<Vec<u64>>(&mut seg, "v")
        } else if pointer == at.x {
            lookup::<Arc<u64>>(&mut seg, "x")
        } else {
            lookup::<Boxed>(&mut seg, "b")
        };
        let why = refused(found);
        assert!(why.contains(expected), "{case}: {why}");
    }
}

#[test]
fn a_box_cannot_claim_an_objects_block_even_with_a_tag_naming_it() {
    let (mut seg, at) = segment();
    let tag = 0x5EA1u64 << 48 | ((at.b as u64).wrapping_sub(at.n as u64) & ((1 << 48) - 1));
    support::corrupt(&mut seg, at.n, &tag.to_ne_bytes());
    aim(&mut seg, at.b, at.n + 8);
    let why = refused(lookup::<Boxed>(&mut seg, "b"));
    assert!(why.contains("start of a block of its own"), "{why}");
}

/// Boxes moved in a writable copy (a vector of boxes grown, values swapped between boxes)
/// name their new places, so that a copy of the copy lends them again; and everything is
/// freed.
#[test]
fn boxes_moved_in_a_writable_copy_keep_their_blocks() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("boxes", Vec::<Box<u64>>::new()).unwrap();
    let mut boxes = seg.find_mut::<Vec<Box<u64>>>("boxes").unwrap().unwrap();
    for i in 0..3 {
        boxes.push(Some(i)).unwrap();
    }
    let mut copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    let mut boxes = copy.find_mut::<Vec<Box<u64>>>("boxes").unwrap().unwrap();
    boxes.reserve(100).unwrap();
    let mut all = boxes.iter_mut();
    let (mut first, mut last) = (all.next().unwrap(), all.last().unwrap());
    first.swap(&mut last).unwrap();
    let again = ManagedHeapMemory::from_image(copy.image()).unwrap();
    let boxes = again.find::<Vec<Box<u64>>>("boxes").unwrap().unwrap();
    let values: std::vec::Vec<u64> = boxes.iter().map(|b| *b.get().unwrap()).collect();
    assert_eq!(values, [2, 1, 0]);
    assert!(copy.destroy::<Vec<Box<u64>>>("boxes").unwrap());
    assert!(copy.all_memory_deallocated());
}

/// A segment holding the `Mutex<Arc<Vec<u64>>>`s "x" and "y", sharing [1, 2, 3], whose
/// counts are forged to one `Arc` and no `Weak`; and an empty one, "z".
fn twins() -> ManagedHeapMemory {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    let x = seg.construct("x", Shared::new(Arc::new())).unwrap();
    let y = seg.construct("y", Shared::new(Arc::new())).unwrap();
    seg.construct("z", Shared::new(Arc::new())).unwrap();
    let (mut x, mut y) = (x.lock().unwrap(), y.lock().unwrap());
    x.insert([1, 2, 3]).unwrap();
    y.share(&x).unwrap();
    assert_eq!(y.strong_count(), 2);
    let counts = offset(&seg, x.get().unwrap()) - VALUE;
    drop((x, y));
    support::corrupt(&mut seg, counts, &(1u64 | 1 << 32).to_ne_bytes());
    seg
}

/// Two `Arc`s in two objects of a forged file share a value whose count says 1: each
/// object alone is fine, so both are lent. Dropping one must not free the value the other
/// still reads (had it, the next value made would take the block and the vector's buffer,
/// and the read below would see it, or under Miri be reported as undefined behaviour);
/// dropping both leaks the value and leaves the segment sound.
#[test]
fn arcs_in_two_objects_with_a_forged_count_never_free_under_each_other() {
    let mut seg = twins();
    let mut copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    let find = |name| copy.find::<Shared>(name).unwrap().unwrap();
    let (x, y, z) = (find("x"), find("y"), find("z"));
    let y = y.lock().unwrap();
    let read = y.get().unwrap();
    x.lock().unwrap().clear();
    z.lock().unwrap().insert([9, 9, 9]).unwrap();
    assert_eq!(read.as_slice(), [1, 2, 3]);
    assert_eq!(y.strong_count(), 1);
    drop(y);
    for name in ["x", "y", "z"] {
        assert!(copy.destroy::<Shared>(name).unwrap());
    }
    copy.check().unwrap();
    // The value [1, 2, 3] leaked (its block and the vector's buffer); [9, 9, 9] did not.
    assert!(!copy.all_memory_deallocated());
}

/// Handles made after a cold open (here: a copy of an image) are counted and freed as
/// usual, also those of values from before it; the handles from before it read and share
/// their values, but never give their counts back (a leak), and lend no `&mut`. In the
/// segment that made them, the same handles are current, and free everything.
#[test]
fn current_handles_free_as_usual_old_ones_leak_safely() {
    type WeakOf = Mutex<Weak<Vec<u64>>>;
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    for name in ["x", "c", "n", "m"] {
        seg.construct(name, Shared::new(Arc::new())).unwrap();
    }
    for name in ["w", "cw"] {
        seg.construct(name, WeakOf::new(Weak::new())).unwrap();
    }
    let solo = seg
        .construct("solo", Mutex::new(Arc::<u64>::new()))
        .unwrap();
    solo.lock().unwrap().insert(4).unwrap();
    let x = seg.find::<Shared>("x").unwrap().unwrap();
    x.lock().unwrap().insert([1, 2, 3]).unwrap();
    let w = seg.find::<WeakOf>("w").unwrap().unwrap();
    w.lock()
        .unwrap()
        .downgrade_from(&x.lock().unwrap())
        .unwrap();

    let copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    {
        let find = |name| copy.find::<Shared>(name).unwrap().unwrap().lock().unwrap();
        let (mut x, mut c, mut n, mut m) = (find("x"), find("c"), find("n"), find("m"));
        let find_weak = |name| copy.find::<WeakOf>(name).unwrap().unwrap().lock().unwrap();
        let (mut w, mut cw) = (find_weak("w"), find_weak("cw"));
        let solo = copy.find::<Mutex<Arc<u64>>>("solo").unwrap().unwrap();
        let mut solo = solo.lock().unwrap();
        let free = copy.free_memory();
        // Alone, says the count; but an old handle cannot know the count counts it.
        assert!(solo.strong_count() == 1 && solo.value_mut().is_none());
        // Current handles of an old value: counted up and down.
        c.share(&x).unwrap();
        cw.downgrade_from(&c).unwrap();
        assert_eq!((x.strong_count(), x.weak_count()), (2, 2));
        c.clear();
        cw.clear();
        assert_eq!((x.strong_count(), x.weak_count()), (1, 1));
        // A new value: lent mutably while alone, freed with its last handle.
        n.insert([4, 5]).unwrap();
        m.share(&n).unwrap();
        n.clear();
        m.value_mut().unwrap().push(6).unwrap();
        assert_eq!(m.get().unwrap().as_slice(), [4, 5, 6]);
        m.clear();
        assert_eq!(copy.free_memory(), free);
        // Old handles leak: the value stays for the old `Weak`, which upgrades to it.
        x.clear();
        solo.clear();
        assert_eq!(w.strong_count(), 1);
        c.upgrade_from(&w).unwrap();
        assert_eq!(c.get().unwrap().as_slice(), [1, 2, 3]);
        c.clear();
        w.clear();
        assert_eq!(copy.free_memory(), free);
    }
    copy.check().unwrap();

    for name in ["x", "c", "n", "m"] {
        assert!(seg.destroy::<Shared>(name).unwrap());
    }
    for name in ["w", "cw"] {
        assert!(seg.destroy::<WeakOf>(name).unwrap());
    }
    assert!(seg.destroy::<Mutex<Arc<u64>>>("solo").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// A handle from before the epoch may not point at a block made since: the block's count
/// would not know it. Here an old handle aims at a block that was free in the image and
/// holds a new value by the time the handle is looked up.
#[test]
fn an_old_handle_cannot_join_a_block_made_since() {
    type Of = Mutex<Arc<u64>>;
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    for name in ["old", "gone", "new"] {
        seg.construct(name, Of::new(Arc::new())).unwrap();
    }
    let (handle, block) = {
        let old = seg.find::<Of>("old").unwrap().unwrap().lock().unwrap();
        let mut gone = seg.find::<Of>("gone").unwrap().unwrap().lock().unwrap();
        gone.insert(1).unwrap();
        let block = offset(&seg, gone.get().unwrap()) - VALUE;
        gone.clear();
        (offset(&seg, &*old as *const Arc<u64>), block)
    };
    aim(&mut seg, handle, block);
    let copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    let mut new = copy.find::<Of>("new").unwrap().unwrap().lock().unwrap();
    new.insert(2).unwrap();
    let reused = offset(&copy, new.get().unwrap()) - VALUE;
    assert_eq!(reused, block, "the new value takes the free block");
    let why = match copy.find::<Of>("old") {
        Err(Error::InvalidValue { expected, .. }) => expected,
        other => panic!("not refused: {other:?}"),
    };
    assert!(why.contains("before the segment's trust epoch"), "{why}");
    assert!(new.value_mut().is_some());
}
