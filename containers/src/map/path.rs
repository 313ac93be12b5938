//! [`Path`]: a position in a map's tree, as the nodes from the root down to a leaf and
//! an index in each. Nodes carry no parent pointers (a parent pointer is one more link a
//! crash could leave stale), so iterators, searches and the removal algorithm keep the
//! way back up here instead.

use core::borrow::Borrow;
use core::ops::Bound;

use super::node::{LeafNode, Node, LEVELS};

/// Nodes and indices from a leaf (level 0) up to the root (level `height`). At each level
/// above the bottom of the path the index is the edge the path goes down; a path that
/// ends in a leaf is a *leaf edge*, the gap in front of key `idx[0]` of that leaf.
///
/// Every gap between two neighbouring elements (and the two ends) is exactly one leaf
/// edge, so two cursors meet when their leaf edges are equal: iteration ends by position,
/// never by trusting a count.
///
/// Levels `0..=height` hold live nodes of a map borrowed for as long as the path is used
/// (its methods rely on that); every index is at most its node's length. The removal
/// algorithm keeps both true as it changes the tree.
pub(super) struct Path<K, V> {
    nodes: [*mut LeafNode<K, V>; LEVELS],
    idx: [u8; LEVELS],
    height: usize,
}

impl<K, V> Clone for Path<K, V> {
    fn clone(&self) -> Self {
        Path {
            nodes: self.nodes,
            idx: self.idx,
            height: self.height,
        }
    }
}

impl<K, V> Path<K, V> {
    /// A path in no tree: its leaf edge is null, the same as any other empty path's.
    pub(super) fn empty() -> Self {
        Path {
            nodes: [core::ptr::null_mut(); LEVELS],
            idx: [0; LEVELS],
            height: 0,
        }
    }

    /// A path that starts at `root`, its index there 0.
    pub(super) fn at(root: Node<K, V>) -> Self {
        let mut path = Path::empty();
        path.height = root.level();
        path.set(path.height, root, 0);
        path
    }

    /// The level of the root.
    #[inline(always)]
    pub(super) fn height(&self) -> usize {
        self.height
    }

    /// The root is `levels` lower now (it was replaced by its only child): the path
    /// below is unchanged.
    pub(super) fn lower_root(&mut self, levels: usize) {
        self.height -= levels;
    }

    /// A new root above the old one, its index 0.
    pub(super) fn raise_root(&mut self, root: Node<K, V>) {
        self.height += 1;
        self.set(self.height, root, 0);
    }

    /// The node at `level`.
    #[inline(always)]
    pub(super) fn node(&self, level: usize) -> Node<K, V> {
        // SAFETY: a level of the path holds a live node (the type's invariant).
        unsafe { Node::new(core::ptr::NonNull::new_unchecked(self.nodes[level])) }
    }

    /// The index at `level`.
    #[inline(always)]
    pub(super) fn idx(&self, level: usize) -> usize {
        usize::from(self.idx[level])
    }

    /// Sets the node and the index at `level`.
    #[inline(always)]
    pub(super) fn set(&mut self, level: usize, node: Node<K, V>, idx: usize) {
        self.nodes[level] = node.as_ptr();
        self.set_idx(level, idx);
    }

    /// Sets the index at `level`.
    #[inline(always)]
    pub(super) fn set_idx(&mut self, level: usize, idx: usize) {
        debug_assert!(idx <= super::node::CAPACITY);
        self.idx[level] = idx as u8;
    }

    /// Goes down from `level` along its index to the leftmost leaf edge below.
    pub(super) fn descend_first(&mut self, mut level: usize) {
        while level > 0 {
            // SAFETY: the node at `level > 0` is internal and its index at most its length.
            let child = unsafe { self.node(level).child(self.idx(level)) };
            level -= 1;
            self.set(level, child, 0);
        }
    }

    /// Goes down from `level` along its index to the rightmost leaf edge below.
    pub(super) fn descend_last(&mut self, mut level: usize) {
        while level > 0 {
            // SAFETY: as in `descend_first`.
            let child = unsafe { self.node(level).child(self.idx(level)) };
            level -= 1;
            self.set(level, child, child.len());
        }
    }

    /// The leaf edge in front of the first element.
    pub(super) fn first(root: Node<K, V>) -> Self {
        let mut path = Path::at(root);
        path.descend_first(path.height);
        path
    }

    /// The leaf edge after the last element.
    pub(super) fn last(root: Node<K, V>) -> Self {
        let mut path = Path::at(root);
        path.set_idx(path.height, root.len());
        path.descend_last(path.height);
        path
    }

    /// The leaf edge at a range's `bound`: in front of the first element inside it for a
    /// start bound (`upper == false`), after the last one inside it for an end bound.
    pub(super) fn seek<Q>(root: Node<K, V>, bound: Bound<&Q>, upper: bool) -> Self
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut path = Path::at(root);
        let mut node = root;
        let mut level = path.height;
        loop {
            let i = match bound {
                Bound::Unbounded if upper => node.len(),
                Bound::Unbounded => 0,
                Bound::Included(q) | Bound::Excluded(q) => {
                    let (i, found) = node.search(q);
                    // Past an equal key when the bound leaves it out in front (a start
                    // bound that excludes it) or keeps it (an end bound that includes it).
                    let past = matches!(bound, Bound::Included(_)) == upper;
                    i + usize::from(found && past)
                }
            };
            path.set(level, node, i);
            if level == 0 {
                return path;
            }
            // SAFETY: an internal node and `i <= len`.
            node = unsafe { node.child(i) };
            level -= 1;
        }
    }

    /// Whether both paths end at the same leaf edge.
    #[inline(always)]
    pub(super) fn meets(&self, other: &Self) -> bool {
        self.nodes[0] == other.nodes[0] && self.idx[0] == other.idx[0]
    }

    /// The element after this leaf edge, without moving: its node, index and level.
    #[inline]
    pub(super) fn peek(&self) -> Option<(Node<K, V>, usize, usize)> {
        if self.nodes[0].is_null() {
            return None;
        }
        let mut level = 0;
        loop {
            let (node, i) = (self.node(level), self.idx(level));
            if i < node.len() {
                return Some((node, i, level));
            }
            if level == self.height {
                return None;
            }
            level += 1;
        }
    }

    /// Steps over the element after this leaf edge and returns it (None at the end).
    #[inline]
    pub(super) fn next_kv(&mut self) -> Option<(Node<K, V>, usize)> {
        let (node, i, level) = self.peek()?;
        self.set_idx(level, i + 1);
        self.descend_first(level);
        Some((node, i))
    }

    /// Steps back over the element before this leaf edge and returns it (None at the
    /// start).
    #[inline]
    pub(super) fn next_back_kv(&mut self) -> Option<(Node<K, V>, usize)> {
        if self.nodes[0].is_null() {
            return None;
        }
        let mut level = 0;
        while self.idx(level) == 0 {
            if level == self.height {
                return None;
            }
            level += 1;
        }
        let i = self.idx(level) - 1;
        self.set_idx(level, i);
        self.descend_last(level);
        Some((self.node(level), i))
    }
}
