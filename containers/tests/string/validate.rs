//! Bytes from elsewhere: strings, boxes and `Arc`s found in a mapping that did not write
//! them are checked first (UTF-8; pointers inside the segment, at live blocks, each owned
//! once; counts that include the handles), refused with `InvalidValue` when forged, and
//! read at the new address when fine. Never undefined behaviour, never a stack overflow.

use shmkit_containers::{
    Arc, ArcError, ArcExt, Box, BoxExt, String, StringExt, Vec, VecExt, Weak, WeakExt,
};
use shmkit_runtime::{AlignedBuffer, Error, ManagedExternalBuffer, ManagedHeapMemory, ShmSafe};
use shmkit_test_support as support;

use crate::boxed::{prepend, values, Node};

/// Offsets in the segment of [`segment`]: of objects' fields, of blocks.
struct At {
    /// The string "s" ("héllo") and its buffer.
    s: usize,
    s_bytes: usize,
    /// The box "b" (holding 7).
    b: usize,
    /// The two inner boxes of "pair" (`Box<[Box<u64>; 2]>`) and their blocks.
    inner: [usize; 2],
    inner_blocks: [usize; 2],
    /// The `next` of the last node of "list" (4 nodes), and the first node's block.
    last_next: usize,
    first_node: usize,
    /// The block of the value both `Arc`s of "arcs" (`Box<[Arc<u64>; 2]>`) share.
    arcs_block: usize,
    /// The block of "flag" (`Arc<bool>`) and the `Weak<bool>` "flag_weak" refers to it.
    flag_block: usize,
    /// The block of "gone" (a `Weak<u64>` whose value was dropped).
    gone_block: usize,
}

fn offset(seg: &ManagedHeapMemory, p: *const impl Sized) -> usize {
    p.addr() - seg.base_address().as_ptr().addr()
}

/// Where an `Arc`'s value lies after its block's counts word (the block's epoch between).
const VALUE: usize = 16;

/// The counts word of the block of an `Arc`'s value.
fn arc_block<T: ShmSafe>(seg: &ManagedHeapMemory, arc: &Arc<T>) -> usize {
    offset(seg, arc.get().unwrap() as *const T) - VALUE
}

/// A heap segment holding one of each, and where their parts are.
fn segment() -> (ManagedHeapMemory, At) {
    let mut seg = ManagedHeapMemory::new(1 << 18).unwrap();
    seg.construct("s", String::new()).unwrap();
    seg.find_mut::<String>("s")
        .unwrap()
        .unwrap()
        .push_str("héllo")
        .unwrap();
    seg.construct("names", Vec::<String>::new()).unwrap();
    seg.find_mut::<Vec<String>>("names")
        .unwrap()
        .unwrap()
        .extend(["ada", "grace"])
        .unwrap();
    seg.construct("b", Box::<u64>::new()).unwrap();
    seg.find_mut::<Box<u64>>("b")
        .unwrap()
        .unwrap()
        .insert(7)
        .unwrap();
    seg.construct("pair", Box::<[Box<u64>; 2]>::new()).unwrap();
    {
        let mut pair = seg.find_mut::<Box<[Box<u64>; 2]>>("pair").unwrap().unwrap();
        pair.insert([Box::new(), Box::new()]).unwrap();
        let mut inner = pair.value_mut().unwrap().into_slice();
        for (i, mut b) in inner.iter_mut().enumerate() {
            b.insert(i as u64 + 1).unwrap();
        }
    }
    seg.construct_array_with("list", 2, |_| Box::<Node>::new())
        .unwrap();
    {
        let mut both = seg.find_slice_mut::<Box<Node>>("list").unwrap().unwrap();
        let mut it = both.iter_mut();
        let (mut head, mut spare) = (it.next().unwrap(), it.next().unwrap());
        prepend(&mut head, &mut spare, 4);
    }
    seg.construct("arcs", Box::<[Arc<u64>; 2]>::new()).unwrap();
    {
        let mut arcs = seg.find_mut::<Box<[Arc<u64>; 2]>>("arcs").unwrap().unwrap();
        arcs.insert([Arc::new(), Arc::new()]).unwrap();
        let mut both = arcs.value_mut().unwrap().into_slice();
        let mut it = both.iter_mut();
        let (mut a, mut b) = (it.next().unwrap(), it.next().unwrap());
        a.insert(5).unwrap();
        b.share(&a).unwrap();
    }
    seg.construct("flag", Arc::<bool>::new()).unwrap();
    seg.find_mut::<Arc<bool>>("flag")
        .unwrap()
        .unwrap()
        .insert(true)
        .unwrap();
    seg.construct("flag_weak", Weak::<bool>::new()).unwrap();
    let flag = seg.find::<Arc<bool>>("flag").unwrap().unwrap() as *const Arc<bool>;
    // SAFETY: another object of the segment, not changed while "flag_weak" is.
    seg.find_mut::<Weak<bool>>("flag_weak")
        .unwrap()
        .unwrap()
        .downgrade_from(unsafe { &*flag })
        .unwrap();
    seg.construct("gone", Weak::<u64>::new()).unwrap();
    seg.construct("temp", Arc::<u64>::new()).unwrap();
    seg.find_mut::<Arc<u64>>("temp")
        .unwrap()
        .unwrap()
        .insert(9)
        .unwrap();
    let temp = seg.find::<Arc<u64>>("temp").unwrap().unwrap() as *const Arc<u64>;
    // SAFETY: as above.
    seg.find_mut::<Weak<u64>>("gone")
        .unwrap()
        .unwrap()
        .downgrade_from(unsafe { &*temp })
        .unwrap();
    // SAFETY: as above.
    let gone_block = arc_block(&seg, unsafe { &*temp });
    assert!(seg.destroy::<Arc<u64>>("temp").unwrap());

    let s = seg.find::<String>("s").unwrap().unwrap();
    let b = seg.find::<Box<u64>>("b").unwrap().unwrap();
    let pair = seg
        .find::<Box<[Box<u64>; 2]>>("pair")
        .unwrap()
        .unwrap()
        .get()
        .unwrap();
    let list = seg.find_slice::<Box<Node>>("list").unwrap().unwrap();
    let nodes: std::vec::Vec<&Node> =
        std::iter::successors(list[0].get(), |n| n.next.get()).collect();
    let arcs = seg
        .find::<Box<[Arc<u64>; 2]>>("arcs")
        .unwrap()
        .unwrap()
        .get()
        .unwrap();
    let at = At {
        s: offset(&seg, s as *const String),
        s_bytes: offset(&seg, s.as_ptr()),
        b: offset(&seg, b as *const Box<u64>),
        inner: [
            offset(&seg, &pair[0] as *const Box<u64>),
            offset(&seg, &pair[1] as *const Box<u64>),
        ],
        inner_blocks: [
            offset(&seg, pair[0].get().unwrap() as *const u64),
            offset(&seg, pair[1].get().unwrap() as *const u64),
        ],
        last_next: offset(&seg, &nodes[3].next as *const Box<Node>),
        first_node: offset(&seg, nodes[0] as *const Node),
        arcs_block: arc_block(&seg, &arcs[0]),
        flag_block: arc_block(&seg, seg.find::<Arc<bool>>("flag").unwrap().unwrap()),
        gone_block,
    };
    (seg, at)
}

/// A copy of a fresh [`segment`] with `bytes` written at the offset `at` picks.
fn forged(at: impl Fn(&At) -> usize, bytes: &[u8]) -> AlignedBuffer {
    let (mut seg, offsets) = segment();
    support::corrupt(&mut seg, at(&offsets), bytes);
    AlignedBuffer::from_image(seg.image())
}

/// The field and expectation of an `InvalidValue`.
fn invalid<R>(found: shmkit_runtime::Result<R>) -> (std::string::String, &'static str) {
    match found {
        Err(Error::InvalidValue {
            field, expected, ..
        }) => (field, expected),
        Err(e) => panic!("refused otherwise: {e}"),
        Ok(_) => panic!("not refused"),
    }
}

/// Runs `$check` with `$seg` a read-only and then a writable mapping of the image `$image`
/// (types a read-only mapping lends: no `Arc`).
macro_rules! both {
    ($image:expr, |$seg:ident| $check:expr) => {{
        let mut image: AlignedBuffer = $image;
        {
            let $seg = ManagedExternalBuffer::options()
                .read_only()
                .open(&image)
                .unwrap();
            $check;
        }
        let $seg = ManagedExternalBuffer::open(&mut image).unwrap();
        $check;
    }};
}

#[test]
fn a_copy_of_the_segment_reads_everything_at_the_new_address() {
    let (mut seg, _) = segment();
    both!(AlignedBuffer::from_image(seg.image()), |copy| {
        assert_eq!(*copy.find::<String>("s").unwrap().unwrap(), "héllo");
        assert_eq!(
            *copy.find::<Vec<String>>("names").unwrap().unwrap(),
            ["ada", "grace"]
        );
        assert_eq!(copy.find::<Box<u64>>("b").unwrap().unwrap().get(), Some(&7));
        let pair = copy
            .find::<Box<[Box<u64>; 2]>>("pair")
            .unwrap()
            .unwrap()
            .get()
            .unwrap();
        assert_eq!((pair[0].get(), pair[1].get()), (Some(&1), Some(&2)));
        assert_eq!(
            values(&copy.find_slice::<Box<Node>>("list").unwrap().unwrap()[0]),
            [3, 2, 1, 0]
        );
    });
    // A writable copy reads `Arc`s too, and changes and drops everything like the original.
    let mut image = AlignedBuffer::from_image(seg.image());
    let mut copy = ManagedExternalBuffer::open(&mut image).unwrap();
    let arcs = copy
        .find::<Box<[Arc<u64>; 2]>>("arcs")
        .unwrap()
        .unwrap()
        .get()
        .unwrap();
    assert_eq!((arcs[0].strong_count(), arcs[1].get()), (2, Some(&5)));
    assert_eq!(
        copy.find::<Weak<bool>>("flag_weak")
            .unwrap()
            .unwrap()
            .strong_count(),
        1
    );
    assert_eq!(
        copy.find::<Weak<u64>>("gone")
            .unwrap()
            .unwrap()
            .strong_count(),
        0
    );
    copy.find_mut::<String>("s")
        .unwrap()
        .unwrap()
        .push_str(", wörld")
        .unwrap();
    assert_eq!(*copy.find::<String>("s").unwrap().unwrap(), "héllo, wörld");
    let mut gone = copy.find_mut::<Arc<bool>>("flag").unwrap().unwrap();
    gone.clear();
    assert!(copy.destroy::<String>("s").unwrap() && copy.destroy::<Vec<String>>("names").unwrap());
    assert!(
        copy.destroy::<Box<u64>>("b").unwrap()
            && copy.destroy::<Box<[Box<u64>; 2]>>("pair").unwrap()
    );
    assert!(
        copy.destroy::<Box<Node>>("list").unwrap()
            && copy.destroy::<Box<[Arc<u64>; 2]>>("arcs").unwrap()
    );
    assert!(
        copy.destroy::<Arc<bool>>("flag").unwrap()
            && copy.destroy::<Weak<bool>>("flag_weak").unwrap()
    );
    assert!(copy.destroy::<Weak<u64>>("gone").unwrap());
    // The `Arc` values and blocks from before the copy leak (see the `arc` module docs).
    assert!(!copy.all_memory_deallocated());
}

#[test]
fn bytes_that_are_not_utf8_are_refused() {
    // 'é' is bytes 1 and 2 of "héllo": its lead byte without a continuation byte, then a
    // byte no UTF-8 has.
    for (at, byte) in [(2, b'A'), (1, 0xff)] {
        both!(forged(|a| a.s_bytes + at, &[byte]), |copy| {
            let (field, expected) = invalid(copy.find::<String>("s"));
            assert_eq!(field, "[1]");
            assert!(expected.contains("UTF-8"), "{expected}");
        });
    }
    // A forged length that cuts 'é' in two.
    both!(forged(|a| a.s + 8, &2u64.to_ne_bytes()), |copy| {
        assert_eq!(invalid(copy.find::<String>("s")).0, "[1]");
    });
    // Inside a vector of strings, by index.
    let (mut seg, _) = segment();
    let grace = seg.find::<Vec<String>>("names").unwrap().unwrap()[1].as_ptr();
    let grace = offset(&seg, grace);
    support::corrupt(&mut seg, grace + 4, &[0xc3]);
    both!(AlignedBuffer::from_image(seg.image()), |copy| {
        assert_eq!(invalid(copy.find::<Vec<String>>("names")).0, "[1][4]");
    });
}

/// The pointer of a box: inside the segment, aligned, and (writable) at a live block.
#[test]
fn a_box_pointer_outside_its_block_is_refused() {
    let outside = |a: &At| a.b;
    let far = (1isize << 40).to_ne_bytes();
    both!(forged(outside, &far), |copy| {
        let (field, expected) = invalid(copy.find::<Box<u64>>("b"));
        assert_eq!(field, "ptr");
        assert!(
            expected.contains("inside the pointer's own segment"),
            "{expected}"
        );
    });
    // Aimed 8 bytes into a live block of the segment (the second `u64` of the list's first
    // node): in bounds, so a read-only copy reads it, but a writable one, which could free
    // it, finds no block starting there.
    let (seg, at) = segment();
    let into_a_block = (at.first_node + 8) as isize - at.b as isize;
    drop(seg);
    let mut image = forged(|a| a.b, &into_a_block.to_ne_bytes());
    {
        let copy = ManagedExternalBuffer::options()
            .read_only()
            .open(&image)
            .unwrap();
        assert!(copy.find::<Box<u64>>("b").unwrap().unwrap().get().is_some());
    }
    let copy = ManagedExternalBuffer::open(&mut image).unwrap();
    let (field, expected) = invalid(copy.find::<Box<u64>>("b"));
    assert_eq!(field, "ptr");
    assert!(
        expected.contains("start of a block of its own"),
        "{expected}"
    );
}

/// Two boxes that one validation reaches may not own one block, and a chain of boxes
/// may not come back to itself (which would also recurse forever): a read-only mapping
/// sees the block reached twice, a writable one already that its tag names another box.
#[test]
fn twin_boxes_and_cycles_are_refused() {
    let refused = |found: shmkit_runtime::Result<()>, field: &str, why: &str| {
        let (at, expected) = invalid(found);
        assert!(at == field && expected.contains(why), "{at}: {expected}");
    };
    let (read_only, writable) = ("one box owns alone", "names this pointer as its one owner");
    // The second inner box of "pair" aimed at the first one's block.
    let (_, at) = segment();
    let twin = (at.inner_blocks[0] as isize - at.inner[1] as isize).to_ne_bytes();
    let mut image = forged(|a| a.inner[1], &twin);
    let pair = "*[1].ptr";
    let reader = || ManagedExternalBuffer::options().read_only();
    let found = reader()
        .open(&image)
        .unwrap()
        .find::<Box<[Box<u64>; 2]>>("pair")
        .map(drop);
    refused(found, pair, read_only);
    let copy = ManagedExternalBuffer::open(&mut image).unwrap();
    refused(
        copy.find::<Box<[Box<u64>; 2]>>("pair").map(drop),
        pair,
        writable,
    );
    // The last node of the list aimed back at the first one.
    let back = (at.first_node as isize - at.last_next as isize).to_ne_bytes();
    let mut image = forged(|a| a.last_next, &back);
    let list = "[0].*.next.*.next.*.next.*.next.ptr";
    let found = reader()
        .open(&image)
        .unwrap()
        .find_slice::<Box<Node>>("list")
        .map(drop);
    refused(found, list, read_only);
    let copy = ManagedExternalBuffer::open(&mut image).unwrap();
    refused(
        copy.find_slice::<Box<Node>>("list").map(drop),
        list,
        writable,
    );
}

/// An `Arc`'s counts must say the value is there and count at least the `Arc`s that
/// one validation reaches; a `Weak`'s must count it.
#[test]
fn counts_that_cannot_be_are_refused() {
    let writable = |image: AlignedBuffer, check: &dyn Fn(&ManagedExternalBuffer<'_>)| {
        let mut image = image;
        check(&ManagedExternalBuffer::open(&mut image).unwrap());
    };
    // No `Arc` left, says the strong count.
    writable(
        forged(|a| a.flag_block, &(1u64 << 32).to_ne_bytes()),
        &|copy| {
            let (field, expected) = invalid(copy.find::<Arc<bool>>("flag"));
            assert_eq!(field, "ptr");
            assert!(
                expected.contains("strong and weak at least 1"),
                "{expected}"
            );
        },
    );
    // One `Arc` counted, two reached.
    writable(
        forged(|a| a.arcs_block, &(1u64 | 1 << 32).to_ne_bytes()),
        &|copy| {
            let (field, expected) = invalid(copy.find::<Box<[Arc<u64>; 2]>>("arcs"));
            assert_eq!(field, "*[1].ptr");
            assert!(expected.contains("strong count"), "{expected}");
        },
    );
    // The weak count of a dropped value that a `Weak` still refers to, forged to 0.
    writable(forged(|a| a.gone_block, &0u64.to_ne_bytes()), &|copy| {
        let (field, expected) = invalid(copy.find::<Weak<u64>>("gone"));
        assert!(
            field == "ptr" && expected.contains("weak count"),
            "{field}: {expected}"
        );
    });
}

/// The value of a `Weak` is checked while `Arc`s keep it (an upgrade would read it), not
/// once it is gone.
#[test]
fn the_value_behind_a_weak_is_checked_while_it_is_there() {
    let mut image = forged(|a| a.flag_block + VALUE, &[2]);
    let copy = ManagedExternalBuffer::open(&mut image).unwrap();
    let (field, expected) = invalid(copy.find::<Weak<bool>>("flag_weak"));
    assert_eq!(field, "*.value");
    assert!(expected.contains("bool"), "{expected}");
    assert_eq!(invalid(copy.find::<Arc<bool>>("flag")).0, "*.value");
    // Gone: whatever the bytes, nothing reads them; an upgrade fails.
    let mut image = forged(|a| a.gone_block + VALUE, &u64::MAX.to_ne_bytes());
    let mut copy = ManagedExternalBuffer::open(&mut image).unwrap();
    copy.construct("up", Arc::<u64>::new()).unwrap();
    let gone = copy.find::<Weak<u64>>("gone").unwrap().unwrap() as *const Weak<u64>;
    let mut up = copy.find_mut::<Arc<u64>>("up").unwrap().unwrap();
    // SAFETY: another object of the segment, not changed while "up" is.
    assert_eq!(up.upgrade_from(unsafe { &*gone }), Err(ArcError::Gone));
}

/// All-zero bytes are empty handles, also from elsewhere.
#[test]
fn zeroed_handles_are_empty() {
    let (_, at) = segment();
    both!(forged(|_| at.b, &[0; 8]), |copy| {
        assert!(copy.find::<Box<u64>>("b").unwrap().unwrap().is_none());
    });
    let mut image = forged(|_| at.inner[0], &[0; 8]);
    let mut copy = ManagedExternalBuffer::open(&mut image).unwrap();
    let mut pair = copy
        .find_mut::<Box<[Box<u64>; 2]>>("pair")
        .unwrap()
        .unwrap();
    let mut inner = pair.value_mut().unwrap().into_slice();
    let mut zeroed = inner.index(0).unwrap();
    assert!(zeroed.is_none());
    zeroed.insert(11).unwrap();
    assert_eq!(zeroed.get(), Some(&11));
}
