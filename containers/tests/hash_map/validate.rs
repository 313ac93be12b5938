//! Bytes from elsewhere: a map found in a mapping that did not write it is checked first
//! (its table inside the segment, its size and counts, every control byte, the elements
//! in its full buckets), and read at the new address when it is fine.

use shmkit_containers::{HashMap, HashMapExt, Vec};
use shmkit_runtime::{
    AlignedBuffer, Error, Handle, ManagedExternalBuffer, ManagedHeapMemory, ShmImmutable,
};
use shmkit_test_support as support;

type Rows = HashMap<u64, Vec<u64>>;

/// Where a table's bucket mask and room count are in its block, after the owner's tag.
const MASK: usize = 8;
const GROWTH_LEFT: usize = 16;
/// The size of a table's header, before its control bytes.
const TABLE_HEADER: usize = 24;

/// Where a map's parts are, as offsets in its segment.
#[derive(Clone, Copy, Debug)]
struct Parts {
    /// The map's header.
    header: usize,
    /// Its table block (the table header, then the control bytes).
    table: usize,
    /// Its bucket count.
    buckets: usize,
    /// Where its buckets start.
    data: usize,
}

impl Parts {
    fn ctrl(&self, i: usize) -> usize {
        self.table + TABLE_HEADER + i
    }

    /// The index of a bucket that holds nothing, and so a control byte that is `EMPTY`.
    fn empty_bucket(&self, seg: &ManagedHeapMemory) -> usize {
        (0..self.buckets)
            .find(|&i| support::get(seg, Handle(self.ctrl(i) as u64), 1)[0] == 0xff)
            .expect("an EMPTY bucket")
    }
}

fn word(seg: &ManagedHeapMemory, at: usize) -> u64 {
    u64::from_ne_bytes(support::get(seg, Handle(at as u64), 8).try_into().unwrap())
}

/// The parts of the map whose header is at `header`, with buckets aligned to 8.
fn parts(seg: &ManagedHeapMemory, header: usize) -> Parts {
    let table = header.wrapping_add_signed(word(seg, header) as i64 as isize);
    let buckets = word(seg, table + MASK) as usize + 1;
    Parts {
        header,
        table,
        buckets,
        data: table + (TABLE_HEADER + buckets + 16).next_multiple_of(8),
    }
}

/// A heap segment holding "m" (`HashMap<u64, u64>`, 10 elements), "flags"
/// (`HashMap<u64, bool>`, 2) and "rows" (`HashMap<u64, Vec<u64>>`, 2), and their parts.
fn segment() -> (ManagedHeapMemory, [Parts; 3]) {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    let base = seg.base_address().as_ptr() as usize;
    let m = seg.construct("m", HashMap::<u64, u64>::new()).unwrap() as *const _ as usize - base;
    let flags =
        seg.construct("flags", HashMap::<u64, bool>::new()).unwrap() as *const _ as usize - base;
    let rows = seg.construct("rows", Rows::new()).unwrap() as *const _ as usize - base;
    seg.find_mut::<HashMap<u64, u64>>("m")
        .unwrap()
        .unwrap()
        .extend((0..10).map(|k| (k, k * 10)))
        .unwrap();
    seg.find_mut::<HashMap<u64, bool>>("flags")
        .unwrap()
        .unwrap()
        .extend([(1, true), (2, false)])
        .unwrap();
    {
        let mut r = seg.find_mut::<Rows>("rows").unwrap().unwrap();
        r.insert_with(1, 0..2, |_| ()).unwrap();
        r.insert_with(2, 0..3, |_| ()).unwrap();
    }
    let all = [m, flags, rows].map(|h| parts(&seg, h));
    (seg, all)
}

/// The reader of a copy of `seg`.
fn copy(seg: &mut ManagedHeapMemory) -> AlignedBuffer {
    AlignedBuffer::from_image(seg.image())
}

#[test]
fn a_copy_of_the_segment_reads_its_maps_at_the_new_address() {
    let (mut seg, _) = segment();
    let image = copy(&mut seg);
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    let m = reader.find::<HashMap<u64, u64>>("m").unwrap().unwrap();
    assert!(!seg.contains((m as *const HashMap<u64, u64>).cast()));
    assert_eq!((m.len(), m[&7], m.get(&10)), (10, 70, None));
    let flags = reader.find::<HashMap<u64, bool>>("flags").unwrap().unwrap();
    assert_eq!((flags[&1], flags[&2]), (true, false));
    let rows = reader.find::<Rows>("rows").unwrap().unwrap();
    assert_eq!(
        (rows[&1].as_slice(), rows[&2].as_slice()),
        (&[0, 1][..], &[0, 1, 2][..])
    );
    // Another element type is another type.
    assert!(matches!(
        reader.find::<HashMap<u64, u32>>("m"),
        Err(Error::TypeMismatch { .. })
    ));
}

/// The field and expectation a copy of `seg` reports for `name` (as `HashMap<u64, V>`)
/// after `forge` wrote its bytes.
fn refused<V: ShmImmutable + std::fmt::Debug>(
    name: &str,
    forge: impl FnOnce(&mut ManagedHeapMemory, [Parts; 3]),
) -> (String, &'static str) {
    let (mut seg, parts) = segment();
    forge(&mut seg, parts);
    let image = copy(&mut seg);
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    match reader.find::<HashMap<u64, V>>(name) {
        Err(Error::InvalidValue {
            field, expected, ..
        }) => (field, expected),
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn a_count_beyond_the_capacity_is_refused() {
    let (field, expected) = refused::<u64>("m", |seg, [m, ..]| {
        support::corrupt(seg, m.header + 8, &100u64.to_ne_bytes());
    });
    assert_eq!(field, "items");
    assert!(expected.contains("capacity"), "{expected}");
    // Elements without a table.
    let (field, _) = refused::<u64>("m", |seg, [m, ..]| {
        support::corrupt(seg, m.header, &1isize.to_ne_bytes());
    });
    assert_eq!(field, "items");
}

#[test]
fn a_bad_bucket_count_is_refused() {
    for mask in [6u64, 1, u64::MAX, 1 << 40] {
        let (field, expected) = refused::<u64>("m", |seg, [m, ..]| {
            support::corrupt(seg, m.table + MASK, &mask.to_ne_bytes());
        });
        assert_eq!(field, "table.bucket_mask", "mask {mask:#x}: {expected}");
    }
    // A larger power of two runs past the segment's end.
    let (field, expected) = refused::<u64>("m", |seg, [m, ..]| {
        support::corrupt(seg, m.table + MASK, &((1u64 << 14) - 1).to_ne_bytes());
    });
    assert_eq!(field, "table");
    assert!(
        expected.contains("inside the pointer's own segment"),
        "{expected}"
    );
}

#[test]
fn a_table_outside_the_segment_or_misaligned_or_over_the_map_is_refused() {
    for off in [1isize << 40, -(1 << 20)] {
        let (field, _) = refused::<u64>("m", |seg, [m, ..]| {
            support::corrupt(seg, m.header, &off.to_ne_bytes());
        });
        assert_eq!(field, "table", "offset {off}");
    }
    // 8 bytes on: a header made of the mask, the room count and the control bytes.
    let (field, _) = refused::<u64>("m", |seg, [m, ..]| {
        let off = (m.table - m.header) as isize + 8;
        support::corrupt(seg, m.header, &off.to_ne_bytes());
    });
    assert!(field.starts_with("table"), "{field}");
    // Aimed at the map's own header (8 bytes on, the tag bits of 0 and 8 differ).
    let (field, _) = refused::<u64>("m", |seg, [m, ..]| {
        support::corrupt(seg, m.header, &8isize.to_ne_bytes());
    });
    assert_eq!(field, "table");
}

#[test]
fn control_bytes_that_mean_nothing_or_disagree_are_refused() {
    let (field, expected) = refused::<u64>("m", |seg, [m, ..]| {
        support::corrupt(seg, m.ctrl(3), &[0x90]);
    });
    assert_eq!(field, "table.ctrl[3]");
    assert!(expected.contains("EMPTY, DELETED or a tag"), "{expected}");
    // A repeated byte after the last bucket that claims a bucket the bucket's own byte
    // says is empty.
    let (field, expected) = refused::<u64>("m", |seg, [m, ..]| {
        let k = m.empty_bucket(seg) % 16;
        let at = m.buckets + k;
        support::corrupt(seg, m.ctrl(at), &[0x05]);
    });
    assert!(field.starts_with("table.ctrl["), "{field}");
    assert!(expected.contains("repeated control byte"), "{expected}");
    // More room than EMPTY buckets: a probe for room could find none.
    let (field, _) = refused::<u64>("m", |seg, [m, ..]| {
        support::corrupt(
            seg,
            m.table + GROWTH_LEFT,
            &(m.buckets as u64).to_ne_bytes(),
        );
    });
    assert_eq!(field, "table.growth_left");
}

/// A control byte that claims a bucket that holds garbage (the room count lowered to
/// match): the garbage is checked as the key and value types (a `bool` of 2, a `Vec`
/// aimed outside the segment).
#[test]
fn a_full_bucket_of_garbage_is_checked_as_an_element() {
    let (field, expected) = refused::<bool>("flags", |seg, [_, flags, _]| {
        let i = flags.empty_bucket(seg);
        support::corrupt(seg, flags.ctrl(i), &[0x11]);
        support::corrupt(seg, flags.table + GROWTH_LEFT, &0u64.to_ne_bytes());
        // Key 9, value 2 (and the bytes of the padding).
        let mut bucket = [0u8; 16];
        bucket[..8].copy_from_slice(&9u64.to_ne_bytes());
        bucket[8] = 2;
        support::corrupt(seg, flags.data + 16 * i, &bucket);
    });
    assert!(
        field.starts_with("table.bucket[") && field.ends_with("].value"),
        "{field}"
    );
    assert!(expected.contains("bool"), "{expected}");
    let (field, _) = refused::<Vec<u64>>("rows", |seg, [.., rows]| {
        let i = rows.empty_bucket(seg);
        support::corrupt(seg, rows.ctrl(i), &[0x11]);
        support::corrupt(seg, rows.table + GROWTH_LEFT, &0u64.to_ne_bytes());
        // Key 9, and a vector of 4 elements at a pointer far outside.
        let mut bucket = [0u8; 32];
        bucket[8..16].copy_from_slice(&(1isize << 40).to_ne_bytes());
        bucket[16..24].copy_from_slice(&4u64.to_ne_bytes());
        bucket[24..32].copy_from_slice(&4u64.to_ne_bytes());
        support::corrupt(seg, rows.data + 32 * i, &bucket);
    });
    assert!(
        field.starts_with("table.bucket[") && field.ends_with("].value.ptr"),
        "{field}"
    );
}

/// All-zero bytes are an empty map, from elsewhere and in place, and one can grow.
#[test]
fn zeroed_bytes_are_an_empty_map() {
    let (mut seg, [m, ..]) = segment();
    support::corrupt(&mut seg, m.header, &[0; 16]);
    let image = copy(&mut seg);
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    let found = reader.find::<HashMap<u64, u64>>("m").unwrap().unwrap();
    assert!(found.is_empty() && found.capacity() == 0 && found.get(&1).is_none());
    let mut m = seg.find_mut::<HashMap<u64, u64>>("m").unwrap().unwrap();
    assert_eq!(m.iter().count(), 0);
    m.insert(1, 2).unwrap();
    assert_eq!(m[&1], 2);
}
