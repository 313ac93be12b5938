//! The nodes of a [`Map`](super::Map) and the steps that move elements between them, each
//! in the order the module docs' crash consistency asks for.
//!
//! A node is one segment block: a [`LeafNode`] (level 0), or an [`InternalNode`] that
//! starts with one and adds the edges to its children (level > 0). Its `len` counts the
//! initialised keys and values (`0..len`) and, in an internal node, the edges `0..=len`:
//! what the count does not cover nobody owns. Every step below lowers a count before it
//! moves or drops what the count covered ([`Node::disown_from`]) and raises it with one
//! Release store once the slots are filled ([`Node::publish_len`]): an element or a
//! subtree is never counted twice, and a crash leaks what was uncounted at that instant.
//! A child moving to another node is re-tagged for it ([`Node::own`]) meanwhile, while
//! nothing counts it.

use core::alloc::Layout;
use core::mem::{offset_of, MaybeUninit};
use core::ptr::NonNull;
use core::sync::atomic::{compiler_fence, AtomicU16, Ordering};

use shmkit_runtime::segment::owned::set_owner;
use shmkit_runtime::{relocate_value, relocate_values, AllocError, OffsetPtr, SegmentAllocator};
use shmkit_runtime::{FieldSchema, PositionIndependent, ShmSafe};

use crate::crash::point;

/// What becomes of an element once nothing counts it: dropped in place ([`Discard`]) or
/// read out ([`Read`], [`ReadValue`], for position-independent types only).
pub(super) trait Take<K, V> {
    /// What taking gives.
    type Out;

    /// Takes the pair.
    ///
    /// # Safety
    /// `key` and `val` are a live, aligned pair that nothing counts or uses any more.
    unsafe fn take(self, key: *mut K, val: *mut V) -> Self::Out;
}

/// Drops both in place.
pub(super) struct Discard;

impl<K, V> Take<K, V> for Discard {
    type Out = ();

    unsafe fn take(self, key: *mut K, val: *mut V) {
        // SAFETY: the caller's contract: a live pair nobody owns, dropped once.
        unsafe {
            key.drop_in_place();
            val.drop_in_place();
        }
    }
}

/// Reads both out by value (position-independent pairs: a move is a copy).
pub(super) struct Read;

impl<K: PositionIndependent, V: PositionIndependent> Take<K, V> for Read {
    type Out = (K, V);

    unsafe fn take(self, key: *mut K, val: *mut V) -> (K, V) {
        // SAFETY: as for `Discard`; plain data may be moved by value.
        unsafe { (key.read(), val.read()) }
    }
}

/// Drops the key in place and reads the value out (a position-independent one).
pub(super) struct ReadValue;

impl<K, V: PositionIndependent> Take<K, V> for ReadValue {
    type Out = V;

    unsafe fn take(self, key: *mut K, val: *mut V) -> V {
        // SAFETY: as for `Read`.
        unsafe {
            key.drop_in_place();
            val.read()
        }
    }
}

/// Half the fan-out, as std's `BTreeMap`: nodes hold `B - 1..=2 * B - 1` keys, except
/// the root (and, after a crash, any node).
pub(super) const B: usize = 6;
/// Keys per node.
pub(super) const CAPACITY: usize = 2 * B - 1;
/// The most levels above the leaves. 2 · 6^19 leaves do not fit in any memory, so no map
/// reaches it; bytes from elsewhere that claim more are refused.
pub(super) const MAX_HEIGHT: usize = 20;
/// Levels a path from the root to a leaf can have.
pub(super) const LEVELS: usize = MAX_HEIGHT + 1;

impl<K: ShmSafe, V: ShmSafe> LeafNode<K, V> {
    /// The parts of a map's descriptor (a `"btree"`, for the inspector's `dump`): the
    /// `root` pointer (its size a leaf's), the `len` count, and per node its `len` and
    /// `level` (`u16`s), its `keys` and `vals` (arrays of the key and value types) and an
    /// internal node's `edges` (its size an internal node's).
    pub(super) const PARTS: &'static [FieldSchema] = &[
        FieldSchema::part(
            "root",
            offset_of!(super::Map<K, V>, root),
            size_of::<Self>(),
            align_of::<Self>(),
            0,
        ),
        FieldSchema::part(
            "len",
            offset_of!(super::Map<K, V>, len),
            8,
            8,
            u64::LAYOUT_FINGERPRINT,
        ),
        FieldSchema::part("node.len", offset_of!(Self, len), 2, 2, 0),
        FieldSchema::part("node.level", offset_of!(Self, level), 2, 2, 0),
        FieldSchema::part(
            "node.keys",
            offset_of!(Self, keys),
            size_of::<K>(),
            align_of::<K>(),
            K::LAYOUT_FINGERPRINT,
        ),
        FieldSchema::part(
            "node.vals",
            offset_of!(Self, vals),
            size_of::<V>(),
            align_of::<V>(),
            V::LAYOUT_FINGERPRINT,
        ),
        FieldSchema::part(
            "node.edges",
            offset_of!(InternalNode<K, V>, edges),
            size_of::<InternalNode<K, V>>(),
            align_of::<InternalNode<K, V>>(),
            0,
        ),
    ];
}

/// A leaf, and the first part of an internal node.
#[repr(C)]
pub(super) struct LeafNode<K, V> {
    /// Names the node's owner (see the module docs of the map, "One owner per node"),
    /// written with [`set_owner`] and read only by a validation.
    tag: u64,
    /// Initialised keys and values (and edges beyond them, in an internal node).
    len: u16,
    /// 0 for a leaf, the distance to the leaves otherwise; written before the node is
    /// linked and never changed, so that the root alone says the tree's height.
    level: u16,
    keys: [MaybeUninit<K>; CAPACITY],
    vals: [MaybeUninit<V>; CAPACITY],
}

/// A node above the leaves: `len + 1` children, each one level lower.
#[repr(C)]
pub(super) struct InternalNode<K, V> {
    data: LeafNode<K, V>,
    edges: [OffsetPtr<LeafNode<K, V>>; CAPACITY + 1],
}

/// The layout of a node at `level`.
pub(super) fn layout<K, V>(level: usize) -> Layout {
    if level == 0 {
        Layout::new::<LeafNode<K, V>>()
    } else {
        Layout::new::<InternalNode<K, V>>()
    }
}

/// A node of a map: a pointer with the node's accessors.
///
/// Made only from a pointer to a live node (unsafe [`Node::new`]) and used only while the
/// node lives: the algorithms drop every copy of a node before they free it. Its methods
/// rely on that; what they also need of an index they ask as `unsafe`.
pub(super) struct Node<K, V> {
    ptr: NonNull<LeafNode<K, V>>,
}

impl<K, V> Clone for Node<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for Node<K, V> {}

impl<K, V> PartialEq for Node<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.ptr == other.ptr
    }
}

impl<K, V> Node<K, V> {
    /// The node at `ptr`.
    ///
    /// # Safety
    /// `ptr` is a live node of a map (an internal one if its level is above 0), whose first
    /// `len` keys and values (and `len + 1` edges) are initialised, and the caller uses
    /// the handle only while the node lives.
    #[inline(always)]
    pub(super) unsafe fn new(ptr: NonNull<LeafNode<K, V>>) -> Self {
        Node { ptr }
    }

    /// The node's address.
    #[inline(always)]
    pub(super) fn as_ptr(self) -> *mut LeafNode<K, V> {
        self.ptr.as_ptr()
    }

    /// What the tags of its children name: its block start.
    #[inline(always)]
    pub(super) fn id(self) -> *const u8 {
        self.ptr.as_ptr().cast()
    }

    /// Records in the node's tag that `owner` (its parent's [`id`](Self::id), or the map's
    /// root pointer) owns it.
    ///
    /// # Safety
    /// The node is in a writable mapping, and the caller is changing its map.
    #[inline(always)]
    pub(super) unsafe fn own(self, owner: *const u8) {
        // SAFETY: a node's block starts with its tag (the first field of the `#[repr(C)]`
        // node, aligned to 8), which the caller may write.
        unsafe { set_owner(self.ptr.cast(), owner) };
    }

    /// Number of keys.
    #[inline(always)]
    pub(super) fn len(self) -> usize {
        // SAFETY: a live node (the type's contract); a plain read of the count, which only
        // this thread changes while it may be read (the map is borrowed).
        usize::from(unsafe { (*self.ptr.as_ptr()).len })
    }

    /// Its level: 0 for a leaf.
    #[inline(always)]
    pub(super) fn level(self) -> usize {
        // SAFETY: as in `len`; the level never changes once the node is linked.
        usize::from(unsafe { (*self.ptr.as_ptr()).level })
    }

    /// Where key `i` is (initialised when `i < len`).
    #[inline(always)]
    pub(super) fn key(self, i: usize) -> *mut K {
        self.ptr
            .as_ptr()
            .wrapping_byte_add(offset_of!(LeafNode<K, V>, keys))
            .cast::<K>()
            .wrapping_add(i)
    }

    /// Where value `i` is (initialised when `i < len`).
    #[inline(always)]
    pub(super) fn val(self, i: usize) -> *mut V {
        self.ptr
            .as_ptr()
            .wrapping_byte_add(offset_of!(LeafNode<K, V>, vals))
            .cast::<V>()
            .wrapping_add(i)
    }

    /// Where edge `i` of an internal node is (live when `i <= len`).
    #[inline(always)]
    pub(super) fn edge(self, i: usize) -> *mut OffsetPtr<LeafNode<K, V>> {
        self.ptr
            .as_ptr()
            .cast::<InternalNode<K, V>>()
            .wrapping_byte_add(offset_of!(InternalNode<K, V>, edges))
            .cast::<OffsetPtr<LeafNode<K, V>>>()
            .wrapping_add(i)
    }

    /// Child `i` of an internal node.
    ///
    /// # Safety
    /// The node is internal and `i <= len`.
    #[inline(always)]
    pub(super) unsafe fn child(self, i: usize) -> Self {
        // SAFETY: edge `i <= len` of an internal node is live, aimed at a live node one
        // level down (the tree's invariant, checked by `validate` for bytes from elsewhere).
        unsafe { Node::new(NonNull::new_unchecked((*self.edge(i)).get())) }
    }

    /// Key `i` as a reference for `'a`.
    ///
    /// # Safety
    /// `i < len`, and the key is neither moved nor dropped for `'a`.
    #[inline(always)]
    pub(super) unsafe fn key_ref<'a>(self, i: usize) -> &'a K {
        // SAFETY: the caller's contract.
        unsafe { &*self.key(i) }
    }

    /// Publishes a count: one Release store, so that the slots written before it are in
    /// memory before it covers them.
    #[inline(always)]
    pub(super) fn publish_len(self, len: usize) {
        debug_assert!(len <= CAPACITY);
        point("map: a node count about to be stored");
        // SAFETY: the count is a live, aligned `u16` of a live node, written by nobody else
        // meanwhile (the map is borrowed mutably by the algorithm that calls this).
        unsafe { AtomicU16::from_ptr(&raw mut (*self.ptr.as_ptr()).len) }
            .store(len as u16, Ordering::Release);
        point("map: a node count stored");
    }

    /// Lowers the count to `len` before the slots past it are moved or dropped: they have
    /// no owner until the step ends. The fence keeps what follows after the store.
    #[inline(always)]
    pub(super) fn disown_from(self, len: usize) {
        self.publish_len(len);
        compiler_fence(Ordering::SeqCst);
    }

    /// Linear search for `key` among the keys: `(i, true)` when key `i` equals it, else
    /// `(i, false)` with `i` the first key above it (the edge to descend).
    #[inline]
    pub(super) fn search<Q>(self, key: &Q) -> (usize, bool)
    where
        K: core::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let len = self.len();
        for i in 0..len {
            // SAFETY: `i < len`; the map is borrowed for the search.
            match key.cmp(unsafe { self.key_ref(i) }.borrow()) {
                core::cmp::Ordering::Greater => {}
                core::cmp::Ordering::Equal => return (i, true),
                core::cmp::Ordering::Less => return (i, false),
            }
        }
        (len, false)
    }
}

impl<K: ShmSafe, V: ShmSafe> Node<K, V> {
    /// Moves `count` keys and values from `src`'s slot `from` to this node's slot `to`
    /// (`src` may be this node: the ranges may overlap).
    ///
    /// # Safety
    /// The source slots hold values that nothing counts, the destination slots lie in
    /// `0..CAPACITY` and hold nothing live outside the source range.
    unsafe fn move_kvs(self, to: usize, src: Self, from: usize, count: usize) {
        // SAFETY: the caller's contract; both ranges lie inside their nodes' arrays.
        unsafe {
            relocate_values(self.key(to), src.key(from), count);
            relocate_values(self.val(to), src.val(from), count);
        }
    }

    /// Moves one key and value from `src`'s slot `from` to this node's slot `to`.
    ///
    /// # Safety
    /// As for [`move_kvs`](Self::move_kvs), and the two slots are distinct.
    unsafe fn move_kv(self, to: usize, src: Self, from: usize) {
        // SAFETY: the caller's contract.
        unsafe { self.put_kv(to, src.key(from), src.val(from)) };
    }

    /// Moves a key and a value from `key` and `val` (anywhere in the segment) to slot `to`.
    ///
    /// # Safety
    /// `key` and `val` hold values that nothing counts; slot `to < CAPACITY` holds nothing
    /// live and is distinct from them.
    pub(super) unsafe fn put_kv(self, to: usize, key: *const K, val: *const V) {
        // SAFETY: the caller's contract.
        unsafe {
            relocate_value(self.key(to), key);
            relocate_value(self.val(to), val);
        }
    }

    /// Aims `count` edges from `to` on at the targets of `src`'s edges from `from` on (the
    /// ranges may overlap, in the same node); children that move to another node are
    /// re-tagged for it.
    ///
    /// # Safety
    /// Both nodes are internal, the source edges are live and counted by nobody, the
    /// destination ones lie in `0..=CAPACITY`.
    unsafe fn move_edges(self, to: usize, src: Self, from: usize, count: usize) {
        let copy = |i: usize| {
            // SAFETY: the caller's contract; an edge is re-aimed in place at a node of the
            // same segment (the one the source edge aims at), a live node that nothing
            // counts, whose tag is the map's to write.
            unsafe {
                let child = (*src.edge(from + i)).get();
                (*self.edge(to + i)).set(child);
                if self != src {
                    Node::new(NonNull::new_unchecked(child)).own(self.id());
                }
            }
        };
        if self == src && to > from {
            (0..count).rev().for_each(copy);
        } else {
            (0..count).for_each(copy);
        }
    }

    /// Inserts the key and value at `key` and `val` (nothing counts them) at `i`, and in
    /// an internal node `edge` as edge `i + 1`.
    ///
    /// # Safety
    /// `len < CAPACITY`, `i <= len`; `key` and `val` lie outside this node's slots `i..`;
    /// `edge` is a node one level down that nothing counts, given exactly when this node
    /// is internal.
    pub(super) unsafe fn insert_fit(
        self,
        i: usize,
        key: *const K,
        val: *const V,
        edge: Option<Self>,
    ) {
        let len = self.len();
        self.disown_from(i);
        // SAFETY: slots `i..len` move up by one into room the node has (`len < CAPACITY`),
        // then slot `i` holds nothing live and takes the new pair; likewise the edges after
        // `i`. The count covers them all again only at the end.
        unsafe {
            self.move_kvs(i + 1, self, i, len - i);
            self.put_kv(i, key, val);
            if let Some(edge) = edge {
                self.move_edges(i + 2, self, i + 1, len - i);
                (*self.edge(i + 1)).set(edge.as_ptr());
            }
        }
        self.publish_len(len + 1);
    }
}

/// Writes a fresh node's header: no keys, at `level`.
///
/// # Safety
/// `ptr` is a block for a node at `level` (see [`layout`]) that nothing else uses.
unsafe fn init<K, V>(ptr: NonNull<LeafNode<K, V>>, level: usize) -> Node<K, V> {
    // SAFETY: the caller's contract; the header fields are written in place.
    unsafe {
        (&raw mut (*ptr.as_ptr()).len).write(0);
        (&raw mut (*ptr.as_ptr()).level).write(level as u16);
        Node::new(ptr)
    }
}

/// Allocates an empty node at `level`.
pub(super) fn allocate<K, V>(
    alloc: &SegmentAllocator<'_>,
    level: usize,
) -> Result<Node<K, V>, AllocError> {
    let block = alloc.allocate(layout::<K, V>(level))?;
    // SAFETY: a fresh block laid out for a node at `level`.
    Ok(unsafe { init(block.cast(), level) })
}

/// Gives a node's block back, without dropping anything in it.
///
/// # Safety
/// The node is a block of `alloc`'s mapping that nothing counts or uses any more.
pub(super) unsafe fn free<K, V>(alloc: &SegmentAllocator<'_>, node: Node<K, V>) {
    point("map: an unlinked node about to be freed");
    let layout = layout::<K, V>(node.level());
    // SAFETY: the caller's contract. A failure means a corrupted segment, which its next
    // allocation reports; the block leaks.
    let _ = unsafe { alloc.deallocate(node.ptr.cast(), layout) };
}

/// An internal node made the new root above `old`: no keys, one edge. `old` still names
/// the map's root pointer as its owner, as the only child of a root without keys may
/// (see the map's module docs), until the split that follows re-tags it.
///
/// # Safety
/// `fresh` is an empty node at `old.level() + 1` that nothing else uses.
pub(super) unsafe fn grow_root<K, V>(fresh: Node<K, V>, old: Node<K, V>) {
    // SAFETY: edge 0 of an internal node, aimed at a node of the same segment.
    unsafe { (*fresh.edge(0)).set(old.as_ptr()) };
}

/// Splits the full `node`, child `at` of `parent` (which has room), around its middle
/// key: the upper half moves to `right`, the middle pair up into `parent`.
///
/// `node`'s count drops to the lower half first: the upper pairs (and children) have no
/// owner while they move to `right`, which nothing reaches yet (a pair moved while still
/// counted would be a husk whose own blocks name its copy, one that a validation in a
/// writable mapping refuses). Then the middle pair and `right` enter `parent` with its
/// count raised last.
///
/// # Safety
/// `node.len() == CAPACITY`, `parent.len() < CAPACITY`, `node` is child `at` of `parent`,
/// and `right` is an empty node at `node`'s level that nothing else uses, in a writable
/// mapping.
pub(super) unsafe fn split<K: ShmSafe, V: ShmSafe>(
    parent: Node<K, V>,
    at: usize,
    node: Node<K, V>,
    right: Node<K, V>,
) {
    const MID: usize = B - 1;
    const MOVED: usize = CAPACITY - MID - 1;
    node.disown_from(MID);
    // SAFETY: `right` is fresh and unreachable, and `node` no longer counts its middle and
    // upper pairs (and upper edges): they move to `right`, which then names `parent` as its
    // owner, as `node` does too (it may have named the map's root pointer, as the child of
    // a root without keys may), before `parent` counts the middle pair and `right`.
    unsafe {
        right.move_kvs(0, node, MID + 1, MOVED);
        if node.level() > 0 {
            right.move_edges(0, node, MID + 1, MOVED + 1);
        }
        right.publish_len(MOVED);
        right.own(parent.id());
        node.own(parent.id());
        parent.insert_fit(at, node.key(MID), node.val(MID), Some(right));
    }
}

/// Where a key that sat at `i` in a node split by [`split`] goes: `(false, i)` in the
/// left half, `(true, i - B)` in the right one.
pub(super) fn split_side(i: usize) -> (bool, usize) {
    if i < B {
        (false, i)
    } else {
        (true, i - B)
    }
}

/// Appends key `sep` of `parent` and all of `right` (child `at + 1`) to `left` (child
/// `at`) and drops both from `parent`; `right` is then unreachable and empty of owners,
/// and is returned to be freed.
///
/// # Safety
/// `left` and `right` are children `at` and `at + 1` of `parent`, and
/// `left.len() + 1 + right.len() <= CAPACITY`.
pub(super) unsafe fn merge<K: ShmSafe, V: ShmSafe>(parent: Node<K, V>, at: usize) -> Node<K, V> {
    // SAFETY: the caller's contract: both children exist.
    let (left, right) = unsafe { (parent.child(at), parent.child(at + 1)) };
    let (plen, llen, rlen) = (parent.len(), left.len(), right.len());
    parent.disown_from(at);
    // SAFETY: `parent` no longer counts key `at` nor `right`; they move to `left`'s free
    // slots, which its count then covers. Then `parent`'s keys and edges after them move
    // down by one, uncounted until the count is published.
    unsafe {
        left.move_kv(llen, parent, at);
        left.move_kvs(llen + 1, right, 0, rlen);
        if left.level() > 0 {
            left.move_edges(llen + 1, right, 0, rlen + 1);
        }
        left.publish_len(llen + 1 + rlen);
        parent.move_kvs(at, parent, at + 1, plen - at - 1);
        parent.move_edges(at + 1, parent, at + 2, plen - at - 1);
    }
    parent.publish_len(plen - 1);
    right
}

/// Moves `count` pairs from child `at - 1` of `parent` through key `at - 1` into the
/// front of child `at` (and as many edges).
///
/// # Safety
/// `0 < at <= parent.len()`, `0 < count <= ` the left child's length, and child `at`
/// has room for `count` more.
pub(super) unsafe fn steal_left<K: ShmSafe, V: ShmSafe>(
    parent: Node<K, V>,
    at: usize,
    count: usize,
) {
    // SAFETY: the caller's contract: both children exist.
    let (left, node) = unsafe { (parent.child(at - 1), parent.child(at)) };
    let (plen, llen, nlen) = (parent.len(), left.len(), node.len());
    parent.disown_from(at - 1);
    left.disown_from(llen - count);
    // SAFETY: `node` is unreachable now (past `parent`'s count) and `left` no longer counts
    // its last `count` pairs and edges: `node`'s contents move up to make room for them and
    // the separator, the last of them becomes the separator, then both counts cover it all.
    unsafe {
        node.move_kvs(count, node, 0, nlen);
        node.move_kv(count - 1, parent, at - 1);
        node.move_kvs(0, left, llen - count + 1, count - 1);
        if node.level() > 0 {
            node.move_edges(count, node, 0, nlen + 1);
            node.move_edges(0, left, llen - count + 1, count);
        }
        parent.move_kv(at - 1, left, llen - count);
    }
    node.publish_len(nlen + count);
    parent.publish_len(plen);
}

/// Moves `count` pairs from child `at + 1` of `parent` through key `at` onto the end of
/// child `at` (and as many edges).
///
/// # Safety
/// `at < parent.len()`, `0 < count <= ` the right child's length, and child `at` has
/// room for `count` more.
pub(super) unsafe fn steal_right<K: ShmSafe, V: ShmSafe>(
    parent: Node<K, V>,
    at: usize,
    count: usize,
) {
    // SAFETY: the caller's contract: both children exist.
    let (node, right) = unsafe { (parent.child(at), parent.child(at + 1)) };
    let (plen, nlen, rlen) = (parent.len(), node.len(), right.len());
    parent.disown_from(at);
    // SAFETY: `parent` no longer counts key `at` nor `right`: the separator and `right`'s
    // first pairs and edges move to `node`'s free slots, which its count then covers; the
    // last one becomes the separator, and `right` (unreachable) closes the gap before
    // `parent` counts it again.
    unsafe {
        node.move_kv(nlen, parent, at);
        node.move_kvs(nlen + 1, right, 0, count - 1);
        if node.level() > 0 {
            node.move_edges(nlen + 1, right, 0, count);
        }
        node.publish_len(nlen + count);
        parent.move_kv(at, right, count - 1);
        right.move_kvs(0, right, count, rlen - count);
        if right.level() > 0 {
            right.move_edges(0, right, count, rlen - count + 1);
        }
    }
    right.publish_len(rlen - count);
    parent.publish_len(plen);
}

/// Removes pair `i` of a leaf once nothing counts it (`take` reads or drops both) and
/// closes the gap.
///
/// # Safety
/// The node is a leaf and `i < len`.
pub(super) unsafe fn remove_fit<K: ShmSafe, V: ShmSafe, T>(
    leaf: Node<K, V>,
    i: usize,
    take: impl Take<K, V, Out = T>,
) -> T {
    let len = leaf.len();
    leaf.disown_from(i);
    // SAFETY: pair `i` is live and nothing counts it; then pairs `i + 1..len`, live and
    // uncounted, move down by one over the slot it left, before the count covers them.
    let taken = unsafe {
        let taken = take.take(leaf.key(i), leaf.val(i));
        leaf.move_kvs(i, leaf, i + 1, len - i - 1);
        taken
    };
    leaf.publish_len(len - 1);
    taken
}

/// Replaces pair `i` of `node` by the pair at `key` and `val`, which nothing counts, once
/// nothing counts pair `i` (`take` reads or drops both).
///
/// # Safety
/// `i < node.len()`; `key` and `val` are live and outside `node`.
pub(super) unsafe fn replace_kv<K: ShmSafe, V: ShmSafe, T>(
    node: Node<K, V>,
    i: usize,
    key: *const K,
    val: *const V,
    take: impl Take<K, V, Out = T>,
) -> T {
    let len = node.len();
    node.disown_from(i);
    // SAFETY: pair `i` is live and nothing counts it; the new pair moves into the slot
    // it left before the count covers it again.
    let taken = unsafe {
        let taken = take.take(node.key(i), node.val(i));
        node.put_kv(i, key, val);
        taken
    };
    node.publish_len(len);
    taken
}

/// Replaces pair `i` of internal `node` by the first pair of `leaf`, the leftmost leaf of
/// its subtree `i + 1`, once nothing counts pair `i` (`take` reads or drops both); the
/// leaf closes its gap while `node` does not count it.
///
/// # Safety
/// As for [`replace_kv`], with `leaf` the leftmost leaf below edge `i + 1`, not empty.
pub(super) unsafe fn replace_by_first<K: ShmSafe, V: ShmSafe, T>(
    node: Node<K, V>,
    i: usize,
    leaf: Node<K, V>,
    take: impl Take<K, V, Out = T>,
) -> T {
    let (len, leaf_len) = (node.len(), leaf.len());
    node.disown_from(i);
    // SAFETY: pair `i` is live and nothing counts it. `leaf` is unreachable now (below
    // edge `i + 1`, which `node` no longer counts): its first pair fills slot `i` and the
    // rest move down by one before `node` counts both again.
    let taken = unsafe {
        let taken = take.take(node.key(i), node.val(i));
        node.move_kv(i, leaf, 0);
        leaf.move_kvs(0, leaf, 1, leaf_len - 1);
        taken
    };
    leaf.publish_len(leaf_len - 1);
    node.publish_len(len);
    taken
}

/// Replaces value `i` of `node` by the one at `val`, which nothing counts, once nothing
/// counts value `i` (`take` reads or drops it; the key stays, `take` sees `()` for it).
///
/// # Safety
/// `i < node.len()`; `val` is live and outside `node`.
pub(super) unsafe fn replace_val<K, V: ShmSafe, T>(
    node: Node<K, V>,
    i: usize,
    val: *const V,
    take: impl Take<(), V, Out = T>,
) -> T {
    let len = node.len();
    node.disown_from(i);
    // SAFETY: value `i` is live and nothing counts it (a zero-sized `()` is read from any
    // aligned pointer); the new value moves into its slot before the count covers it.
    let taken = unsafe {
        let taken = take.take(NonNull::dangling().as_ptr(), node.val(i));
        relocate_value(node.val(i), val);
        taken
    };
    node.publish_len(len);
    taken
}
