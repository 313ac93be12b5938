//! [`ShmSafe::validate`] for a [`Map`]: the tree is one its methods can rely on (module
//! docs, "Bytes from elsewhere"), each node owned through its one pointer ("One owner per
//! node"), and the elements it counts are valid.

use std::collections::BTreeMap;

use shmkit_runtime::segment::owned::check_owned;
use shmkit_runtime::{Invalid, OffsetPtr, ShmSafe};

use super::node::{layout, InternalNode, LeafNode, Node, CAPACITY, MAX_HEIGHT};
use super::Map;

/// The byte ranges taken so far (start → end), to find a node reached twice or
/// overlapping another node or the header.
type Taken = BTreeMap<usize, usize>;

/// # Safety
/// As for [`ShmSafe::validate`].
pub(super) unsafe fn validate<K: ShmSafe, V: ShmSafe>(
    value: *const Map<K, V>,
) -> Result<(), Invalid> {
    // SAFETY: the caller's contract: aligned, readable, initialised (the staging slots
    // are `MaybeUninit` and not read), not written meanwhile.
    let map = unsafe { &*value };
    let root = core::mem::offset_of!(Map<K, V>, root);
    if map.rootless() {
        return Ok(());
    }
    let Some(level) = peek_level(&map.root) else {
        return Err(Invalid::new(POINTER).within("root", root));
    };
    if level > MAX_HEIGHT {
        return Err(
            Invalid::new("a Map of at most 20 levels above its leaves").within("root", root)
        );
    }
    let mut taken = Taken::new();
    take(&mut taken, value.addr(), size_of::<Map<K, V>>())?;
    let owner = map.root_owner();
    // SAFETY: `peek_level` checked the pointer for a leaf's bytes.
    let counted = unsafe { node::<K, V>(&map.root, level, &[owner], Some(owner), &mut taken) }
        .map_err(|e| e.within("root", root))?;
    if map.len < counted {
        return Err(
            Invalid::new("a Map length of at least the elements its nodes hold")
                .within("len", core::mem::offset_of!(Map<K, V>, len)),
        );
    }
    Ok(())
}

/// What a node pointer that fails `validate_target` was expected to be.
const POINTER: &str = "a pointer to an aligned Map node inside the map's own segment";

/// The level a node pointer's target claims, if the pointer leads to a leaf's worth of
/// bytes inside the mapping.
fn peek_level<K, V>(ptr: &OffsetPtr<LeafNode<K, V>>) -> Option<usize> {
    ptr.validate_target(1).ok()?;
    // SAFETY: the target lies, aligned, inside the mapping (checked just above).
    Some(unsafe { Node::new(core::ptr::NonNull::new_unchecked(ptr.get())) }.level())
}

/// Checks the subtree `ptr` leads to, expected at `level`, whose tag must name one of
/// `owners` (in a writable mapping); the elements it holds. `root` is the map's root
/// pointer when `ptr` is it: the only child of a root without keys may name it as its
/// owner instead of the root (module docs).
///
/// # Safety
/// `ptr`'s target was checked to hold a leaf's worth of bytes inside the mapping.
unsafe fn node<K: ShmSafe, V: ShmSafe>(
    ptr: &OffsetPtr<LeafNode<K, V>>,
    level: usize,
    owners: &[*const u8],
    root: Option<*const u8>,
    taken: &mut Taken,
) -> Result<u64, Invalid> {
    if level > 0 {
        // SAFETY: `OffsetPtr` is a transparent offset: the same pointer, read as one to
        // the larger internal node, to check that all of one fits.
        let internal = unsafe {
            &*(ptr as *const OffsetPtr<LeafNode<K, V>>).cast::<OffsetPtr<InternalNode<K, V>>>()
        };
        internal
            .validate_target(1)
            .map_err(|_| Invalid::new(POINTER))?;
    }
    let size = layout::<K, V>(level).size();
    let block = ptr.get().cast::<u8>();
    let mut owned = Err(Invalid::new(POINTER));
    for &owner in owners {
        owned = owned.or_else(|_| check_owned(block, owner, size));
    }
    owned?;
    // SAFETY: the target lies, aligned, inside the mapping, with room for a node at
    // `level` (checked by the caller and above).
    let node = unsafe { Node::new(core::ptr::NonNull::new_unchecked(ptr.get())) };
    if node.level() != level {
        return Err(Invalid::new("a Map node one level below its parent"));
    }
    take(taken, node.as_ptr().addr(), size)?;
    let len = node.len();
    if len > CAPACITY {
        return Err(Invalid::new("a Map node of at most 11 keys"));
    }
    for i in 0..len {
        // SAFETY: slots `i < len <= CAPACITY` of the node, aligned, inside the mapping.
        unsafe {
            if !K::ALL_BIT_PATTERNS_VALID {
                K::validate(node.key(i)).map_err(|e| e.within(&format!("keys[{i}]"), 0))?;
            }
            if !V::ALL_BIT_PATTERNS_VALID {
                V::validate(node.val(i)).map_err(|e| e.within(&format!("vals[{i}]"), 0))?;
            }
        }
    }
    let mut counted = len as u64;
    if level > 0 {
        let parent = node.id();
        let owners: &[*const u8] = match root.filter(|_| len == 0) {
            Some(root) => &[parent, root],
            None => &[parent],
        };
        for e in 0..=len {
            let field = || format!("edges[{e}]");
            // SAFETY: edge `e <= len <= CAPACITY` lies inside the internal node, which lies
            // inside the mapping; any bytes are an offset.
            let edge = unsafe { &*node.edge(e) };
            edge.validate_target(1)
                .map_err(|_| Invalid::new(POINTER).within(&field(), 0))?;
            // SAFETY: just checked for a leaf's bytes; the level is one lower.
            counted += unsafe { self::node(edge, level - 1, owners, None, taken) }
                .map_err(|e| e.within(&field(), 0))?;
        }
    }
    Ok(counted)
}

/// Records the bytes `start..start + len` as taken; an error if any were already.
fn take(taken: &mut Taken, start: usize, len: usize) -> Result<(), Invalid> {
    let end = start.saturating_add(len);
    let before = taken
        .range(..=start)
        .next_back()
        .is_some_and(|(_, &e)| e > start);
    let after = taken.range(start..).next().is_some_and(|(&s, _)| s < end);
    if before || after {
        return Err(Invalid::new(
            "Map nodes that each appear once and overlap neither each other nor the map",
        ));
    }
    taken.insert(start, end);
    Ok(())
}
