//! One owner per node, also in forged bytes: a map found in a writable mapping that did
//! not write it is lent only if each node is a block of its own whose tag names its
//! parent (the root: the map's root pointer). A forged file could otherwise give two maps
//! one node, link a node of one map into another, or make an object's block or the middle
//! of a node a node: two `&mut` to the same bytes, or a double free.
//!
//! The forgeries write into `Map<u64, u64>` nodes: the tag at 0, `len: u16` at 8, `level:
//! u16` at 10, 11 keys from 16, 11 values after them, then (internal nodes) 12 edges; the
//! header is the root's offset, then the length.

use std::collections::BTreeMap;

use shmkit_containers::{Map, MapExt, String, Vec, VecExt};
use shmkit_runtime::__private::crash::crashes_at;
use shmkit_runtime::{Error, ManagedHeapMemory, ShmSafe};
use shmkit_test_support::{self as support, sweep};

/// Where a node's count, its keys and its edges are.
const LEN: usize = 8;
const KEYS: usize = 16;
const EDGES: usize = KEYS + 2 * 11 * 8;
/// The bytes of a leaf.
const LEAF: usize = EDGES;

/// A heap segment holding "m" and "w" (`Map<u64, u64>` of 40 keys each, a root above
/// leaves) and "n" (a named `[u64; 24]`, a leaf's worth of bytes).
fn segment() -> ManagedHeapMemory {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    for name in ["m", "w"] {
        seg.construct(name, Map::<u64, u64>::new()).unwrap();
        let mut map = seg.find_mut::<Map<u64, u64>>(name).unwrap().unwrap();
        map.extend((0..40).map(|k| (k, 2 * k))).unwrap();
    }
    seg.construct("n", [0u64; LEAF / 8]).unwrap();
    seg
}

fn offset_of<T: ?Sized>(seg: &ManagedHeapMemory, p: *const T) -> usize {
    p.cast::<u8>() as usize - seg.base_address().as_ptr() as usize
}

/// Where the pointer at `at` leads (segment offsets).
fn target(seg: &ManagedHeapMemory, at: usize) -> usize {
    assert!(at + 8 <= seg.size());
    // SAFETY: an aligned word inside the segment, which `seg` keeps mapped; nothing
    // writes it meanwhile.
    let offset = unsafe { seg.base_address().as_ptr().add(at).cast::<isize>().read() };
    at.wrapping_add_signed(offset)
}

/// The offset of the header of map `name`.
fn header(seg: &ManagedHeapMemory, name: &str) -> usize {
    offset_of(seg, seg.find::<Map<u64, u64>>(name).unwrap().unwrap())
}

/// Aims the pointer at `at` at `to` (segment offsets).
fn link(seg: &mut ManagedHeapMemory, at: usize, to: usize) {
    support::corrupt(seg, at, &(to as isize - at as isize).to_ne_bytes());
}

/// The tag a node at `block` has when the owner at `owner` owns it (segment offsets).
fn tag(block: usize, owner: usize) -> [u8; 8] {
    (0x5EA1u64 << 48 | ((owner as u64).wrapping_sub(block as u64) & ((1 << 48) - 1))).to_ne_bytes()
}

/// What a writable copy of `seg` says when `name` is looked up as `T`.
fn lookup<T: ShmSafe>(seg: &mut ManagedHeapMemory, name: &str) -> Result<(), Error> {
    let copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    copy.find::<T>(name).map(|found| assert!(found.is_some()))
}

fn refused(result: Result<(), Error>) -> std::string::String {
    match result {
        Err(Error::InvalidValue {
            field, expected, ..
        }) => format!("{field}: {expected}"),
        other => panic!("not refused: {other:?}"),
    }
}

/// "w" aimed at the root of "m", and at one of its leaves.
#[test]
fn two_maps_never_share_a_node() {
    for depth in [0, 1] {
        let mut seg = segment();
        let (m, w) = (header(&seg, "m"), header(&seg, "w"));
        let root = target(&seg, m);
        let node = if depth == 0 {
            root
        } else {
            target(&seg, root + EDGES)
        };
        link(&mut seg, w, node);
        let why = refused(lookup::<Map<u64, u64>>(&mut seg, "w"));
        assert!(
            why.starts_with("root") && why.contains("one owner"),
            "{why}"
        );
        // The genuine owner is still lent.
        lookup::<Map<u64, u64>>(&mut seg, "m").unwrap();
    }
}

/// A leaf of "m" made the first child of the root of "w": refused, also when that root
/// has no keys (whose only child may name the map's root pointer instead, "w"'s: not the
/// owner of a leaf of "m" either).
#[test]
fn a_node_of_one_map_cannot_be_linked_into_another() {
    for keyless in [false, true] {
        let mut seg = segment();
        let (m, w) = (header(&seg, "m"), header(&seg, "w"));
        let leaf = target(&seg, target(&seg, m) + EDGES + 8);
        let root = target(&seg, w);
        link(&mut seg, root + EDGES, leaf);
        if keyless {
            support::corrupt(&mut seg, root + LEN, &0u16.to_ne_bytes());
        }
        let why = refused(lookup::<Map<u64, u64>>(&mut seg, "w"));
        assert!(
            why.starts_with("root.edges[0]") && why.contains("one owner"),
            "{why}"
        );
        lookup::<Map<u64, u64>>(&mut seg, "m").unwrap();
    }
}

#[test]
fn a_map_cannot_claim_an_objects_block_nor_the_middle_of_a_node() {
    for target_kind in ["object", "middle"] {
        let mut seg = segment();
        let n = offset_of(&seg, seg.find::<[u64; LEAF / 8]>("n").unwrap().unwrap());
        let (m, w) = (header(&seg, "m"), header(&seg, "w"));
        // The keys of the first leaf of "m" (0, 1, ..) read as a leaf of 1 key.
        let first_leaf = target(&seg, target(&seg, m) + EDGES);
        let at = if target_kind == "object" {
            n
        } else {
            first_leaf + KEYS
        };
        // The tag a genuine root would have, forged where the node would start.
        support::corrupt(&mut seg, at, &tag(at, w));
        link(&mut seg, w, at);
        let why = refused(lookup::<Map<u64, u64>>(&mut seg, "w"));
        assert!(
            why.starts_with("root") && why.contains("start of a block of its own"),
            "{target_kind}: {why}"
        );
    }
}

#[test]
fn a_read_only_copy_only_reads_and_checks_bounds() {
    let mut seg = segment();
    let (m, w) = (header(&seg, "m"), header(&seg, "w"));
    // A key of the root of "m" changed, to tell its tree from the tree "w" had.
    let root = target(&seg, m);
    support::corrupt(&mut seg, root + KEYS, &1000u64.to_ne_bytes());
    link(&mut seg, w, root);
    let image = shmkit_runtime::AlignedBuffer::from_image(seg.image());
    let reader = shmkit_runtime::ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    // Two shared views of one tree are no aliasing: nothing can write through either.
    let (m, w) = (
        reader.find::<Map<u64, u64>>("m").unwrap().unwrap(),
        reader.find::<Map<u64, u64>>("w").unwrap().unwrap(),
    );
    assert!(m.iter().eq(w.iter()) && m.keys().any(|&k| k == 1000));
}

type Maps = Vec<Map<String, u64>>;

/// The maps of "maps" in a segment, as std's.
fn maps_of(seg: &ManagedHeapMemory) -> std::vec::Vec<BTreeMap<std::string::String, u64>> {
    let maps = seg.find::<Maps>("maps").unwrap().unwrap();
    maps.iter()
        .map(|m| m.iter().map(|(k, v)| (k.to_string(), *v)).collect())
        .collect()
}

/// A writable copy lends maps it did not write, changes them (splits and root growth in
/// one, merges, steals and root collapses in the other, with segment strings as keys that
/// move between nodes), moves them (their vector grows) and frees everything.
#[test]
fn a_writable_copy_lends_genuine_maps_and_frees_them_all() {
    let n: u64 = if cfg!(miri) { 30 } else { 200 };
    let key = |k: u64| format!("{k:04}");
    let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
    seg.construct("maps", Maps::new()).unwrap();
    {
        let mut maps = seg.find_mut::<Maps>("maps").unwrap().unwrap();
        for _ in 0..2 {
            maps.push(Map::new()).unwrap();
            let mut map = maps.last_mut().unwrap();
            for k in 0..n {
                map.insert(key(k).as_str(), k).unwrap();
            }
        }
    }
    let mut model = maps_of(&seg);
    let mut copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    {
        let mut maps = copy.find_mut::<Maps>("maps").unwrap().unwrap();
        let mut grown = maps.element_mut(0).unwrap();
        for k in n..3 * n {
            grown.insert(key(k).as_str(), k).unwrap();
            model[0].insert(key(k), k);
        }
        let mut shrunk = maps.element_mut(1).unwrap();
        for k in (0..n).filter(|k| k % 7 != 3) {
            assert_eq!(shrunk.remove(key(k).as_str()), Some(k));
            model[1].remove(&key(k));
        }
        // Growth moves the headers: each root then names its map's new root pointer.
        maps.reserve(100).unwrap();
    }
    let mut again = ManagedHeapMemory::from_image(copy.image()).unwrap();
    assert_eq!(maps_of(&again), model);
    assert!(again.destroy::<Maps>("maps").unwrap());
    assert!(again.all_memory_deallocated());
}

/// A writer that died while a root grew or collapsed can leave a root without keys whose
/// only child names the map's root pointer (module docs); a move of the header meanwhile
/// keeps the map one that a writable copy lends and changes.
#[test]
fn an_interrupted_map_moves_and_is_still_lent() {
    type Op = fn(&mut shmkit_runtime::ShmMut<'_, Map<u64, u64>>);
    // A full root leaf, which the next insertion splits under a new root; and a root
    // above two minimal leaves, which merge (and the root collapses) as one shrinks.
    let cases: [(u32, &[u64], Op); 2] = [
        (0, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], |m| {
            m.insert(11, 11).unwrap();
        }),
        (1, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], |m| {
            m.remove(&11);
            m.remove(&0);
        }),
    ];
    for (salt, keys, op) in cases {
        for n in sweep::steps(salt) {
            let mut seg = ManagedHeapMemory::new(1 << 14).unwrap();
            seg.construct("maps", Vec::<Map<u64, u64>>::new()).unwrap();
            let finished = {
                let mut maps = seg.find_mut::<Vec<Map<u64, u64>>>("maps").unwrap().unwrap();
                maps.push(Map::new()).unwrap();
                let mut map = maps.element_mut(0).unwrap();
                map.extend(keys.iter().map(|&k| (k, k))).unwrap();
                crashes_at(n, || op(&mut map))
            };
            // As it was left, and moved (its vector grew) before anything else changed it.
            let unmoved = ManagedHeapMemory::from_image(seg.image()).unwrap();
            seg.find_mut::<Vec<Map<u64, u64>>>("maps")
                .unwrap()
                .unwrap()
                .reserve(100)
                .unwrap();
            let moved = ManagedHeapMemory::from_image(seg.image()).unwrap();
            for copy in [unmoved, moved] {
                lent_and_changed(copy).unwrap_or_else(|e| panic!("stopped at step {n}: {e}"));
            }
            if finished.is_ok() {
                break;
            }
        }
    }
}

/// Checks that `copy` lends its map of maps, whose first map (some keys below 20) then
/// takes keys 20..40 (a root split among them), and that a copy of the result lends it
/// with the keys it should hold.
fn lent_and_changed(mut copy: ManagedHeapMemory) -> Result<(), Error> {
    let mut model = BTreeMap::new();
    {
        let mut maps = copy
            .find_mut::<Vec<Map<u64, u64>>>("maps")?
            .expect("constructed");
        let mut map = maps.element_mut(0).expect("pushed");
        model.extend(map.iter().map(|(k, v)| (*k, *v)));
        for k in 20..40 {
            map.insert(k, k)?;
            model.insert(k, k);
        }
    }
    let again = ManagedHeapMemory::from_image(copy.image())?;
    let maps = again
        .find::<Vec<Map<u64, u64>>>("maps")?
        .expect("constructed");
    assert!(maps[0].iter().map(|(k, v)| (*k, *v)).eq(model));
    Ok(())
}
