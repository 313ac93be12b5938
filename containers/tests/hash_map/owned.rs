//! One owner per table, also in forged bytes: a map (or set) found in a writable mapping
//! that did not write it is lent only if its table is a block of its own, whose first word
//! names it (a forged file could otherwise give two maps one table, or a map an object's
//! block or the middle of another table: two `&mut` to the same bytes, or a double free).

use shmkit_containers::{HashMap, HashMapExt, HashSet, HashSetExt, Vec, VecExt};
use shmkit_runtime::{Error, Handle, ManagedHeapMemory, ShmSafe};
use shmkit_test_support as support;

type Map = HashMap<u64, u64>;
type Rows = Vec<Map>;
type Nested = HashMap<u64, Map>;

/// A heap segment holding "m" (10 elements) and "o" ({7: 70}), "rows" (a `Vec` of two
/// maps), "nested" (a map of two maps), "s" and "t" (`HashSet<u64>`, {1, 2, 3} and {9})
/// and "n" (a named `[u64; 8]`).
fn segment() -> ManagedHeapMemory {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("m", Map::new()).unwrap();
    seg.construct("o", Map::new()).unwrap();
    seg.construct("rows", Rows::new()).unwrap();
    seg.construct("nested", Nested::new()).unwrap();
    seg.construct("s", HashSet::<u64>::new()).unwrap();
    seg.construct("t", HashSet::<u64>::new()).unwrap();
    seg.construct("n", [5u64; 8]).unwrap();
    let mut m = seg.find_mut::<Map>("m").unwrap().unwrap();
    m.extend((0..10).map(|k| (k, k * 10))).unwrap();
    let mut o = seg.find_mut::<Map>("o").unwrap().unwrap();
    o.insert(7, 70).unwrap();
    let mut rows = seg.find_mut::<Rows>("rows").unwrap().unwrap();
    rows.push([(1, 10)]).unwrap();
    rows.push([(2, 20), (3, 30)]).unwrap();
    let mut nested = seg.find_mut::<Nested>("nested").unwrap().unwrap();
    for k in [1, 2] {
        nested.insert_with(k, [(k, k)], |_| ()).unwrap();
    }
    let mut s = seg.find_mut::<HashSet<u64>>("s").unwrap().unwrap();
    s.extend([1, 2, 3]).unwrap();
    let mut t = seg.find_mut::<HashSet<u64>>("t").unwrap().unwrap();
    t.insert(9).unwrap();
    seg
}

fn offset_of<T: ?Sized>(seg: &ManagedHeapMemory, p: *const T) -> usize {
    p.cast::<u8>() as usize - seg.base_address().as_ptr() as usize
}

/// The offset of the header of `name` (a map, or a set: the same header).
fn header<T: ShmSafe>(seg: &ManagedHeapMemory, name: &str) -> usize {
    offset_of(seg, seg.find::<T>(name).unwrap().unwrap())
}

/// The offset of the table of the map (or set) whose header is at `header`.
fn table(seg: &ManagedHeapMemory, header: usize) -> usize {
    let word = support::get(seg, Handle(header as u64), 8);
    header.wrapping_add_signed(i64::from_ne_bytes(word.try_into().unwrap()) as isize)
}

/// Aims the table pointer of the map header at `header` (an offset) at `target`, with a
/// count of `items`.
fn aim(seg: &mut ManagedHeapMemory, header: usize, target: usize, items: u64) {
    let ptr = target as isize - header as isize;
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&ptr.to_ne_bytes());
    bytes[8..].copy_from_slice(&items.to_ne_bytes());
    support::corrupt(seg, header, &bytes);
}

/// What a writable copy of `seg` says when `name` is looked up as `T`.
fn lookup<T: ShmSafe>(seg: &mut ManagedHeapMemory, name: &str) -> Result<(), Error> {
    let copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    copy.find::<T>(name).map(|found| assert!(found.is_some()))
}

fn refused_as_shared(result: Result<(), Error>) -> String {
    match result {
        Err(Error::InvalidValue {
            field, expected, ..
        }) => format!("{field}: {expected}"),
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn a_writable_copy_lends_genuine_maps_and_sets_and_frees_them_all() {
    let mut seg = segment();
    let mut copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    assert_eq!(copy.find::<Map>("m").unwrap().unwrap()[&7], 70);
    {
        // New tables, larger and smaller: each names the map before it is published.
        let mut m = copy.find_mut::<Map>("m").unwrap().unwrap();
        m.extend((10..40).map(|k| (k, k * 10))).unwrap();
        m.retain(|k, _| *k % 4 == 0);
        m.shrink_to_fit().unwrap();
        let mut s = copy.find_mut::<HashSet<u64>>("s").unwrap().unwrap();
        s.extend(10..30).unwrap();
        // A growing table moves the maps in it, a growing vector the maps in it: each
        // one's table then names the map's new place.
        let mut nested = copy.find_mut::<Nested>("nested").unwrap().unwrap();
        let before = nested.capacity();
        nested.extend((3..20).map(|k| (k, [(k, k)]))).unwrap();
        assert!(nested.capacity() > before, "the maps moved");
        let mut rows = copy.find_mut::<Rows>("rows").unwrap().unwrap();
        rows.element_mut(1).unwrap().insert(4, 40).unwrap();
        let before = rows.as_ptr();
        rows.reserve(100).unwrap();
        assert_ne!(rows.as_ptr(), before, "the maps moved");
    }
    let again = ManagedHeapMemory::from_image(copy.image()).unwrap();
    let m = again.find::<Map>("m").unwrap().unwrap();
    assert_eq!((m.len(), m[&36]), (10, 360));
    assert_eq!(again.find::<HashSet<u64>>("s").unwrap().unwrap().len(), 23);
    let nested = again.find::<Nested>("nested").unwrap().unwrap();
    assert_eq!((nested.len(), nested[&19][&19]), (19, 19));
    let rows = again.find::<Rows>("rows").unwrap().unwrap();
    assert_eq!((rows[0][&1], rows[1].len(), rows[1][&4]), (10, 3, 40));
    for name in ["m", "o"] {
        assert!(copy.destroy::<Map>(name).unwrap());
    }
    for name in ["s", "t"] {
        assert!(copy.destroy::<HashSet<u64>>(name).unwrap());
    }
    assert!(copy.destroy::<Rows>("rows").unwrap());
    assert!(copy.destroy::<Nested>("nested").unwrap());
    assert!(copy.destroy::<[u64; 8]>("n").unwrap());
    assert!(copy.all_memory_deallocated());
}

#[test]
fn two_maps_or_sets_never_share_a_table() {
    let mut seg = segment();
    let (m, o) = (header::<Map>(&seg, "m"), header::<Map>(&seg, "o"));
    let shared = table(&seg, m);
    aim(&mut seg, o, shared, 10);
    let why = refused_as_shared(lookup::<Map>(&mut seg, "o"));
    assert!(
        why.starts_with("table") && why.contains("one owner"),
        "{why}"
    );
    // The genuine owner is still lent, whichever is looked up first.
    lookup::<Map>(&mut seg, "m").unwrap();
    // A set is a map: the same check.
    let (s, t) = (
        header::<HashSet<u64>>(&seg, "s"),
        header::<HashSet<u64>>(&seg, "t"),
    );
    let shared = table(&seg, s);
    aim(&mut seg, t, shared, 3);
    let why = refused_as_shared(lookup::<HashSet<u64>>(&mut seg, "t"));
    assert!(
        why.starts_with("table") && why.contains("one owner"),
        "{why}"
    );
    lookup::<HashSet<u64>>(&mut seg, "s").unwrap();
}

#[test]
fn a_nested_map_cannot_take_a_siblings_table() {
    let mut seg = segment();
    let rows = seg.find::<Rows>("rows").unwrap().unwrap();
    let (row0, row1) = (offset_of(&seg, &rows[0]), offset_of(&seg, &rows[1]));
    let sibling = table(&seg, row1);
    aim(&mut seg, row0, sibling, 2);
    let why = refused_as_shared(lookup::<Rows>(&mut seg, "rows"));
    assert!(
        why.starts_with("[0].table") && why.contains("one owner"),
        "{why}"
    );
}

#[test]
fn a_map_cannot_claim_an_objects_block_nor_the_middle_of_a_table() {
    for target in ["object", "middle"] {
        let mut seg = segment();
        let n = offset_of(&seg, seg.find::<[u64; 8]>("n").unwrap().unwrap());
        let o = header::<Map>(&seg, "o");
        // An empty table of 4 buckets where the block would start, with the tag a
        // genuine owner would have: all a map needs but a block of its own.
        let at = if target == "object" {
            n
        } else {
            table(&seg, header::<Map>(&seg, "m")) + 16
        };
        let tag = 0x5EA1u64 << 48 | ((o as u64).wrapping_sub(at as u64) & ((1 << 48) - 1));
        let mut forged: std::vec::Vec<u8> =
            [tag, 3, 3].iter().flat_map(|w| w.to_ne_bytes()).collect();
        forged.extend([0xff; 4 + 16]);
        support::corrupt(&mut seg, at, &forged);
        aim(&mut seg, o, at, 0);
        let why = refused_as_shared(lookup::<Map>(&mut seg, "o"));
        assert!(
            why.starts_with("table") && why.contains("start of a block of its own"),
            "{target}: {why}"
        );
    }
}

#[test]
fn a_read_only_copy_only_reads_and_checks_bounds() {
    let mut seg = segment();
    let (m, o) = (header::<Map>(&seg, "m"), header::<Map>(&seg, "o"));
    let shared = table(&seg, m);
    aim(&mut seg, o, shared, 10);
    let image = shmkit_runtime::AlignedBuffer::from_image(seg.image());
    let reader = shmkit_runtime::ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    // Two shared views of one table are no aliasing: nothing can write through either.
    let (m, o) = (
        reader.find::<Map>("m").unwrap().unwrap(),
        reader.find::<Map>("o").unwrap().unwrap(),
    );
    assert_eq!((o.len(), o[&7], o == m), (10, 70, true));
}
