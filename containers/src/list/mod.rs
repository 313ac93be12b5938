//! [`List<T>`]: a doubly linked list that lives in a segment, std's `LinkedList` with a
//! cursor ([`CursorMut`]).
//!
//! # Layout
//!
//! The header is `#[repr(C)]`, 32 bytes, aligned to 8: self-relative [`OffsetPtr`]s to the
//! first and the last node, the length and a `busy` word, all fixed width. All-zero bytes,
//! like [`List::new`], are an empty list: a link whose offset is 0 (which would aim it at
//! itself) reads as null, as does [`OffsetPtr::null`]. Each element lives in a node of its
//! own, a segment block `{tag, next, prev, value}` of the segment the header lives in. A
//! node never moves while its element is in the list: a position-dependent element (a
//! nested `Vec`) is built in its node and never relocated, and the header may move (as an
//! element of a `Vec<List<_>>`) by re-aiming its two pointers (no node points back at it)
//! and re-tagging the first node (below).
//!
//! # Crash consistency
//!
//! A process killed at any instruction of a mutating operation (or a panic in a closure
//! it was given) leaves a list that is memory-safe to read and to drop, possibly leaking:
//! - The forward links (`head`, each node's `next`) are the authority on what the list
//!   holds. Each changes by one Release store: linking a node whose value and links are
//!   written already, or unlinking one before its value is dropped and the node freed. So
//!   at every instruction they form a finite chain of live nodes, each with one owner; a
//!   node moved from another list ([`ListExt::append`]) is unlinked there first and passes
//!   through "no owner" (a leak at worst), never "two owners".
//! - `prev`, `tail` and `len` are hints, right whenever `busy` is 0. A mutating operation
//!   sets `busy` before its first store and clears it with a Release store after its last,
//!   so a list left half changed says so; the next mutating operation first rebuilds the
//!   hints from the forward chain. Until then reading uses the forward links only: `len`,
//!   `back` and iterating from the back walk the chain (O(n) instead of O(1)).
//! - Dropping (and [`clear`](ListExt::clear)) unlinks the first node, drops its value and
//!   frees it, node after node along the forward links.
//! - A node's tag (below) names the owner of the link that reaches it; a link store and
//!   the re-tag of the node it reaches are two stores, ordered so that at every instant
//!   the tag names that owner or, while `busy`, the owner of the link before it: linking
//!   a node stores the link first and then re-tags the node after it, unlinking re-tags
//!   the node after first and then stores the link. The repair re-tags every node.
//!
//! # One owner per node
//!
//! A node's first word is a tag ([`set_owner`]) that names the one link owning it, by an
//! address that is unique and stays put while the list changes: the header's `head` field
//! for the first node, the block start of the node before for the others (whose `next`
//! is the link). Linking a node writes its tag and re-tags the node after it, unlinking
//! re-tags the node after it, [`append`](ListExt::append) re-tags the first node it
//! moves, and the header's `relocate` re-tags the first node (`head` moved with it).
//!
//! # Bytes from elsewhere
//!
//! [`validate`](ShmSafe::validate) walks the forward chain: each node lies in the list's
//! own mapping, aligned, apart from the header and from every other node of the list; the
//! chain ends (Brent's cycle search: a forged cycle is refused in O(n), never walked
//! forever); each element is valid; and unless `busy` is set, `prev`, `tail` and `len`
//! match the chain. In a writable mapping each node must also be a block of its own
//! ([`check_owned`]: the start of a used block of the allocator, neither an object nor
//! the segment's own) whose tag names the owner of its link, or while `busy` the owner of
//! the link before (see crash consistency).
//!
//! So no two links in a forged file own one node, whatever containers they belong to. A
//! tag names either a container header's field (here one list's `head`) or a block start,
//! where no header lies: every block a container owns starts with its tag, and objects
//! are marked blocks. A `head`, or the `next` of the node at a block start, aims at one
//! node; so a node tagged for an owner passes only through that owner's link or (the
//! reading `busy` allows) the link after it, the `next` of the node that link aims at.
//! Through both, that node would be the tagged one, linked after itself: a cycle, which
//! is refused. By induction from the headers, every node accepted is owned through one
//! link of one list.
//!
//! [`OffsetPtr`]: shmkit_runtime::OffsetPtr
//! [`OffsetPtr::null`]: shmkit_runtime::OffsetPtr::null
//! [`set_owner`]: shmkit_runtime::segment::owned::set_owner
//! [`check_owned`]: shmkit_runtime::segment::owned::check_owned

mod ext;
mod raw;

pub use ext::{AppendError, CursorMut, IterMut, ListExt};

use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::marker::PhantomData;
use core::ptr::NonNull;

use shmkit_runtime::layout::{compound_fingerprint, container_schemas, ForwardsImmutable};
use shmkit_runtime::{AllocError, FieldSchema, Invalid, OffsetPtr, Schema, ShmImmutable, ShmSafe};

use crate::emplace::{Emplace, Filled, Slot};

/// A doubly linked list in a segment: std's `LinkedList<T>`, with allocation failure as
/// an error, mutation in place and a cursor (see the [module docs](self)).
///
/// By value a `List` is only ever empty ([`List::new`], [`Default`]): it gets elements
/// once it lives in a segment, through [`ListExt`] (`use shmkit::prelude::*`). Each
/// element gets a node of its own that never moves, allocated from the segment the list
/// lives in (found from its own address), so `List::new()` is `const`.
///
/// ```
/// use shmkit_containers::{List, ListExt};
/// use shmkit_runtime::ManagedHeapMemory;
///
/// let mut seg = ManagedHeapMemory::new(1 << 16)?;
/// seg.construct("queue", List::<u64>::new())?;
/// let mut queue = seg.find_mut::<List<u64>>("queue")?.expect("constructed above");
/// queue.push_back(2)?;
/// queue.push_back(3)?;
/// queue.push_front(1)?;
/// assert_eq!(*queue, [1, 2, 3]);
/// assert_eq!((queue.pop_front(), queue.back()), (Some(1), Some(&3)));
/// # Ok::<(), shmkit_runtime::Error>(())
/// ```
#[repr(C, align(8))]
pub struct List<T> {
    head: Link<T>,
    tail: Link<T>,
    len: u64,
    /// Nonzero while a mutating operation is under way, or after one was interrupted.
    busy: u64,
    /// The list owns its elements (for drop check).
    _owns: PhantomData<T>,
}

/// A link to a node: null when its offset is 0 or [`OffsetPtr::null`]'s.
type Link<T> = OffsetPtr<Node<T>>;

/// A node: a segment block of its own, which stays where it is while linked.
#[repr(C)]
struct Node<T> {
    /// Names the link that owns the node (see "Bytes from elsewhere" in the module docs),
    /// written with [`set_owner`](shmkit_runtime::segment::owned::set_owner) and read only
    /// by a validation.
    tag: u64,
    next: Link<T>,
    prev: Link<T>,
    value: T,
}

/// A node of a list, as the list's links give it.
type NodePtr<T> = NonNull<Node<T>>;

/// The node `link` aims at, None for null (offset 0, as in all-zero bytes, included).
#[inline(always)]
fn target<T>(link: &Link<T>) -> Option<NodePtr<T>> {
    if link.offset() == 0 {
        None
    } else {
        NonNull::new(link.get())
    }
}

/// The node after `node`.
///
/// # Safety
/// `node` is a live node of a list, borrowed for as long as the result is used.
#[inline(always)]
unsafe fn next<T>(node: NodePtr<T>) -> Option<NodePtr<T>> {
    // SAFETY: the caller's node is live; only its link field is referenced.
    target(unsafe { &(*node.as_ptr()).next })
}

/// The node before `node`, as far as the hints say.
///
/// # Safety
/// As for [`next`].
#[inline(always)]
unsafe fn prev<T>(node: NodePtr<T>) -> Option<NodePtr<T>> {
    // SAFETY: as in `next`.
    target(unsafe { &(*node.as_ptr()).prev })
}

/// The value of `node`.
///
/// # Safety
/// As for [`next`], with the value not mutated for `'a`.
#[inline(always)]
unsafe fn value<'a, T>(node: NodePtr<T>) -> &'a T {
    // SAFETY: the caller's node is live and initialised, its value shared for `'a`.
    unsafe { &(*node.as_ptr()).value }
}

/// Re-aims `link`, just byte-copied from `moved_from`, at the node it aimed at there (a
/// null link, offset 0 included, stays null).
///
/// # Safety
/// `link` holds the bytes that were at `moved_from`, and it is in the segment of its
/// target (it moved within the segment).
unsafe fn relocate_link<T>(link: &mut Link<T>, moved_from: usize) {
    if let Some(node) = target(link) {
        let moved_by = (&raw const *link).addr().wrapping_sub(moved_from);
        // SAFETY: the caller's contract: the old target is a node of this segment.
        unsafe { link.set(node.as_ptr().wrapping_byte_sub(moved_by)) };
    }
}

// SAFETY: as std's `LinkedList`: the list owns its elements, reached only through it.
unsafe impl<T: Send> Send for List<T> {}
// SAFETY: as above; `&List<T>` gives only `&T`.
unsafe impl<T: Sync> Sync for List<T> {}

impl<T> List<T> {
    /// An empty list, allocating nothing (all-zero bytes are one too).
    pub const fn new() -> Self {
        List {
            head: OffsetPtr::null(),
            tail: OffsetPtr::null(),
            len: 0,
            busy: 0,
            _owns: PhantomData,
        }
    }

    /// Number of elements: O(1), or a walk when an interrupted operation left the count
    /// unsure (see the module docs).
    pub fn len(&self) -> usize {
        if self.busy == 0 {
            self.len as usize
        } else {
            self.walk().0
        }
    }

    /// Whether there are no elements.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.first().is_none()
    }

    /// The first element, None when empty.
    pub fn front(&self) -> Option<&T> {
        // SAFETY: a linked node is live while the list is borrowed.
        self.first().map(|n| unsafe { value(n) })
    }

    /// The last element, None when empty.
    pub fn back(&self) -> Option<&T> {
        // SAFETY: as in `front`.
        self.last().map(|n| unsafe { value(n) })
    }

    /// The elements, front to back (and back to front: double-ended).
    pub fn iter(&self) -> Iter<'_, T> {
        Iter {
            nodes: self.nodes(),
            _list: PhantomData,
        }
    }

    /// Whether an element equals `x`.
    pub fn contains(&self, x: &T) -> bool
    where
        T: PartialEq,
    {
        self.iter().any(|e| e == x)
    }

    /// The first node.
    #[inline(always)]
    fn first(&self) -> Option<NodePtr<T>> {
        target(&self.head)
    }

    /// The last node: the tail hint, or the end of the forward chain when it is unsure.
    fn last(&self) -> Option<NodePtr<T>> {
        if self.busy == 0 {
            target(&self.tail)
        } else {
            self.walk().1
        }
    }

    /// Every node, for [`Iter`] and [`IterMut`].
    fn nodes(&self) -> Nodes<T> {
        let (len, back, backward) = if self.busy == 0 {
            (self.len as usize, target(&self.tail), true)
        } else {
            let (len, last) = self.walk();
            (len, last, false)
        };
        Nodes {
            front: self.first(),
            back,
            len,
            backward,
        }
    }

    /// Counts the nodes along the forward links, and finds the last. The chain is finite
    /// (the module docs; `validate` for bytes from elsewhere).
    fn walk(&self) -> (usize, Option<NodePtr<T>>) {
        let (mut count, mut last, mut at) = (0, None, self.first());
        while let Some(node) = at {
            count += 1;
            last = Some(node);
            // SAFETY: a linked node is live while the list is borrowed.
            at = unsafe { next(node) };
        }
        (count, last)
    }
}

/// The nodes of a list not yet yielded from either end: what [`Iter`] and [`IterMut`]
/// walk. The list is borrowed by the iterator for as long as it is used.
struct Nodes<T> {
    front: Option<NodePtr<T>>,
    back: Option<NodePtr<T>>,
    /// Nodes not yet yielded from either end.
    len: usize,
    /// Whether the `prev` hints may be followed (the list was not left half changed).
    backward: bool,
}

impl<T> Clone for Nodes<T> {
    fn clone(&self) -> Self {
        Nodes { ..*self }
    }
}

impl<T> Nodes<T> {
    /// The next node from the front.
    #[inline]
    fn next(&mut self) -> Option<NodePtr<T>> {
        if self.len == 0 {
            return None;
        }
        let node = self.front?;
        self.len -= 1;
        // SAFETY: a node of the list, which the iterator borrows.
        self.front = unsafe { next(node) };
        Some(node)
    }

    /// The next node from the back.
    fn next_back(&mut self) -> Option<NodePtr<T>> {
        if self.len == 0 {
            return None;
        }
        let node = self.back?;
        self.len -= 1;
        self.back = if self.len == 0 {
            None
        } else if self.backward {
            // SAFETY: as in `next`.
            unsafe { prev(node) }
        } else {
            // Without trusted `prev` hints: the last of the `len` nodes left.
            let mut at = self.front;
            for _ in 1..self.len {
                // SAFETY: one of the `len` nodes left from `front` on, which are linked.
                at = at.and_then(|n| unsafe { next(n) });
            }
            at
        };
        Some(node)
    }
}

/// The elements of a [`List`], front to back or back to front ([`List::iter`]).
pub struct Iter<'a, T> {
    nodes: Nodes<T>,
    _list: PhantomData<&'a T>,
}

// SAFETY: an iterator of `&T`, like std's.
unsafe impl<T: Sync> Send for Iter<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Iter<'_, T> {}

impl<T> Clone for Iter<'_, T> {
    fn clone(&self) -> Self {
        Iter {
            nodes: self.nodes.clone(),
            _list: PhantomData,
        }
    }
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;

    #[inline]
    fn next(&mut self) -> Option<&'a T> {
        // SAFETY: a node of the list, which is borrowed for `'a`.
        self.nodes.next().map(|n| unsafe { value(n) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.nodes.len, Some(self.nodes.len))
    }
}

impl<T> DoubleEndedIterator for Iter<'_, T> {
    fn next_back(&mut self) -> Option<Self::Item> {
        // SAFETY: as in `next`.
        self.nodes.next_back().map(|n| unsafe { value(n) })
    }
}

impl<T> ExactSizeIterator for Iter<'_, T> {}

impl<T> core::iter::FusedIterator for Iter<'_, T> {}

impl<T> Default for List<T> {
    fn default() -> Self {
        List::new()
    }
}

impl<'a, T> IntoIterator for &'a List<T> {
    type Item = &'a T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T: fmt::Debug> fmt::Debug for List<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self).finish()
    }
}

impl<T: PartialEq<U>, U> PartialEq<List<U>> for List<T> {
    fn eq(&self, other: &List<U>) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<T: PartialEq<U>, U> PartialEq<[U]> for List<T> {
    fn eq(&self, other: &[U]) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<T: PartialEq<U>, U, const N: usize> PartialEq<[U; N]> for List<T> {
    fn eq(&self, other: &[U; N]) -> bool {
        *self == other[..]
    }
}

impl<T: Eq> Eq for List<T> {}

impl<T: PartialOrd> PartialOrd for List<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.iter().partial_cmp(other.iter())
    }
}

impl<T: Ord> Ord for List<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.iter().cmp(other.iter())
    }
}

impl<T: Hash> Hash for List<T> {
    /// As std's `LinkedList`: the length, then each element.
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.len());
        self.iter().for_each(|e| e.hash(state));
    }
}

/// A list built in place from any iterable of sources of its elements (values, or what
/// the element type is [`Emplace`]d from).
impl<T, I> Emplace<I> for List<T>
where
    I: IntoIterator,
    T: Emplace<I::Item>,
{
    fn emplace<'a>(slot: Slot<'a, Self>, items: I) -> Result<Filled<'a, Self>, AllocError> {
        let mut list = slot.write(List::new());
        list.as_mut().extend(items)?;
        Ok(list)
    }
}

// SAFETY: the header holds two offset pointers and two integers; `relocate` re-aims the
// pointers after a move of the header (the nodes stay where they are and none points back
// at the header) and re-tags what named `head`; `validate` accepts exactly the lists the
// methods rely on: a finite forward chain of in-bounds, disjoint nodes holding valid
// elements, in a writable mapping each a block owned through its one link (module docs),
// with hints that match it unless `busy` says they are not used. The drop glue is the
// list's own.
unsafe impl<T: ShmSafe> ShmSafe for List<T> {
    /// Over the element's pointee fingerprint, as an `OffsetPtr<T>`'s (a type may hold a
    /// list of itself).
    const LAYOUT_FINGERPRINT: u64 = compound_fingerprint("List", &[T::POINTEE_FINGERPRINT]);

    /// Linked nodes: `len` of them from `head`, each with its `next` link and its `value`
    /// at the node's offsets (for the inspector's `dump`).
    const SCHEMA: Option<&'static Schema> = Some(&Schema::container(
        "List",
        "list",
        size_of::<Self>(),
        align_of::<Self>(),
        &[T::POINTEE_FINGERPRINT],
        &[
            FieldSchema::part(
                "head",
                core::mem::offset_of!(Self, head),
                size_of::<Node<T>>(),
                align_of::<Node<T>>(),
                0,
            ),
            FieldSchema::part(
                "len",
                core::mem::offset_of!(Self, len),
                8,
                8,
                u64::LAYOUT_FINGERPRINT,
            ),
            FieldSchema::part("node.next", core::mem::offset_of!(Node<T>, next), 8, 8, 0),
            FieldSchema::part(
                "node.value",
                core::mem::offset_of!(Node<T>, value),
                size_of::<T>(),
                align_of::<T>(),
                T::LAYOUT_FINGERPRINT,
            ),
        ],
    ));

    fn for_each_schema(f: &mut dyn FnMut(&'static Schema) -> bool) {
        container_schemas::<T>(Self::SCHEMA, f);
    }

    /// Links out of the segment, cycles and wrong counts must be refused.
    const ALL_BIT_PATTERNS_VALID: bool = false;

    unsafe fn validate(value: *const Self) -> Result<(), Invalid> {
        if T::ALL_BIT_PATTERNS_VALID {
            // SAFETY: forwarded contract.
            return unsafe { raw::validate(value) };
        }
        // SAFETY: forwarded contract (the header is readable and not written meanwhile).
        crate::boxed::block::contents(unsafe { &*value }, || unsafe { raw::validate(value) })
    }

    #[inline]
    unsafe fn relocate(&mut self, moved_from: usize) {
        let (head, tail) = (
            core::mem::offset_of!(Self, head),
            core::mem::offset_of!(Self, tail),
        );
        // SAFETY: the pointers moved with the header, each from its own old address.
        unsafe {
            relocate_link(&mut self.head, moved_from.wrapping_add(head));
            relocate_link(&mut self.tail, moved_from.wrapping_add(tail));
        }
        if let Some(first) = self.first() {
            // SAFETY: the nodes are this list's (the caller's contract: `self` holds the
            // bytes that were its header), in the writable mapping it was moved in. The
            // first node's owner, `head`, moved; while `busy` the second node's tag may
            // name `head` too (module docs), so it gets its own owner, the first node.
            unsafe {
                raw::own(first, self.owner(None));
                if let Some(second) = next(first).filter(|_| self.busy != 0) {
                    raw::own(second, self.owner(Some(first)));
                }
            }
        }
    }

    /// The layout fingerprint, the same in every program.
    fn type_fingerprint() -> u64 {
        Self::LAYOUT_FINGERPRINT
    }
}

// SAFETY: the header and the nodes change only through `&mut` (`ListExt`), and immutable
// elements make an immutable whole.
unsafe impl<T: ShmImmutable> ShmImmutable for List<T> {}
// SAFETY: the impl above asks only `T: ShmImmutable`.
unsafe impl<T> ForwardsImmutable for List<T> {}

impl<T> Drop for List<T> {
    /// Drops the elements in place and gives the nodes back to the segment. A list that
    /// is in no writable segment has no nodes (by value it is empty).
    fn drop(&mut self) {
        self.clear_nodes();
    }
}
