//! [`Map<K, V>`] and [`Set<T>`](set::Set): ordered maps and sets that live in a segment, B-trees
//! with std's `BTreeMap`/`BTreeSet` names and semantics.
//!
//! # Layout
//!
//! The header is `#[repr(C)]`: a self-relative [`OffsetPtr`] to the root node, the length
//! as a `u64`, then a staging slot for one key and one value (below). A null root is an
//! empty map ([`Map::new`]), and so is a root offset of 0 (it would aim at the header
//! itself), so all-zero bytes are one too. A node is one segment block holding its
//! owner's tag (below), up to 11 keys and values (std's B = 6), and above the leaves up to
//! 12 offset pointers to its children. Each node records its level (0 for a leaf),
//! written before it is linked and never changed: the root alone tells the height, so a
//! new root is published with one pointer store. Nodes never move; elements move between
//! them with their relocation hook ([`relocate_value`](shmkit_runtime::relocate_value)).
//!
//! # Building keys in place
//!
//! Inserting takes *sources* ([`Emplace`](crate::Emplace)): `map.insert("key", 5)` builds
//! a segment `String` key from a `&str`. A source cannot be compared with the keys before
//! it is built, so the key (and the value) is built first, in the header's staging slot,
//! inside the segment where a position-dependent key can allocate; the search compares
//! the built key, and the pair then moves into its leaf. All the fallible work (building
//! both, allocating the nodes a split needs) happens before anything in the tree changes,
//! so an error leaves the map exactly as it was. The staging slot holds nothing between
//! operations (a crash leaks what it held).
//!
//! # Algorithms
//!
//! Insertion searches down to a leaf and, when the leaf is full, splits the run of full
//! nodes above it top-down (each split's parent has room by then). Removal is top-down
//! too (CLRS): on the way down every child entered is first given more than the minimum
//! (stealing from a sibling or merging with it), so the removal at the bottom never
//! underflows and nothing is rebalanced afterwards; a key found in an internal node is
//! replaced by its predecessor or successor, which the same descent removes. Because no
//! rebalancing follows, the path the removal took is also the position of the next
//! element, which is how [`MapExt::retain`] walks on. Nodes carry no parent pointers.
//!
//! # Crash consistency
//!
//! A process killed at any instruction of a mutating operation leaves a map that is
//! memory-safe to read, change and drop, possibly leaking: a node's count is lowered
//! before the slots it covered are moved or dropped and raised (one Release store) only
//! once they are filled, so a key moved between nodes is never counted twice; a new node
//! is filled before the store that links it (a parent's count, or the root pointer); a
//! node is freed only after nothing links it. What a crash can leave is a tree whose nodes
//! hold fewer keys than a B-tree wants (down to none) and leaked elements and nodes; every
//! operation works on such a tree. The length is raised before an element is published
//! and lowered after one is disowned, so it never counts less than the tree holds;
//! nothing relies on it for memory safety (iteration ends by position).
//!
//! Tags (below) change only on nodes that nothing counts or links (children moving to
//! another node, a split's new node), and in two steps that publish a new root: a root
//! without keys (just grown above the old root, or emptied by a crash or a merge) and its
//! only child, which names either the root or the root pointer. The split below such a
//! root re-tags the child for the root, and a collapse re-tags it for the root pointer
//! before it becomes the root.
//!
//! A split lowers the count of the full node before its upper half moves to the new node
//! (which nothing links yet): a crash meanwhile leaks that half. Moving it while still
//! counted would leave, after a crash, counted husks whose own blocks (a `String` key's
//! buffer) name their unlinked copies as owners, which validation refuses.
//!
//! The publishing stores are `Node::publish_len` (and `disown_from`, which uses it) and the
//! header's `publish_root` and `publish_len`: every state a crash can leave is the state
//! around one of them (between two of them only uncounted slots, unlinked nodes and the
//! tags above change). Each is a crash point (`src/crash.rs`), as are the leaky moments
//! (nodes or a staged pair not yet linked, a node about to be freed); the crash sweep of
//! the tests stops every operation at each of them in turn, then validates (writable),
//! reads, changes and drops what is left.
//!
//! # One owner per node
//!
//! A node's first word is a tag ([`set_owner`]) naming its one owner by an address that
//! is unique and stays put while the tree changes: the block start of its parent (whose
//! edges shift within it freely), or for the root the header's root pointer. Whatever
//! moves children to another node (a split, a merge, a steal) re-tags them, a new root is
//! tagged before it is published, and the header's `relocate` re-tags the root (and the
//! only child of a root without keys, see crash consistency). Keys and values moved
//! between nodes, or in from the staging slot, re-tag their own blocks in their
//! relocation hooks; what a crash leaves in the staging slot is never read, validated or
//! dropped, only overwritten.
//!
//! # Bytes from elsewhere
//!
//! [`validate`](shmkit_runtime::ShmSafe::validate) refuses a header or node that safe code
//! could not use: node pointers outside the mapping or misaligned, a node reached twice
//! or overlapping another or the header (so no cycle), levels that do not step down by
//! one, more keys than a node holds, a length below the elements counted, invalid keys
//! or values. Keys out of order are harmless: lookups then miss, iteration yields them
//! as they are; nothing is undefined behaviour. In a writable mapping each node must
//! also be a block of its own ([`check_owned`]: the start of a used block of the
//! allocator, neither an object nor the segment's own, large enough for its level) whose
//! tag names its parent, or the root pointer for the root and for the only child of a
//! root without keys.
//!
//! So no two pointers in a forged file own one node, whatever containers they belong to.
//! A tag names either a container header's field (here one map's root pointer) or a block
//! start, where no header lies: every block a container owns starts with its tag, and
//! objects are marked blocks. The node at a block start is reached once per validation
//! (two edges of one parent to one node are refused), and one map's root pointer aims at
//! one node: it owns that node, and a child named for it passes only below that node
//! while it has no keys, through its one live edge. By induction from the headers, every
//! node accepted is owned through one pointer of one map.
//!
//! [`set_owner`]: shmkit_runtime::segment::owned::set_owner
//! [`check_owned`]: shmkit_runtime::segment::owned::check_owned

mod ext;
mod iter;
mod node;
mod path;
mod raw;
pub mod set;
mod validate;

#[cfg(test)]
mod tests;

pub use ext::{Entry, MapExt, OccupiedEntry, VacantEntry};
pub use iter::{Iter, IterMut, Keys, Range, RangeMut, Values, ValuesMut};

use core::borrow::Borrow;
use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ops::{Index, RangeBounds};
use core::ptr::NonNull;

use shmkit_runtime::layout::{compound_fingerprint, container_schemas, ForwardsImmutable};
use shmkit_runtime::{Invalid, OffsetPtr, Schema, ShmImmutable, ShmSafe};

use node::{LeafNode, Node};

/// An ordered map in a segment: std's `BTreeMap<K, V>`, with allocation failure as an
/// error and mutation in place (see the [module docs](self)).
///
/// By value a `Map` is only ever empty ([`Map::new`], [`Default`]); it gets elements once
/// it lives in a segment, through [`MapExt`] (`use shmkit::prelude::*`). Reading needs only
/// `&Map`. Lookups are `Borrow`-based like std's: a `Map<String, _>` is searched with a
/// `&str`, a `Map<Vec<u32>, _>` with a `&[u32]`.
///
/// ```
/// use shmkit_containers::{Map, MapExt};
/// use shmkit_runtime::ManagedHeapMemory;
///
/// let mut seg = ManagedHeapMemory::new(1 << 16)?;
/// seg.construct("ages", Map::<u64, u32>::new())?;
/// let mut ages = seg.find_mut::<Map<u64, u32>>("ages")?.expect("constructed above");
/// ages.insert(7, 30)?;
/// ages.insert(3, 41)?;
/// assert_eq!(ages.insert(7, 31)?, Some(30));
/// assert_eq!(ages.get(&7), Some(&31));
/// assert_eq!(ages.iter().collect::<Vec<_>>(), [(&3, &41), (&7, &31)]);
/// *ages.entry(9)?.or_insert(0)? += 1;
/// assert_eq!(ages.remove(&3), Some(41));
/// assert_eq!(ages.len(), 2);
/// # Ok::<(), shmkit_runtime::Error>(())
/// ```
#[repr(C)]
pub struct Map<K, V> {
    root: OffsetPtr<LeafNode<K, V>>,
    len: u64,
    /// Where a key is built before it is compared (see the module docs); empty between
    /// operations.
    staged_key: MaybeUninit<K>,
    /// Where a value is built before its key's place is known; empty between operations.
    staged_val: MaybeUninit<V>,
    /// The map owns its keys and values (for drop check).
    _owns: PhantomData<(K, V)>,
}

// SAFETY: as std's `BTreeMap`: the map owns its elements, reached only through it.
unsafe impl<K: Send, V: Send> Send for Map<K, V> {}
// SAFETY: as above; `&Map` gives only `&K` and `&V`.
unsafe impl<K: Sync, V: Sync> Sync for Map<K, V> {}

impl<K, V> Map<K, V> {
    /// An empty map, allocating nothing (all-zero bytes are one too).
    pub const fn new() -> Self {
        Map {
            root: OffsetPtr::null(),
            len: 0,
            staged_key: MaybeUninit::zeroed(),
            staged_val: MaybeUninit::zeroed(),
            _owns: PhantomData,
        }
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are no elements.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the root pointer says "no tree": null, or the offset 0 of all-zero bytes
    /// (which would aim at the header itself, never a node).
    #[inline(always)]
    fn rootless(&self) -> bool {
        self.root.is_null() || self.root.offset() == 0
    }

    /// The root node, None when empty.
    #[inline(always)]
    fn root(&self) -> Option<Node<K, V>> {
        if self.rootless() {
            return None;
        }
        let root = NonNull::new(self.root.get())?;
        // SAFETY: a non-null root is a live node of this map (the type's invariant,
        // checked by `validate` for bytes from elsewhere), used while the map is borrowed.
        Some(unsafe { Node::new(root) })
    }

    /// The elements in key order.
    pub fn iter(&self) -> Iter<'_, K, V> {
        Iter::new(self)
    }

    /// The keys in order.
    pub fn keys(&self) -> Keys<'_, K, V> {
        Keys(self.iter())
    }

    /// The values in key order.
    pub fn values(&self) -> Values<'_, K, V> {
        Values(self.iter())
    }

    /// The first element (smallest key).
    pub fn first_key_value(&self) -> Option<(&K, &V)> {
        self.iter().next()
    }

    /// The last element (largest key).
    pub fn last_key_value(&self) -> Option<(&K, &V)> {
        self.iter().next_back()
    }

    /// The element of `key`: its node and index.
    #[inline]
    fn find<Q>(&self, key: &Q) -> Option<(Node<K, V>, usize)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut node = self.root()?;
        let mut level = node.level();
        loop {
            let (i, found) = node.search(key);
            if found {
                return Some((node, i));
            }
            if level == 0 {
                return None;
            }
            // SAFETY: an internal node (level > 0) and `i <= len`.
            node = unsafe { node.child(i) };
            level -= 1;
        }
    }

    /// The value of `key`.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        // SAFETY: an initialised value, borrowed with the map.
        self.find(key).map(|(node, i)| unsafe { &*node.val(i) })
    }

    /// The stored key and the value of `key`.
    pub fn get_key_value<Q>(&self, key: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        // SAFETY: an initialised element, borrowed with the map.
        self.find(key)
            .map(|(node, i)| unsafe { (node.key_ref(i), &*node.val(i)) })
    }

    /// Whether the map holds `key`.
    #[inline]
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).is_some()
    }

    /// The elements whose keys lie in `range`, in order. Unlike std, a range that starts
    /// after it ends (or is empty with both ends excluded) is empty rather than a panic.
    pub fn range<Q, R>(&self, range: R) -> Range<'_, K, V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        R: RangeBounds<Q>,
    {
        Range::new(self, range)
    }
}

impl<K, V> Default for Map<K, V> {
    fn default() -> Self {
        Map::new()
    }
}

impl<'a, K, V> IntoIterator for &'a Map<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Iter<'a, K, V> {
        self.iter()
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for Map<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: PartialEq, V: PartialEq> PartialEq for Map<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<K: Eq, V: Eq> Eq for Map<K, V> {}

impl<K: PartialOrd, V: PartialOrd> PartialOrd for Map<K, V> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.iter().partial_cmp(other.iter())
    }
}

impl<K: Ord, V: Ord> Ord for Map<K, V> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.iter().cmp(other.iter())
    }
}

impl<K: Hash, V: Hash> Hash for Map<K, V> {
    /// As std's `BTreeMap`: the length, then each pair.
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.len());
        for pair in self {
            pair.hash(state);
        }
    }
}

/// `map[&key]`, as std.
///
/// # Panics
///
/// When the map does not hold `key` (use [`Map::get`] for an `Option`).
impl<K, Q, V> Index<&Q> for Map<K, V>
where
    K: Borrow<Q>,
    Q: Ord + ?Sized,
{
    type Output = V;

    fn index(&self, key: &Q) -> &V {
        self.get(key).expect("no entry found for key")
    }
}

impl<K: ShmSafe, V: ShmSafe> Map<K, V> {
    /// What the fingerprint hashes beside the name.
    const GENERICS: &'static [u64] = &[
        K::POINTEE_FINGERPRINT,
        V::POINTEE_FINGERPRINT,
        node::CAPACITY as u64,
    ];
}

// SAFETY: the header holds an offset pointer, an integer and the staging slots, which
// hold nothing between operations; `relocate` re-aims the pointer after a move of the
// header (the nodes stay where they are) and re-tags what named it; `validate` accepts
// exactly the trees the map's methods can rely on, in a writable mapping with each node
// owned through its one pointer (module docs), and the elements they count. The drop glue
// is the map's own (a segment container).
unsafe impl<K: ShmSafe, V: ShmSafe> ShmSafe for Map<K, V> {
    /// Over the pointee fingerprints of keys and values, as an `OffsetPtr`'s (a type may
    /// hold a map of itself), and the node capacity.
    const LAYOUT_FINGERPRINT: u64 = compound_fingerprint("Map", Self::GENERICS);

    /// A sorted tree of nodes (for the inspector's `dump`; its parts are
    /// `node::LeafNode::PARTS`).
    const SCHEMA: Option<&'static Schema> = Some(&Schema::container(
        "Map",
        "btree",
        size_of::<Self>(),
        align_of::<Self>(),
        Self::GENERICS,
        LeafNode::<K, V>::PARTS,
    ));

    fn for_each_schema(f: &mut dyn FnMut(&'static Schema) -> bool) {
        container_schemas::<(K, V)>(Self::SCHEMA, f);
    }

    /// A node outside the segment, or two links to one node, must be refused.
    const ALL_BIT_PATTERNS_VALID: bool = false;

    unsafe fn validate(value: *const Self) -> Result<(), Invalid> {
        if K::ALL_BIT_PATTERNS_VALID && V::ALL_BIT_PATTERNS_VALID {
            // SAFETY: forwarded contract.
            return unsafe { validate::validate(value) };
        }
        // SAFETY: forwarded contract (the header is readable and not written meanwhile).
        crate::boxed::block::contents(unsafe { &*value }, || unsafe { validate::validate(value) })
    }

    #[inline]
    unsafe fn relocate(&mut self, moved_from: usize) {
        if self.rootless() {
            return;
        }
        // The root's old absolute target, from its old address (an `OffsetPtr`'s own
        // hook needs a `ShmSafe` target, which a node is not: its slots may be empty).
        let old = moved_from + core::mem::offset_of!(Self, root);
        let target = old.wrapping_add_signed(self.root.offset());
        // SAFETY: the header moved within its segment; the root node stays where it was.
        unsafe { self.root.set(core::ptr::with_exposed_provenance(target)) };
        if let Some(root) = self.root() {
            // SAFETY: the nodes are this map's (the caller's contract: `self` holds the
            // bytes that were its header), in the writable mapping it was moved in. The
            // root's owner, the root pointer, moved; the only child of a root without keys
            // may name it too (module docs), so it gets its own owner, the root.
            unsafe {
                root.own(self.root_owner());
                if root.level() > 0 && root.len() == 0 {
                    root.child(0).own(root.id());
                }
            }
        }
    }

    /// The layout fingerprint, the same in every program.
    fn type_fingerprint() -> u64 {
        Self::LAYOUT_FINGERPRINT
    }
}

// SAFETY: the header and nodes change only through `&mut` (`MapExt`), and immutable
// elements make an immutable whole.
unsafe impl<K: ShmImmutable, V: ShmImmutable> ShmImmutable for Map<K, V> {}
// SAFETY: the impl above asks only `K, V: ShmImmutable`.
unsafe impl<K, V> ForwardsImmutable for Map<K, V> {}

impl<K, V> Drop for Map<K, V> {
    /// Drops the elements in place and gives every node back to the segment.
    fn drop(&mut self) {
        raw::clear(self);
    }
}
