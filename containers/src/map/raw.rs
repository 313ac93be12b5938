//! The in-place algorithms of [`Map`] on `&mut Map<K, V>`, which only this crate reaches
//! (through [`MapExt`](super::MapExt), from a guard that keeps the map in place):
//! staging, insertion with top-down splits, top-down removal, retain and clear.

use core::borrow::Borrow;
use core::ptr::NonNull;
use core::sync::atomic::{compiler_fence, AtomicU64, Ordering};

use shmkit_runtime::{AllocError, SegmentAllocator, ShmMut, ShmSafe};

use super::node::{self, Discard, Node, Take, B, CAPACITY, LEVELS, MAX_HEIGHT};
use super::path::Path;
use super::Map;
use crate::crash::point;
use crate::emplace::{emplace_at, Emplace};

impl<K, V> Map<K, V> {
    /// The allocator of the mapping this map lives in; the lifetime is the caller's
    /// choice, within the borrow of the map (as `Vec::allocator`).
    fn allocator<'a>(&self) -> Result<SegmentAllocator<'a>, AllocError> {
        let field: *const u64 = &self.len;
        // SAFETY: the reference (to a field of the header, which holds no `K` or `V`) is
        // used only to find the mapping, while the map is borrowed by the caller.
        SegmentAllocator::of(unsafe { &*field })
    }

    /// What the root's tag names: the root pointer.
    #[inline(always)]
    pub(super) fn root_owner(&self) -> *const u8 {
        (&raw const self.root).cast()
    }

    /// Aims the root at `node` (None: empty) with one Release store: a new root is
    /// complete before it is linked, an old one unlinked before it is freed. The new root
    /// names the root pointer as its owner first: a fresh node, or the only child of the
    /// root without keys it replaces, which may name either (see the module docs).
    fn publish_root(&mut self, node: Option<Node<K, V>>) {
        if let Some(node) = node {
            // SAFETY: a node of this map, which is changing it, in its writable mapping.
            unsafe { node.own(self.root_owner()) };
        }
        point("map: the root about to be stored");
        let target = node.map_or(core::ptr::null_mut(), Node::as_ptr);
        // SAFETY: the root pointer stays in the header; `target` is null or a node of the
        // segment the map lives in.
        unsafe { self.root.set_release(target) };
        compiler_fence(Ordering::SeqCst);
        point("map: the root stored");
    }

    /// Publishes the length (Release, and kept in order with what follows).
    fn publish_len(&mut self, len: u64) {
        point("map: the length about to be stored");
        // SAFETY: the field is a live, aligned `u64` (the header is aligned to 8) that
        // `&mut self` keeps everybody else from meanwhile.
        unsafe { AtomicU64::from_ptr(&raw mut self.len) }.store(len, Ordering::Release);
        compiler_fence(Ordering::SeqCst);
        point("map: the length stored");
    }

    /// One more element, counted before it is published (the length never counts fewer
    /// than the tree holds). Saturating: a length from elsewhere may be forged as high as
    /// a `u64` goes (a fuzzed image found one).
    fn raise_len(&mut self) {
        self.publish_len(self.len.saturating_add(1));
    }

    /// One element less, counted after it was disowned.
    fn lower_len(&mut self) {
        self.publish_len(self.len.saturating_sub(1));
    }

    /// The staging slots, derived afresh at each use (a pointer kept across a `&mut`
    /// reborrow of the header would not be valid any more).
    pub(super) fn staged(&mut self) -> (*mut K, *mut V) {
        (self.staged_key.as_mut_ptr(), self.staged_val.as_mut_ptr())
    }

    /// Frees a node that nothing links or counts any more (leaks it if the map were in
    /// no segment, which a map with nodes always is).
    fn free(&self, node: Node<K, V>) {
        if let Ok(alloc) = self.allocator() {
            // SAFETY: the caller's contract: the node is this map's and unlinked.
            unsafe { node::free(&alloc, node) };
        }
    }
}

/// What a removal looks for.
pub(super) enum Seek<'q, Q: ?Sized> {
    /// The element with this key.
    Key(&'q Q),
    /// The first element.
    First,
    /// The last element.
    Last,
    /// The element a path leads to at this level (its indices above are the edges).
    At(usize),
}

/// The path to where `key` is or belongs, and the level where it was found; an empty
/// path for an empty map.
pub(super) fn search<K, V, Q>(map: &Map<K, V>, key: &Q) -> (Path<K, V>, Option<usize>)
where
    K: Borrow<Q>,
    Q: Ord + ?Sized,
{
    let Some(root) = map.root() else {
        return (Path::empty(), None);
    };
    let mut path = Path::at(root);
    let mut node = root;
    let mut level = path.height();
    loop {
        let (i, found) = node.search(key);
        path.set(level, node, i);
        if found {
            return (path, Some(level));
        }
        if level == 0 {
            return (path, None);
        }
        // SAFETY: an internal node and `i <= len`.
        node = unsafe { node.child(i) };
        level -= 1;
    }
}

/// A map in place, as the algorithms below see it. A type of its own rather than
/// inherent methods of `Map`: those would shadow [`MapExt`](super::MapExt)'s methods
/// (see `Vec`'s `InPlace`).
pub(super) struct InPlace<'a, K, V>(pub(super) &'a mut Map<K, V>);

impl<K: ShmSafe, V: ShmSafe> InPlace<'_, K, V> {
    /// Builds a key from `src` in the staging slot; on error the slot stays empty.
    pub(super) fn stage_key<S>(&mut self, src: S) -> Result<(), AllocError>
    where
        K: Emplace<S>,
    {
        let (key, _) = self.0.staged();
        // SAFETY: the staging slot is in place in the header (in the map's segment when
        // the map is in one), holds nothing, and the map is borrowed for the call.
        unsafe { emplace_at(NonNull::new_unchecked(key), src) }
    }

    /// Builds a value from `src` in the staging slot; on error the slot stays empty.
    pub(super) fn stage_val<S>(&mut self, src: S) -> Result<(), AllocError>
    where
        V: Emplace<S>,
    {
        let (_, val) = self.0.staged();
        // SAFETY: as in `stage_key`.
        unsafe { emplace_at(NonNull::new_unchecked(val), src) }
    }

    /// Drops the staged key.
    pub(super) fn drop_staged_key(&mut self) {
        let (key, _) = self.0.staged();
        // SAFETY: the caller staged a key that nothing else owns.
        unsafe { key.drop_in_place() };
    }

    /// Drops the staged key and value.
    fn drop_staged(&mut self) {
        self.drop_staged_key();
        let (_, val) = self.0.staged();
        // SAFETY: the caller staged a value that nothing else owns.
        unsafe { val.drop_in_place() };
    }

    /// The staged key, for a search.
    pub(super) fn staged_key(&self) -> &K {
        // SAFETY: the caller staged a key; it stays there while the map is borrowed.
        unsafe { self.0.staged_key.assume_init_ref() }
    }

    /// Replaces value `i` of `node` by the staged value; `take` reads or drops the old
    /// one once nothing counts it.
    pub(super) fn replace_val<T>(
        &mut self,
        node: Node<K, V>,
        i: usize,
        take: impl Take<(), V, Out = T>,
    ) -> T {
        let (_, val) = self.0.staged();
        // SAFETY: the caller found the element at `(node, i)` and staged a value.
        unsafe { node::replace_val(node, i, val, take) }
    }

    /// Inserts a pair built from `key` and `value`. When the key is there already, its
    /// value is handed to `inspect` in place, then replaced (`take` reads or drops the old
    /// one once nothing counts it) and the new key dropped. All the fallible work comes
    /// first, so an error leaves the map as it was.
    pub(super) fn insert<KS, VS, R, T>(
        &mut self,
        key: KS,
        value: VS,
        inspect: impl FnOnce(ShmMut<'_, V>) -> R,
        take: impl Take<(), V, Out = T>,
    ) -> Result<Option<(R, T)>, AllocError>
    where
        K: Emplace<KS> + Ord,
        V: Emplace<VS>,
    {
        self.stage_key(key)?;
        if let Err(e) = self.stage_val(value) {
            self.drop_staged_key();
            return Err(e);
        }
        point("map: a key and a value staged, not yet placed");
        let (path, found) = search(self.0, self.staged_key());
        let Some(level) = found else {
            self.place(path)?;
            return Ok(None);
        };
        self.drop_staged_key();
        let (node, i) = (path.node(level), path.idx(level));
        // SAFETY: the value of the key found, in place, borrowed with the map for the call.
        let seen = inspect(unsafe { ShmMut::new(&mut *node.val(i)) });
        Ok(Some((seen, self.replace_val(node, i, take))))
    }

    /// Moves the staged pair into the tree at the leaf edge `path` ends at (where a
    /// search found the staged key missing), splitting the full nodes above that leaf
    /// first; returns where the pair went. Without room for the nodes the splits need,
    /// the staged pair is dropped and the map is as it was.
    pub(super) fn place(
        &mut self,
        mut path: Path<K, V>,
    ) -> Result<(Node<K, V>, usize), AllocError> {
        let Some(root) = self.0.root() else {
            let leaf = match self.0.allocator().and_then(|a| node::allocate(&a, 0)) {
                Ok(leaf) => leaf,
                Err(e) => {
                    self.drop_staged();
                    return Err(e);
                }
            };
            let (key, val) = self.0.staged();
            // SAFETY: a fresh leaf, unreachable until published below; the staged pair
            // is live and moves into its first slot.
            unsafe { leaf.put_kv(0, key, val) };
            leaf.publish_len(1);
            self.0.raise_len();
            self.0.publish_root(Some(leaf));
            return Ok((leaf, 0));
        };
        let height = path.height();
        let splits = (0..=height)
            .take_while(|&level| path.node(level).len() == CAPACITY)
            .count();
        let fresh = match self.allocate_splits(splits, height) {
            Ok(fresh) => fresh,
            Err(e) => {
                self.drop_staged();
                return Err(e);
            }
        };
        point("map: the nodes for the splits allocated, not yet linked");
        if let Some(top) = fresh[height + 1].filter(|_| splits > height) {
            // SAFETY: a fresh node one level above the root, published once complete.
            unsafe { node::grow_root(top, root) };
            self.0.publish_root(Some(top));
            path.raise_root(top);
        }
        for level in (0..splits).rev() {
            let Some(right) = fresh[level] else { continue };
            let (full, i) = (path.node(level), path.idx(level));
            let (parent, at) = (path.node(level + 1), path.idx(level + 1));
            // SAFETY: `full` is child `at` of `parent`, which has room: it was not full,
            // or is the fresh root, or was split just before (top-down); `right` is fresh.
            unsafe { node::split(parent, at, full, right) };
            match node::split_side(i) {
                (false, i) => path.set_idx(level, i),
                (true, i) => {
                    path.set(level, right, i);
                    path.set_idx(level + 1, at + 1);
                }
            }
        }
        let (leaf, i) = (path.node(0), path.idx(0));
        self.0.raise_len();
        let (key, val) = self.0.staged();
        // SAFETY: the leaf has room now and `i <= len`; the staged pair is live.
        unsafe { leaf.insert_fit(i, key, val, None) };
        Ok((leaf, i))
    }

    /// The nodes the splits need, by level: one per split (levels `0..splits`), and a
    /// new root when every level splits. On error none is left allocated.
    fn allocate_splits(
        &self,
        splits: usize,
        height: usize,
    ) -> Result<[Option<Node<K, V>>; LEVELS + 1], AllocError> {
        let mut fresh = [None; LEVELS + 1];
        if splits == 0 {
            return Ok(fresh);
        }
        let grows = splits > height;
        if grows && height == MAX_HEIGHT {
            return Err(AllocError::capacity_overflow());
        }
        let alloc = self.0.allocator()?;
        for level in 0..splits + usize::from(grows) {
            match node::allocate(&alloc, level) {
                Ok(node) => fresh[level] = Some(node),
                Err(e) => {
                    for node in fresh.iter().flatten() {
                        // SAFETY: allocated just above, never linked.
                        unsafe { node::free(&alloc, *node) };
                    }
                    return Err(e);
                }
            }
        }
        Ok(fresh)
    }

    /// Removes the element `seek` finds and returns what `inspect` (called with it still
    /// in place) and `take` (called once nothing counts it, to read or drop both)
    /// return; None when there is none.
    ///
    /// Top-down: every child entered on the way has more than the minimum first (see
    /// [`fix_child`](Self::fix_child)), so nothing is rebalanced after the element is
    /// gone, and `path` ends as the leaf edge in front of the element that followed it.
    /// For `Seek::At`, `path` is the way to the element on entry.
    pub(super) fn remove<Q, R, T>(
        &mut self,
        mut seek: Seek<'_, Q>,
        path: &mut Path<K, V>,
        inspect: impl FnOnce(&K, ShmMut<'_, V>) -> R,
        take: impl Take<K, V, Out = T>,
    ) -> Option<(R, T)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut node = self.collapse_root(path, matches!(seek, Seek::At(_)))?;
        let mut level = node.level();
        loop {
            let len = node.len();
            let (i, found) = match seek {
                Seek::Key(q) => node.search(q),
                Seek::First => (0, level == 0 && len > 0),
                Seek::Last if level == 0 => (len.saturating_sub(1), len > 0),
                Seek::Last => (len, false),
                Seek::At(at) => (path.idx(level), level == at),
            };
            if i > len || (found && i == len) {
                return None;
            }
            path.set(level, node, i);
            if level == 0 {
                return found.then(|| self.remove_from_leaf(path, node, i, inspect, take));
            }
            if !found {
                let (child, edge, shift) = self.fix_child(node, i);
                path.set_idx(level, edge);
                if let Seek::At(_) = seek {
                    path.set_idx(level - 1, path.idx(level - 1) + shift);
                }
                self.collapse_emptied_root(path, node, level);
                node = child;
                level -= 1;
                continue;
            }
            // SAFETY: an internal node and `i < len`.
            let (left, right) = unsafe { (node.child(i), node.child(i + 1)) };
            if left.len() >= B {
                // The predecessor, last in the left subtree, takes the key's place.
                let (leaf, j) = self.descend_to_end(left, level - 1, true)?;
                let seen = self.inspect(node, i, inspect);
                leaf.disown_from(j);
                // SAFETY: the predecessor is live, uncounted now, in another node.
                let taken = unsafe { node::replace_kv(node, i, leaf.key(j), leaf.val(j), take) };
                self.0.lower_len();
                path.set_idx(level, i + 1);
                path.descend_first(level);
                return Some((seen, taken));
            }
            if right.len() >= B {
                // The successor, first in the right subtree, takes the key's place.
                let (leaf, _) = self.descend_to_end(right, level - 1, false)?;
                let seen = self.inspect(node, i, inspect);
                // SAFETY: `leaf` is the leftmost leaf below edge `i + 1`, not empty.
                let taken = unsafe { node::replace_by_first(node, i, leaf, take) };
                self.0.lower_len();
                path.descend_last(level);
                return Some((seen, taken));
            }
            // Both children are minimal: they merge around the key, which goes on down.
            let at = left.len();
            // SAFETY: children `i` and `i + 1` hold fewer than `B` keys each.
            let freed = unsafe { node::merge(node, i) };
            self.0.free(freed);
            self.collapse_emptied_root(path, node, level);
            seek = Seek::At(level - 1);
            path.set_idx(level - 1, at);
            node = left;
            level -= 1;
        }
    }

    /// Hands element `i` of `node`, still in place and counted, to `inspect`.
    fn inspect<R>(
        &mut self,
        node: Node<K, V>,
        i: usize,
        inspect: impl FnOnce(&K, ShmMut<'_, V>) -> R,
    ) -> R {
        // SAFETY: an initialised element, in place, borrowed with the map for the call.
        unsafe { inspect(node.key_ref(i), ShmMut::new(&mut *node.val(i))) }
    }

    /// The removal at the bottom of [`remove`](Self::remove): pair `i` of `leaf`.
    fn remove_from_leaf<R, T>(
        &mut self,
        path: &Path<K, V>,
        leaf: Node<K, V>,
        i: usize,
        inspect: impl FnOnce(&K, ShmMut<'_, V>) -> R,
        take: impl Take<K, V, Out = T>,
    ) -> (R, T) {
        let seen = self.inspect(leaf, i, inspect);
        // SAFETY: a leaf and `i < len`.
        let taken = unsafe { node::remove_fit(leaf, i, take) };
        self.0.lower_len();
        if path.height() == 0 && leaf.len() == 0 {
            self.0.publish_root(None);
            self.0.free(leaf);
        }
        (seen, taken)
    }

    /// Goes from `node` (holding at least `B` keys) at `level` down to its last leaf
    /// (`last`) or first one, fixing each child entered; the leaf and the index of its
    /// last or first pair. None only if that leaf were empty, which the fixing rules out.
    fn descend_to_end(
        &mut self,
        mut node: Node<K, V>,
        mut level: usize,
        last: bool,
    ) -> Option<(Node<K, V>, usize)> {
        while level > 0 {
            let i = if last { node.len() } else { 0 };
            node = self.fix_child(node, i).0;
            level -= 1;
        }
        let len = node.len();
        (len > 0).then(|| (node, if last { len - 1 } else { 0 }))
    }

    /// Gives child `i` of `node` at least `B` keys (or one, when it merges with a
    /// sibling as small as itself, as after a crash) before the removal goes down into
    /// it: merged with its left sibling (else its right one) when both fit in a node,
    /// else topped up to `B` from that sibling. Returns the child to go down into, its
    /// edge index, and how far the child's old pairs moved right inside it.
    fn fix_child(&mut self, node: Node<K, V>, i: usize) -> (Node<K, V>, usize, usize) {
        // SAFETY: `node` is internal and `i <= len` (the caller's). Below, the siblings
        // named exist: `i > 0` for the left one, `i < len` (as `i == 0 < len`) for the right.
        let child = unsafe { node.child(i) };
        let len = child.len();
        if len >= B || node.len() == 0 {
            return (child, i, 0);
        }
        if i > 0 {
            // SAFETY: see above.
            let left = unsafe { node.child(i - 1) };
            let left_len = left.len();
            if left_len + 1 + len <= CAPACITY {
                // SAFETY: see above; the two fit in one node.
                let freed = unsafe { node::merge(node, i - 1) };
                self.0.free(freed);
                return (left, i - 1, left_len + 1);
            }
            // SAFETY: see above; the left sibling has `CAPACITY - len >= B - len` keys.
            unsafe { node::steal_left(node, i, B - len) };
            return (child, i, B - len);
        }
        // SAFETY: see above.
        let right_len = unsafe { node.child(i + 1) }.len();
        if len + 1 + right_len <= CAPACITY {
            // SAFETY: see above; the two fit in one node.
            let freed = unsafe { node::merge(node, i) };
            self.0.free(freed);
        } else {
            // SAFETY: see above; the right sibling has `CAPACITY - len >= B - len` keys.
            unsafe { node::steal_right(node, i, B - len) };
        }
        (child, i, 0)
    }

    /// Replaces internal roots without keys (as a crash can leave) by their only child;
    /// the root, None when the map is empty. A `Seek::At` path (`keep`) loses its top
    /// levels with them, any other path starts at the new root.
    fn collapse_root(&mut self, path: &mut Path<K, V>, keep: bool) -> Option<Node<K, V>> {
        let mut root = self.0.root()?;
        let top = root.level();
        while root.level() > 0 && root.len() == 0 {
            // SAFETY: an internal node's edge 0 is live.
            let child = unsafe { root.child(0) };
            self.0.publish_root(Some(child));
            self.0.free(root);
            root = child;
        }
        if keep {
            path.lower_root(top - root.level());
        } else {
            *path = Path::at(root);
        }
        Some(root)
    }

    /// After a merge below the root at `level` took its last key, its only child
    /// becomes the root.
    fn collapse_emptied_root(&mut self, path: &mut Path<K, V>, node: Node<K, V>, level: usize) {
        if level == path.height() && node.len() == 0 {
            // SAFETY: an internal node's edge 0 is live.
            let child = unsafe { node.child(0) };
            self.0.publish_root(Some(child));
            self.0.free(node);
            path.lower_root(1);
        }
    }

    /// Keeps the elements `keep` says yes to, in order, removing the others one by one:
    /// after each removal the path is already in front of the next element.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&K, ShmMut<'_, V>) -> bool)
    where
        K: Ord,
    {
        let Some(root) = self.0.root() else {
            return;
        };
        let mut path = Path::first(root);
        while let Some((node, i, level)) = path.peek() {
            // SAFETY: an initialised element in place, borrowed with the map for the call.
            let kept = unsafe { keep(node.key_ref(i), ShmMut::new(&mut *node.val(i))) };
            if kept {
                path.next_kv();
                continue;
            }
            self.remove::<K, _, _>(Seek::At(level), &mut path, |_, _| (), Discard);
            if self.0.root().is_none() {
                return;
            }
        }
    }
}

/// Drops every element and frees every node (the map's `Drop`, `clear`): the tree is
/// unlinked first, so a crash meanwhile leaks the rest of it.
pub(super) fn clear<K, V>(map: &mut Map<K, V>) {
    let Some(root) = map.root() else {
        return;
    };
    map.publish_root(None);
    map.publish_len(0);
    let alloc = map.allocator().ok();
    point("map: a tree unlinked, not yet dropped");
    // SAFETY: the unlinked tree is ours alone.
    unsafe { drop_tree(root, root.level(), alloc.as_ref()) };
}

/// Drops the elements of the subtree at `node` (at `level`) and frees its nodes (leaks
/// them without an allocator).
///
/// # Safety
/// Nothing else counts or uses the subtree.
unsafe fn drop_tree<K, V>(node: Node<K, V>, level: usize, alloc: Option<&SegmentAllocator<'_>>) {
    let len = node.len();
    for i in 0..len {
        // SAFETY: the caller owns the subtree: each pair is dropped once.
        unsafe { Discard.take(node.key(i), node.val(i)) };
    }
    if level > 0 {
        for edge in 0..=len {
            // SAFETY: an internal node's edges `0..=len` are live and lead to nodes one
            // level down, each reached once; the caller owns them.
            unsafe { drop_tree(node.child(edge), level - 1, alloc) };
        }
    }
    if let Some(alloc) = alloc {
        // SAFETY: the node is ours, emptied and unlinked.
        unsafe { node::free(alloc, node) };
    }
}
