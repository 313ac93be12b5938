//! `Box`: an optional value in a block of its own, built in place from any source of its
//! value, holding position-dependent values and boxes of its own type (a derived list).

use shmkit_containers::{Box, BoxExt, String, StringExt, Vec, VecExt};
use shmkit_macros::ShmSafe;
use shmkit_runtime::{AlignedBuffer, Error, ManagedExternalBuffer, ManagedHeapMemory, ShmMut};

/// A node of a list that holds a box of its own type: the fingerprint must not contain
/// itself, and dropping a long list must not recurse once per node.
#[derive(ShmSafe)]
#[shm(crate = "crate::shm")]
#[repr(C)]
pub struct Node {
    pub value: u64,
    // Spelled with the crate: the derive takes a bare `String` or `Box` for std's.
    pub name: shmkit_containers::String,
    pub next: shmkit_containers::Box<Node>,
}

/// A node holding `value` and no name nor successor (filled in place afterwards).
pub fn node(value: u64) -> Node {
    Node {
        value,
        name: String::new(),
        next: Box::new(),
    }
}

/// The values of the list from `head` on.
pub fn values(head: &Box<Node>) -> std::vec::Vec<u64> {
    std::iter::successors(head.get(), |n| n.next.get())
        .map(|n| n.value)
        .collect()
}

/// Prepends nodes `0..n` to the list in `head` one by one, each through `spare` (an empty
/// box of the same segment): the new node is built in `spare`, takes the list as its
/// successor, and moves into `head`. So the list ends up `n - 1, …, 0` followed by what it
/// held, built without recursion.
pub fn prepend(head: &mut ShmMut<'_, Box<Node>>, spare: &mut ShmMut<'_, Box<Node>>, n: u64) {
    use self::NodeFields as _;
    for i in 0..n {
        spare.insert(node(i)).unwrap();
        let mut new = spare.value_mut().unwrap();
        new.name_mut().push_str(&format!("n{i}")).unwrap();
        new.next_mut().swap(head).unwrap();
        head.swap(spare).unwrap();
    }
    assert!(spare.is_none());
}

#[test]
fn a_box_holds_nothing_or_one_value_built_in_place() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("b", Box::<Vec<u32>>::new()).unwrap();
    let mut b = seg.find_mut::<Box<Vec<u32>>>("b").unwrap().unwrap();
    assert!((b.get().is_none(), b.is_none(), b.is_some()) == (true, true, false));
    assert_eq!(format!("{:?}", *b), "None");
    b.insert(1..4).unwrap();
    assert_eq!(b.get().unwrap().as_slice(), [1, 2, 3]);
    b.value_mut().unwrap().push(4).unwrap();
    assert_eq!(format!("{:?}", *b), "Some([1, 2, 3, 4])");
    // A new value replaces the old one, which is dropped.
    b.insert(&[9][..]).unwrap();
    assert_eq!(b.get().unwrap().as_slice(), [9]);
    assert_eq!(b.take_with(|v| v.len()), Some(1));
    assert_eq!(b.take_with(|_| unreachable!("empty")), None::<()>);
    assert!(b.value_mut().is_none());
    b.insert(Vec::new()).unwrap();
    b.clear();
    b.clear();
    assert!(seg.destroy::<Box<Vec<u32>>>("b").unwrap());
    assert!(seg.all_memory_deallocated());
}

#[test]
fn plain_values_move_in_and_out() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("b", Box::<(u64, u8)>::new()).unwrap();
    let mut b = seg.find_mut::<Box<(u64, u8)>>("b").unwrap().unwrap();
    b.insert((7, 1)).unwrap();
    b.value_mut().unwrap().0 += 1;
    assert_eq!(b.get(), Some(&(8, 1)));
    assert_eq!(b.take(), Some((8, 1)));
    assert_eq!(b.take(), None);
    assert!(seg.destroy::<Box<(u64, u8)>>("b").unwrap());
    assert!(seg.all_memory_deallocated());
    // Zero-sized values take a block too, so that a full box is told from an empty one.
    seg.construct("unit", Box::<()>::new()).unwrap();
    let mut unit = seg.find_mut::<Box<()>>("unit").unwrap().unwrap();
    unit.insert(()).unwrap();
    assert_eq!(unit.get(), Some(&()));
    assert_eq!(unit.take(), Some(()));
    assert!(seg.destroy::<Box<()>>("unit").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// Boxes compare, order and hash as `Option<&T>`.
#[test]
fn boxes_compare_as_options() {
    use std::hash::{BuildHasher, RandomState};

    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct_array_with("b", 3, |_| Box::<u32>::new())
        .unwrap();
    let mut all = seg.find_slice_mut::<Box<u32>>("b").unwrap().unwrap();
    let mut it = all.iter_mut();
    let (mut a, mut b, c) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    a.insert(1).unwrap();
    b.insert(2).unwrap();
    assert!(*c < *a && *a < *b && *a != *b && *c == Box::new());
    assert_eq!(a.cmp(&b), std::cmp::Ordering::Less);
    let hasher = RandomState::new();
    assert_eq!(hasher.hash_one(&*a), hasher.hash_one(Some(&1u32)));
    b.insert(1).unwrap();
    assert_eq!(*a, *b);
    // Swapping moves the values, not the blocks' contents.
    let block = a.get().map(|v| v as *const u32);
    b.insert(5).unwrap();
    a.swap(&mut b).unwrap();
    assert_eq!((a.get(), b.get()), (Some(&5), Some(&1)));
    assert_eq!(b.get().map(|v| v as *const u32), block);
}

/// A `Vec<Box<Vec<u32>>>` built from sources: `Some(src)` builds the value, `None` is an
/// empty box, `&Box` copies one.
#[test]
fn vectors_of_boxes_are_built_from_sources() {
    let mut seg = ManagedHeapMemory::new(1 << 18).unwrap();
    seg.construct("rows", Vec::<Box<Vec<u32>>>::new()).unwrap();
    let mut rows = seg.find_mut::<Vec<Box<Vec<u32>>>>("rows").unwrap().unwrap();
    rows.push(Some(1..4)).unwrap();
    rows.push(None::<Vec<u32>>).unwrap();
    rows.extend((0..20).map(|n| Some(0..n))).unwrap();
    let copy: std::vec::Vec<Option<std::vec::Vec<u32>>> =
        rows.iter().map(|b| b.get().map(|v| v.to_vec())).collect();
    // The outer buffer grew and moved the boxes (relocated), not their blocks.
    assert_eq!(copy[0].as_deref(), Some(&[1, 2, 3][..]));
    assert_eq!(
        (copy[1].clone(), copy[21].as_ref().map(|v| v.len())),
        (None, Some(19))
    );
    // A deep copy of each box (its own block, its own vector).
    seg.construct("copies", Vec::<Box<Vec<u32>>>::new())
        .unwrap();
    let rows =
        seg.find::<Vec<Box<Vec<u32>>>>("rows").unwrap().unwrap() as *const Vec<Box<Vec<u32>>>;
    let mut copies = seg
        .find_mut::<Vec<Box<Vec<u32>>>>("copies")
        .unwrap()
        .unwrap();
    // SAFETY: "rows" is another object of the segment, not changed while `copies` is.
    copies.extend(unsafe { &*rows }).unwrap();
    assert_eq!(
        copies
            .iter()
            .map(|b| b.get().map(|v| v.to_vec()))
            .collect::<std::vec::Vec<_>>(),
        copy
    );
    assert_ne!(
        copies[0].get().unwrap().as_ptr(),
        copy[0].as_ref().unwrap().as_ptr()
    );
    assert!(seg.destroy::<Vec<Box<Vec<u32>>>>("rows").unwrap());
    assert!(seg.destroy::<Vec<Box<Vec<u32>>>>("copies").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// A derived list of boxes of itself: built by prepending, read, edited in place, and
/// dropped, a long one too, in a loop.
#[test]
fn a_derived_list_of_boxes_of_itself() {
    use self::NodeFields as _;

    assert_ne!(
        <Box<Node> as shmkit_runtime::ShmSafe>::LAYOUT_FINGERPRINT,
        <Box<u64> as shmkit_runtime::ShmSafe>::LAYOUT_FINGERPRINT
    );
    // Past the links a caller's stack and a helper's take (16 and 32 under Miri).
    let long: u64 = if cfg!(miri) { 60 } else { 100_000 };
    let mut seg = ManagedHeapMemory::new(if cfg!(miri) { 1 << 18 } else { 16 << 20 }).unwrap();
    seg.construct_array_with("list", 2, |_| Box::<Node>::new())
        .unwrap();
    {
        let mut both = seg.find_slice_mut::<Box<Node>>("list").unwrap().unwrap();
        let mut it = both.iter_mut();
        let (mut head, mut spare) = (it.next().unwrap(), it.next().unwrap());
        prepend(&mut head, &mut spare, 5);
        assert_eq!(values(&head), [4, 3, 2, 1, 0]);
        let names: std::vec::Vec<&str> = std::iter::successors(head.get(), |n| n.next.get())
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(names, ["n4", "n3", "n2", "n1", "n0"]);
        // The second node, edited through its guard, and the rest dropped in place.
        let mut first = head.value_mut().unwrap();
        let mut second = first.next_mut();
        *second.value_mut().unwrap().value_mut() = 30;
        second.value_mut().unwrap().next_mut().clear();
        assert_eq!(values(&head), [4, 30]);
        prepend(&mut head, &mut spare, long);
        assert_eq!(values(&head).len() as u64, long + 2);
    }
    // Found in a copy, the list is checked link by link (on threads of their own past a
    // bound of links for a stack, whose stacks have room for more).
    let image = AlignedBuffer::from_image(seg.image());
    let copy = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    let list = copy.find_slice::<Box<Node>>("list").unwrap().unwrap();
    assert_eq!(values(&list[0]).len() as u64, long + 2);
    // Dropping a list far longer than the stack allows nested drops for.
    assert!(seg.destroy::<Box<Node>>("list").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// A thread other than the one that built the list drops it (each thread has its own
/// queue of pending drops).
#[test]
fn lists_drop_on_other_threads_too() {
    use std::sync::Arc as StdArc;

    let seg = StdArc::new(std::sync::Mutex::new(
        ManagedHeapMemory::new(4 << 20).unwrap(),
    ));
    {
        let mut seg = seg.lock().unwrap();
        seg.construct_array_with("list", 2, |_| Box::<Node>::new())
            .unwrap();
        let mut both = seg.find_slice_mut::<Box<Node>>("list").unwrap().unwrap();
        let mut it = both.iter_mut();
        let (mut head, mut spare) = (it.next().unwrap(), it.next().unwrap());
        prepend(&mut head, &mut spare, if cfg!(miri) { 100 } else { 30_000 });
    }
    let other = StdArc::clone(&seg);
    std::thread::spawn(move || {
        let mut seg = other.lock().unwrap();
        assert!(seg.destroy::<Box<Node>>("list").unwrap());
        assert!(seg.all_memory_deallocated());
    })
    .join()
    .unwrap();
}

/// Two boxes of different segments cannot swap: each would aim into the other segment.
#[test]
fn boxes_of_different_segments_do_not_swap() {
    let mut one = ManagedHeapMemory::new(1 << 16).unwrap();
    let mut two = ManagedHeapMemory::new(1 << 16).unwrap();
    one.construct("b", Box::<u64>::new()).unwrap();
    two.construct("b", Box::<u64>::new()).unwrap();
    let mut a = one.find_mut::<Box<u64>>("b").unwrap().unwrap();
    let mut b = two.find_mut::<Box<u64>>("b").unwrap().unwrap();
    a.insert(1).unwrap();
    b.insert(2).unwrap();
    assert!(matches!(a.swap(&mut b), Err(Error::InvalidAddress { .. })));
    assert_eq!((a.get(), b.get()), (Some(&1), Some(&2)));
}

/// A writable copy checks every link's block too, past the bound of links after which
/// the check goes on on another thread.
#[test]
fn a_writable_copy_checks_a_long_list() {
    let n = if cfg!(miri) { 40 } else { 2000 };
    let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
    seg.construct_array_with("list", 2, |_| Box::<Node>::new())
        .unwrap();
    {
        let mut both = seg.find_slice_mut::<Box<Node>>("list").unwrap().unwrap();
        let mut it = both.iter_mut();
        let (mut head, mut spare) = (it.next().unwrap(), it.next().unwrap());
        prepend(&mut head, &mut spare, n);
    }
    let mut image = AlignedBuffer::from_image(seg.image());
    let mut copy = ManagedExternalBuffer::open(&mut image).unwrap();
    assert_eq!(
        values(&copy.find_slice::<Box<Node>>("list").unwrap().unwrap()[0]).len() as u64,
        n
    );
    assert!(copy.destroy::<Box<Node>>("list").unwrap());
    assert!(copy.all_memory_deallocated());
}
