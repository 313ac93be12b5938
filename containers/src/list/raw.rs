//! The in-place algorithms of [`List`] on `&mut List<T>`, which only this crate reaches
//! (through [`ListExt`](super::ListExt), from a guard that keeps the list in place):
//! linking and unlinking nodes in the order the module docs' crash consistency asks for,
//! repairing the hints, and checking bytes from elsewhere.

use core::alloc::Layout;
use core::ptr::{self, NonNull};
use core::sync::atomic::{compiler_fence, AtomicU64, Ordering};

use shmkit_runtime::segment::owned::{check_owned, set_owner};
use shmkit_runtime::{AllocError, Invalid, OffsetPtr, SegmentAllocator, ShmMut, ShmSafe};

use super::{next, prev, target, List, Node, NodePtr};
use crate::crash::{crashing, point};
use crate::emplace::{emplace_at, Emplace};

/// The null target of a link, or `node`'s address.
#[inline(always)]
fn addr_of<T>(node: Option<NodePtr<T>>) -> *const Node<T> {
    node.map_or(ptr::null(), |n| n.as_ptr())
}

/// Records in `node`'s tag that `owner` (see [`List::owner`]) owns it.
///
/// # Safety
/// `node` is a node of a list in a writable mapping, which the caller changes.
#[inline(always)]
pub(super) unsafe fn own<T>(node: NodePtr<T>, owner: *const u8) {
    // SAFETY: the caller's contract: a node's block starts with its tag (the first field of
    // the `#[repr(C)]` node, which is aligned to 8), and it is the caller's to write.
    unsafe { set_owner(node.cast(), owner) };
}

impl<T> List<T> {
    /// What the tag of the node after `before` (the first node, for None) names as its
    /// owner: the block start of the node whose `next` links it, or this list's `head`.
    #[inline(always)]
    pub(super) fn owner(&self, before: Option<NodePtr<T>>) -> *const u8 {
        match before {
            None => (&raw const self.head).cast(),
            Some(node) => node.as_ptr().cast(),
        }
    }

    /// Says whether an operation is under way: set before its first store (the fence
    /// keeps them after it), cleared by a Release store after its last.
    #[inline(always)]
    fn publish_busy(&mut self, busy: bool) {
        point("list: busy about to be stored");
        // SAFETY: the field is a live, aligned `u64` (the header is aligned to 8) that
        // `&mut self` keeps everybody else from meanwhile.
        unsafe { AtomicU64::from_ptr(&raw mut self.busy) }.store(busy as u64, Ordering::Release);
        compiler_fence(Ordering::SeqCst);
        point("list: busy stored");
    }

    /// Starts a mutating operation: `busy` until the guard is dropped. Operations call
    /// user code (a closure, a drop) only where the hints are right again, so the guard
    /// may end them on unwinding too.
    #[inline]
    pub(super) fn begin(&mut self) -> Busy<'_, T> {
        self.publish_busy(true);
        Busy(self)
    }

    /// Rebuilds the hints (`prev`, `tail`, `len`) from the forward chain after an
    /// interrupted operation, and the tags (which may name the owner before a node's own,
    /// see the module docs). Itself interrupted, it leaves `busy` set and runs again.
    fn repair(&mut self) {
        let (mut count, mut before, mut at) = (0u64, None, self.first());
        while let Some(node) = at {
            // SAFETY: a linked node, live, reached through `&mut self`; its `prev` link is
            // a hint and its tag a word that only this list writes.
            unsafe {
                own(node, self.owner(before));
                (*node.as_ptr()).prev.set(addr_of(before));
                at = next(node);
            }
            count += 1;
            before = Some(node);
            point("list: hints being repaired");
        }
        // SAFETY: null or a node of this list, in its segment.
        unsafe { self.tail.set(addr_of(before)) };
        self.len = count;
        self.publish_busy(false);
    }

    /// The allocator of the mapping this list lives in, to allocate or free nodes.
    ///
    /// The lifetime is the caller's choice: it must not outlive the caller's borrow of
    /// the list, which keeps the mapping mapped. Every caller uses it within the method
    /// that asked for it.
    pub(super) fn allocator<'a>(&self) -> Result<SegmentAllocator<'a>, AllocError> {
        let field: *const u64 = &self.len;
        // SAFETY: see above: the reference (to a field of the header, which holds no `T`)
        // is used only to find the mapping while the list is borrowed by the caller.
        SegmentAllocator::of(unsafe { &*field })
    }

    /// Unlinks, drops and frees every node, first to last (`Drop`, `clear`). Follows only
    /// the forward links, so it needs no repair first.
    pub(super) fn clear_nodes(&mut self) {
        if self.first().is_none() {
            return;
        }
        let alloc = self.allocator().ok();
        let mut list = self.begin();
        while let Some(node) = list.first() {
            // SAFETY: a linked node; the next one is re-tagged for `head` (the owner before
            // its own, which a busy list allows), then the node is unlinked by one store,
            // and nothing owns it.
            unsafe {
                let after = next(node);
                if let Some(after) = after {
                    own(after, list.owner(None));
                }
                list.head.set_release(addr_of(after));
                point("list: the first node unlinked, not yet dropped");
                free_node(alloc.as_ref(), node);
            }
        }
        // SAFETY: null.
        unsafe { list.tail.set(ptr::null()) };
        list.len = 0;
    }
}

/// A list during a mutating operation: `busy` until dropped.
pub(super) struct Busy<'a, T>(&'a mut List<T>);

impl<T> core::ops::Deref for Busy<'_, T> {
    type Target = List<T>;

    #[inline(always)]
    fn deref(&self) -> &List<T> {
        self.0
    }
}

impl<T> core::ops::DerefMut for Busy<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut List<T> {
        self.0
    }
}

impl<T> Drop for Busy<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if crashing() {
            return;
        }
        self.0.publish_busy(false);
    }
}

impl<T> Busy<'_, T> {
    /// Links `node` (its value written, its links not yet) after `after`, or first.
    pub(super) fn link_after(&mut self, after: Option<NodePtr<T>>, node: NodePtr<T>) {
        let following = match after {
            None => self.first(),
            // SAFETY: a linked node of this list.
            Some(a) => unsafe { next(a) },
        };
        let n = node.as_ptr();
        // SAFETY: `node` is a node of this list's segment that nothing links yet, so its
        // tag and links may be written in place; `after` and `following` are linked nodes
        // (or null) of the same segment. One Release store then links it forward, complete;
        // until `following` is re-tagged, its tag names the owner before its own (as a busy
        // list allows); the hints follow.
        unsafe {
            own(node, self.owner(after));
            (*n).next.set(addr_of(following));
            (*n).prev.set(addr_of(after));
            point("list: a node written, not yet linked");
            match after {
                None => self.head.set_release(n),
                Some(a) => (*a.as_ptr()).next.set_release(n),
            }
            point("list: a node linked, its neighbour's tag and hint not yet");
            match following {
                None => self.tail.set(n),
                Some(f) => {
                    own(f, n.cast());
                    (*f.as_ptr()).prev.set(n);
                }
            }
        }
        self.len += 1;
    }

    /// Unlinks `node` by one store to the forward link that reaches it, then mends the
    /// hints; afterwards nothing owns it.
    ///
    /// # Safety
    /// `node` is a linked node of this list (whose hints are right).
    pub(super) unsafe fn unlink(&mut self, node: NodePtr<T>) {
        // SAFETY: the caller's node is linked, and so are its neighbours (or null): all
        // live nodes of this list's segment, linked to one another in place. The node
        // after it is re-tagged for its new owner first: until the store, the owner before
        // its own (as a busy list allows).
        unsafe {
            let (before, after) = (prev(node), next(node));
            if let Some(after) = after {
                own(after, self.owner(before));
            }
            point("list: a node about to be unlinked, the next one re-tagged");
            match before {
                None => self.head.set_release(addr_of(after)),
                Some(b) => (*b.as_ptr()).next.set_release(addr_of(after)),
            }
            point("list: a node unlinked, its neighbour's hint not yet");
            match after {
                None => self.tail.set(addr_of(before)),
                Some(a) => (*a.as_ptr()).prev.set(addr_of(before)),
            }
        }
        self.len -= 1;
    }
}

/// Drops the value of a node that nothing links any more and frees the node (leaking it
/// when there is no allocator, which a list in no writable segment never needs).
///
/// # Safety
/// `node` is a node of the allocator's mapping whose value is initialised and owned by
/// nobody; it is not used afterwards.
pub(super) unsafe fn free_node<T>(alloc: Option<&SegmentAllocator<'_>>, node: NodePtr<T>) {
    // SAFETY: the caller's contract: the value is ours to drop.
    unsafe { (&raw mut (*node.as_ptr()).value).drop_in_place() };
    // SAFETY: as above.
    unsafe { dealloc_node(alloc, node) };
}

/// Gives a node's block back.
///
/// # Safety
/// `node` is a block of the allocator's mapping that nothing uses any more.
unsafe fn dealloc_node<T>(alloc: Option<&SegmentAllocator<'_>>, node: NodePtr<T>) {
    if let Some(alloc) = alloc {
        // SAFETY: the caller's contract. A failure means a corrupted segment, which its
        // next allocation reports; the block leaks.
        let _ = unsafe { alloc.deallocate(node.cast(), Layout::new::<Node<T>>()) };
    }
}

/// A new node of `alloc`'s mapping holding a value built from `src`, with null links,
/// linked nowhere yet. On error (or a panic while the value is built) the block is
/// freed again.
pub(super) fn new_node<T: Emplace<S>, S>(
    alloc: SegmentAllocator<'_>,
    src: S,
) -> Result<NodePtr<T>, AllocError> {
    /// Frees the block unless forgotten (it holds no value until then).
    struct Unfilled<'a, T> {
        alloc: SegmentAllocator<'a>,
        node: NodePtr<T>,
    }
    impl<T> Drop for Unfilled<'_, T> {
        fn drop(&mut self) {
            if crashing() {
                return;
            }
            // SAFETY: a block of this allocator that nothing else knows, with no value.
            unsafe { dealloc_node(Some(&self.alloc), self.node) };
        }
    }

    let node = alloc.allocate(Layout::new::<Node<T>>())?.cast::<Node<T>>();
    let n = node.as_ptr();
    // SAFETY: a fresh block for a `Node<T>`, aligned, only ours.
    unsafe {
        (&raw mut (*n).next).write(OffsetPtr::null());
        (&raw mut (*n).prev).write(OffsetPtr::null());
    }
    let unfilled = Unfilled { alloc, node };
    point("list: a node allocated, its value not yet built");
    // SAFETY: the value's place in the block, in the mapping, untouched by others. On
    // error (or unwinding) the place holds nothing and `unfilled` frees the block.
    unsafe { emplace_at(NonNull::new_unchecked(&raw mut (*n).value), src) }?;
    core::mem::forget(unfilled);
    Ok(node)
}

/// A list in place, as the algorithms below see it, with its hints right. A type of its
/// own rather than inherent methods of `List`: those would shadow
/// [`ListExt`](super::ListExt)'s methods on a `&List`.
pub(super) struct InPlace<'a, T>(pub(super) &'a mut List<T>);

impl<'a, T: ShmSafe> InPlace<'a, T> {
    /// The list, its hints repaired first if an operation was interrupted.
    #[inline]
    pub(super) fn new(list: &'a mut List<T>) -> Self {
        if list.busy != 0 {
            list.repair();
        }
        InPlace(list)
    }

    /// Links a new node holding a value built from `src` after `after` (None: first).
    pub(super) fn insert_after<S>(
        &mut self,
        after: Option<NodePtr<T>>,
        src: S,
    ) -> Result<NodePtr<T>, AllocError>
    where
        T: Emplace<S>,
    {
        let node = new_node(self.0.allocator()?, src)?;
        self.0.begin().link_after(after, node);
        Ok(node)
    }

    /// Hands `node`'s value to `take` once nothing links the node, then frees the node.
    ///
    /// # Safety
    /// `node` is a linked node of this list; `take` reads or drops the value exactly once.
    pub(super) unsafe fn remove<R>(
        &mut self,
        node: NodePtr<T>,
        take: impl FnOnce(*mut T) -> R,
    ) -> R {
        // SAFETY: the caller's node; unlinked, nothing owns it but this call.
        unsafe { self.0.begin().unlink(node) };
        point("list: a node unlinked, its value not yet taken");
        let alloc = self.0.allocator().ok();
        // SAFETY: as above; the value is handed over once, then the block freed.
        unsafe {
            let r = take(&raw mut (*node.as_ptr()).value);
            dealloc_node(alloc.as_ref(), node);
            r
        }
    }

    /// Removes `node` and returns its value.
    ///
    /// # Safety
    /// As for [`remove`](Self::remove).
    pub(super) unsafe fn remove_read(&mut self, node: NodePtr<T>) -> T {
        // SAFETY: forwarded; the value is read out once.
        unsafe { self.remove(node, |v| v.read()) }
    }

    /// Hands `node`'s value to `f` in place, then removes the node and drops the value.
    ///
    /// # Safety
    /// As for [`remove`](Self::remove).
    pub(super) unsafe fn remove_with<R>(
        &mut self,
        node: NodePtr<T>,
        f: impl FnOnce(ShmMut<'_, T>) -> R,
    ) -> R {
        // SAFETY: a linked node's value, in place; the guard moves nothing.
        let r = f(unsafe { ShmMut::new(&mut (*node.as_ptr()).value) });
        // SAFETY: forwarded; the value is dropped once.
        unsafe { self.remove(node, |v| v.drop_in_place()) };
        r
    }

    /// Drops the elements `keep` says no to, in order.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let alloc = self.0.allocator().ok();
        let mut list = self.0.begin();
        let mut at = list.first();
        while let Some(node) = at {
            // SAFETY: a linked node of the list; `keep` runs between whole steps, where
            // the hints are right (so `Busy` may end the operation if it panics).
            unsafe {
                at = next(node);
                if !keep(super::value(node)) {
                    list.unlink(node);
                    point("list: a node unlinked, not yet dropped");
                    free_node(alloc.as_ref(), node);
                }
            }
        }
    }

    /// Moves every node of `other` to the end of this list: unlinked there first, so a
    /// crash in between leaks them rather than leaving two owners. Both lists must live
    /// in the same mapping (the caller checks).
    pub(super) fn append(&mut self, other: &mut List<T>) {
        let Some(first) = other.first() else {
            return;
        };
        let (last, count) = (target(&other.tail), other.len);
        {
            let mut other = other.begin();
            // SAFETY: null.
            unsafe {
                other.head.set_release(ptr::null());
                other.tail.set(ptr::null());
            }
            other.len = 0;
        }
        point("list: nodes unlinked from the other list, not yet linked here");
        let mut list = self.0.begin();
        let after = target(&list.tail);
        // SAFETY: `first..=last` is a chain of nodes that nothing owns now, in this list's
        // mapping (the caller's check): its first tag and `prev` hint are set, then one
        // Release store links the whole chain, and the hints follow.
        unsafe {
            own(first, list.owner(after));
            (*first.as_ptr()).prev.set(addr_of(after));
            match after {
                None => list.head.set_release(first.as_ptr()),
                Some(a) => (*a.as_ptr()).next.set_release(first.as_ptr()),
            }
            point("list: nodes linked, the hints not yet");
            list.tail.set(addr_of(last));
        }
        list.len += count;
    }
}

/// [`ShmSafe::validate`] for a list: the forward chain is finite (Brent's cycle search,
/// so a forged cycle is refused instead of walked forever), each node lies aligned in the
/// mapping, apart from the header and from every other node, is (in a writable mapping)
/// a block of its own whose tag names its owner, and holds a valid element; unless `busy`
/// says the hints are not used, they match the chain.
///
/// # Safety
/// As for [`ShmSafe::validate`].
pub(super) unsafe fn validate<T: ShmSafe>(value: *const List<T>) -> Result<(), Invalid> {
    // SAFETY: the caller's contract: aligned, readable, initialised, not written meanwhile.
    let list = unsafe { &*value };
    let trusted = list.busy == 0;
    let header = value.addr()..value.addr() + size_of::<List<T>>();
    // The link to node `i`, by name.
    let link_name = |i: usize| match i {
        0 => String::from("head"),
        i => format!("[{}].next", i - 1),
    };
    let mut nodes = std::vec::Vec::new();
    let mut link = &list.head;
    // The owner the next node's tag names, and while `busy` the one before it may name.
    let (mut owner, mut owner_before) = (list.owner(None), None);
    let (mut before, mut saved, mut power, mut steps) = (None, None, 1usize, 0usize);
    while let Some(node) = target(link) {
        let i = nodes.len();
        let refuse = |e: Invalid| e.within(&link_name(i), 0);
        link.validate_target(1).map_err(refuse)?;
        let start = node.addr().get();
        if start < header.end && header.start < start + size_of::<Node<T>>() {
            return Err(refuse(Invalid::new(
                "a list node apart from the list's header",
            )));
        }
        if saved == Some(node) {
            return Err(refuse(Invalid::new("a list whose links end (no cycle)")));
        }
        let block = node.as_ptr().cast::<u8>();
        check_owned(block, owner, size_of::<Node<T>>())
            .or_else(|e| match owner_before.filter(|_| !trusted) {
                Some(o) => check_owned(block, o, size_of::<Node<T>>()),
                None => Err(e),
            })
            .map_err(refuse)?;
        let n = node.as_ptr();
        // SAFETY: the node lies, aligned, in the mapping (checked just above); only its
        // fields are read, each of a type that `validate` accepts whatever its bytes or
        // checks first.
        unsafe {
            if trusted && prev(node) != before {
                return Err(Invalid::new("a prev link to the node before")
                    .within(&format!("[{i}].prev"), 0));
            }
            T::validate(&raw const (*n).value).map_err(|e| e.within(&format!("[{i}]"), 0))?;
            link = &(*n).next;
        }
        nodes.push(start);
        (owner, owner_before) = (list.owner(Some(node)), Some(owner));
        before = Some(node);
        steps += 1;
        if steps == power {
            (saved, power, steps) = (Some(node), power * 2, 0);
        }
    }
    if trusted && (target(&list.tail) != before || list.len != nodes.len() as u64) {
        return Err(
            Invalid::new("a list's last node and length that match its links")
                .within("tail", core::mem::offset_of!(List<T>, tail)),
        );
    }
    nodes.sort_unstable();
    if nodes.windows(2).any(|w| w[1] - w[0] < size_of::<Node<T>>()) {
        return Err(Invalid::new("list nodes apart from one another").within("head", 0));
    }
    Ok(())
}
