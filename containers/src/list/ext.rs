//! [`ListExt`], the mutating methods of [`List`] on whatever gives in-place access to one,
//! and what they return: [`IterMut`], [`CursorMut`], [`AppendError`].

use core::fmt;
use core::marker::PhantomData;

use shmkit_runtime::{AllocError, Error, PositionIndependent, ShmDerefMut, ShmMut, ShmSafe};

use super::raw::InPlace;
use super::{next, prev, target, List, NodePtr, Nodes};
use crate::emplace::Emplace;

/// The mutating methods of the segment [`List`], with std's names and semantics, on
/// anything that gives in-place access to one: a [`ShmMut`] (from `root_mut`, `find_mut`
/// or a derived accessor) and the guards of shmkit's locks. Brought in by
/// `use shmkit::prelude::*`.
///
/// Allocation failure is an [`AllocError`] that leaves the list exactly as it was. A
/// position-dependent element (a nested `Vec`) is never returned by value: `pop_front_with`
/// and the cursor's `remove_current_with` hand it to a closure in place and drop it there.
///
/// ```
/// use shmkit_containers::{List, ListExt, Vec};
/// use shmkit_runtime::ManagedHeapMemory;
///
/// let mut seg = ManagedHeapMemory::new(1 << 16)?;
/// seg.construct("rows", List::<Vec<u32>>::new())?;
/// let mut rows = seg.find_mut::<List<Vec<u32>>>("rows")?.expect("constructed above");
/// rows.push_back(1..4)?; // a `Vec<u32>` built in its node
/// rows.push_front([7, 8])?;
/// let mut cursor = rows.cursor_front_mut();
/// cursor.move_next(); // at [1, 2, 3]
/// cursor.insert_before(&[5][..])?;
/// assert_eq!(cursor.remove_current_with(|row| row.len()), Some(3));
/// assert_eq!(format!("{:?}", *rows), "[[7, 8], [5]]");
/// # Ok::<(), shmkit_runtime::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` gives no in-place access to a segment `List<{T}>`",
    label = "not a guard of a `List<{T}>` in place",
    note = "lock the list's Mutex (`db.queue.lock()?.push_back(x)?`), or reach it through `root_mut`/`find_mut` of an exclusive mapping and the accessors #[derive(ShmSafe)] generates"
)]
pub trait ListExt<T: ShmSafe>: ShmDerefMut<Target = List<T>> {
    /// Prepends a value built from `src`: the value itself, or any source the element type
    /// is [`Emplace`]d from.
    fn push_front<S>(&mut self, src: S) -> Result<(), AllocError>
    where
        T: Emplace<S>;

    /// Appends a value built from `src`.
    fn push_back<S>(&mut self, src: S) -> Result<(), AllocError>
    where
        T: Emplace<S>;

    /// Removes and returns the first element; None when empty.
    fn pop_front(&mut self) -> Option<T>
    where
        T: PositionIndependent;

    /// Removes and returns the last element; None when empty.
    fn pop_back(&mut self) -> Option<T>
    where
        T: PositionIndependent;

    /// Hands the first element to `f` in place, then removes it and drops it there; None
    /// (and `f` not called) when empty. What `pop_front` is for position-dependent elements.
    fn pop_front_with<R>(&mut self, f: impl FnOnce(ShmMut<'_, T>) -> R) -> Option<R>;

    /// Hands the last element to `f` in place, then removes it and drops it there.
    fn pop_back_with<R>(&mut self, f: impl FnOnce(ShmMut<'_, T>) -> R) -> Option<R>;

    /// The guard of the first element, None when empty (plain data derefs mutably).
    fn front_mut(&mut self) -> Option<ShmMut<'_, T>>;

    /// The guard of the last element, None when empty.
    fn back_mut(&mut self) -> Option<ShmMut<'_, T>>;

    /// Guards of every element, front to back (double-ended).
    fn iter_mut(&mut self) -> IterMut<'_, T>;

    /// Drops every element and frees its node.
    fn clear(&mut self);

    /// Keeps only the elements `f` says yes to, in order, dropping the others in place.
    fn retain(&mut self, f: impl FnMut(&T) -> bool);

    /// Appends a value built from every item of `iter`; on error the items appended so far
    /// are dropped again.
    fn extend<I>(&mut self, iter: I) -> Result<(), AllocError>
    where
        I: IntoIterator,
        T: Emplace<I::Item>;

    /// Moves every element of `other` to the end of this list, in O(1): the nodes are
    /// relinked, never moved. Only between lists in the same mapping of a segment (their
    /// offsets could not reach, nor their allocator free, nodes of another):
    /// [`AppendError`] otherwise, and both lists stay as they were.
    fn append<Q>(&mut self, other: &mut Q) -> Result<(), AppendError>
    where
        Q: ShmDerefMut<Target = List<T>> + ?Sized;

    /// A cursor at the first element (at the "ghost" position when empty).
    fn cursor_front_mut(&mut self) -> CursorMut<'_, T>;

    /// A cursor at the last element (at the "ghost" position when empty).
    fn cursor_back_mut(&mut self) -> CursorMut<'_, T>;
}

/// The list behind a guard, for its in-place algorithms, with its hints repaired.
#[inline(always)]
fn in_place<T: ShmSafe, P: ShmDerefMut<Target = List<T>> + ?Sized>(p: &mut P) -> InPlace<'_, T> {
    // SAFETY: only the list's own algorithms (in `raw`) use the reference; they change
    // the list in place and never move it.
    InPlace::new(unsafe { p.as_shm_mut().get_unchecked_mut() })
}

impl<T: ShmSafe, P: ShmDerefMut<Target = List<T>> + ?Sized> ListExt<T> for P {
    fn push_front<S>(&mut self, src: S) -> Result<(), AllocError>
    where
        T: Emplace<S>,
    {
        in_place(self).insert_after(None, src).map(drop)
    }

    fn push_back<S>(&mut self, src: S) -> Result<(), AllocError>
    where
        T: Emplace<S>,
    {
        let mut list = in_place(self);
        let last = target(&list.0.tail);
        list.insert_after(last, src).map(drop)
    }

    fn pop_front(&mut self) -> Option<T>
    where
        T: PositionIndependent,
    {
        let mut list = in_place(self);
        let first = list.0.first()?;
        // SAFETY: a linked node of the list.
        Some(unsafe { list.remove_read(first) })
    }

    fn pop_back(&mut self) -> Option<T>
    where
        T: PositionIndependent,
    {
        let mut list = in_place(self);
        let last = target(&list.0.tail)?;
        // SAFETY: a linked node of the list.
        Some(unsafe { list.remove_read(last) })
    }

    fn pop_front_with<R>(&mut self, f: impl FnOnce(ShmMut<'_, T>) -> R) -> Option<R> {
        let mut list = in_place(self);
        let first = list.0.first()?;
        // SAFETY: a linked node of the list.
        Some(unsafe { list.remove_with(first, f) })
    }

    fn pop_back_with<R>(&mut self, f: impl FnOnce(ShmMut<'_, T>) -> R) -> Option<R> {
        let mut list = in_place(self);
        let last = target(&list.0.tail)?;
        // SAFETY: a linked node of the list.
        Some(unsafe { list.remove_with(last, f) })
    }

    fn front_mut(&mut self) -> Option<ShmMut<'_, T>> {
        let list = in_place(self);
        // SAFETY: a linked node's value, in place, borrowed with the list.
        list.0.first().map(|n| unsafe { value_mut(n) })
    }

    fn back_mut(&mut self) -> Option<ShmMut<'_, T>> {
        let list = in_place(self);
        // SAFETY: as in `front_mut`.
        target(&list.0.tail).map(|n| unsafe { value_mut(n) })
    }

    fn iter_mut(&mut self) -> IterMut<'_, T> {
        IterMut {
            nodes: in_place(self).0.nodes(),
            _list: PhantomData,
        }
    }

    fn clear(&mut self) {
        in_place(self).0.clear_nodes();
    }

    fn retain(&mut self, f: impl FnMut(&T) -> bool) {
        in_place(self).retain(f);
    }

    fn extend<I>(&mut self, iter: I) -> Result<(), AllocError>
    where
        I: IntoIterator,
        T: Emplace<I::Item>,
    {
        let mut list = in_place(self);
        let mut last = target(&list.0.tail);
        let before = last;
        for item in iter {
            match list.insert_after(last, item) {
                Ok(node) => last = Some(node),
                Err(e) => {
                    while let Some(appended) = target(&list.0.tail).filter(|&t| Some(t) != before) {
                        // SAFETY: a linked node of the list; its value is dropped once.
                        unsafe { list.remove(appended, |v| v.drop_in_place()) };
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn append<Q>(&mut self, other: &mut Q) -> Result<(), AppendError>
    where
        Q: ShmDerefMut<Target = List<T>> + ?Sized,
    {
        let theirs = in_place(other);
        if theirs.0.is_empty() {
            return Ok(());
        }
        let mut ours = in_place(self);
        if !same_mapping(ours.0, theirs.0) {
            return Err(AppendError {
                from: (&raw const *theirs.0).addr(),
            });
        }
        ours.append(theirs.0);
        Ok(())
    }

    fn cursor_front_mut(&mut self) -> CursorMut<'_, T> {
        let list = in_place(self);
        CursorMut {
            current: list.0.first(),
            index: 0,
            list,
        }
    }

    fn cursor_back_mut(&mut self) -> CursorMut<'_, T> {
        let list = in_place(self);
        let current = target(&list.0.tail);
        let len = list.0.len as usize;
        CursorMut {
            current,
            index: len.saturating_sub(1),
            list,
        }
    }
}

/// The guard of a node's value.
///
/// # Safety
/// `node` is a linked node of a list borrowed mutably for `'a`, and no other guard or
/// reference of its value lives meanwhile.
#[inline(always)]
unsafe fn value_mut<'a, T>(node: NodePtr<T>) -> ShmMut<'a, T> {
    // SAFETY: the caller's contract; the value is in place and the guard moves nothing.
    unsafe { ShmMut::new(&mut (*node.as_ptr()).value) }
}

/// Whether `a` and `b` live in the same mapping of one segment: each in the mapping of
/// the other's allocator (the innermost one, when an external buffer lies in a segment's
/// block), so that a node of one is a block of the other's allocator too.
fn same_mapping<T>(a: &List<T>, b: &List<T>) -> bool {
    match (a.allocator(), b.allocator()) {
        (Ok(of_a), Ok(of_b)) => {
            of_a.contains((&raw const *b).cast()) && of_b.contains((&raw const *a).cast())
        }
        _ => false,
    }
}

/// Guards of a list's elements, front to back or back to front ([`ListExt::iter_mut`]).
pub struct IterMut<'a, T> {
    nodes: Nodes<T>,
    _list: PhantomData<&'a mut T>,
}

// SAFETY: an iterator of guards (`&mut T` for plain data), like std's `IterMut`.
unsafe impl<T: Send> Send for IterMut<'_, T> {}
// SAFETY: as above; `&IterMut` gives nothing.
unsafe impl<T: Sync> Sync for IterMut<'_, T> {}

impl<'a, T> Iterator for IterMut<'a, T> {
    type Item = ShmMut<'a, T>;

    #[inline]
    fn next(&mut self) -> Option<ShmMut<'a, T>> {
        // SAFETY: each node is yielded once, from a list borrowed mutably for `'a`.
        self.nodes.next().map(|n| unsafe { value_mut(n) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.nodes.len, Some(self.nodes.len))
    }
}

impl<T> DoubleEndedIterator for IterMut<'_, T> {
    fn next_back(&mut self) -> Option<Self::Item> {
        // SAFETY: as in `next`.
        self.nodes.next_back().map(|n| unsafe { value_mut(n) })
    }
}

impl<T> ExactSizeIterator for IterMut<'_, T> {}

impl<T> core::iter::FusedIterator for IterMut<'_, T> {}

/// A cursor over a [`List`] that can edit it, as std's `linked_list::CursorMut`: it is at
/// an element, or at the "ghost" position between the last element and the first, and
/// inserts or removes there in O(1) ([`ListExt::cursor_front_mut`]).
pub struct CursorMut<'a, T> {
    list: InPlace<'a, T>,
    current: Option<NodePtr<T>>,
    /// The position of `current`; the length at the ghost.
    index: usize,
}

impl<T: ShmSafe> CursorMut<'_, T> {
    /// The index of the current element, None at the ghost.
    pub fn index(&self) -> Option<usize> {
        self.current.map(|_| self.index)
    }

    /// Moves to the next element: from the last to the ghost, from the ghost to the first.
    pub fn move_next(&mut self) {
        match self.current {
            None => (self.current, self.index) = (self.list.0.first(), 0),
            Some(node) => {
                // SAFETY: a linked node of the list.
                self.current = unsafe { next(node) };
                self.index += 1;
            }
        }
    }

    /// Moves to the previous element: from the first to the ghost, from the ghost to the
    /// last.
    pub fn move_prev(&mut self) {
        let len = self.list.0.len as usize;
        match self.current {
            None => (self.current, self.index) = (target(&self.list.0.tail), len.saturating_sub(1)),
            Some(node) => {
                // SAFETY: a linked node of the list.
                self.current = unsafe { prev(node) };
                self.index = if self.current.is_some() {
                    self.index - 1
                } else {
                    len
                };
            }
        }
    }

    /// The guard of the current element, None at the ghost.
    pub fn current(&mut self) -> Option<ShmMut<'_, T>> {
        // SAFETY: a linked node, borrowed with the cursor.
        self.current.map(|n| unsafe { value_mut(n) })
    }

    /// The guard of the next element (the first at the ghost), None past the end.
    pub fn peek_next(&mut self) -> Option<ShmMut<'_, T>> {
        let node = match self.current {
            None => self.list.0.first(),
            // SAFETY: a linked node of the list.
            Some(n) => unsafe { next(n) },
        };
        // SAFETY: a linked node, borrowed with the cursor.
        node.map(|n| unsafe { value_mut(n) })
    }

    /// The guard of the previous element (the last at the ghost), None before the start.
    pub fn peek_prev(&mut self) -> Option<ShmMut<'_, T>> {
        let node = self.before();
        // SAFETY: a linked node, borrowed with the cursor.
        node.map(|n| unsafe { value_mut(n) })
    }

    /// The node before the cursor (the last at the ghost).
    fn before(&self) -> Option<NodePtr<T>> {
        match self.current {
            None => target(&self.list.0.tail),
            // SAFETY: a linked node of the list.
            Some(n) => unsafe { prev(n) },
        }
    }

    /// Inserts a value built from `src` after the current element (first, at the ghost);
    /// the cursor stays where it is.
    pub fn insert_after<S>(&mut self, src: S) -> Result<(), AllocError>
    where
        T: Emplace<S>,
    {
        self.list.insert_after(self.current, src)?;
        if self.current.is_none() {
            self.index += 1;
        }
        Ok(())
    }

    /// Inserts a value built from `src` before the current element (last, at the ghost);
    /// the cursor stays where it is.
    pub fn insert_before<S>(&mut self, src: S) -> Result<(), AllocError>
    where
        T: Emplace<S>,
    {
        let before = self.before();
        self.list.insert_after(before, src)?;
        self.index += 1;
        Ok(())
    }

    /// Removes and returns the current element, moving to the next; None at the ghost.
    pub fn remove_current(&mut self) -> Option<T>
    where
        T: PositionIndependent,
    {
        let node = self.leave_current()?;
        // SAFETY: a linked node of the list.
        Some(unsafe { self.list.remove_read(node) })
    }

    /// Hands the current element to `f` in place, then removes it (dropping it there)
    /// and moves to the next; None (and `f` not called) at the ghost.
    pub fn remove_current_with<R>(&mut self, f: impl FnOnce(ShmMut<'_, T>) -> R) -> Option<R> {
        let node = self.leave_current()?;
        // SAFETY: a linked node of the list.
        Some(unsafe { self.list.remove_with(node, f) })
    }

    /// Moves to the next element and returns the one it was at (same index: the
    /// elements after it move down one).
    fn leave_current(&mut self) -> Option<NodePtr<T>> {
        let node = self.current?;
        // SAFETY: a linked node of the list.
        self.current = unsafe { next(node) };
        Some(node)
    }

    /// The list, to read.
    pub fn as_list(&self) -> &List<T> {
        self.list.0
    }
}

/// Why [`ListExt::append`] moved nothing: the other list lives in another segment, or
/// in another mapping of the same one, whose nodes this list can neither link nor free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendError {
    /// The address of the list that kept its elements.
    pub from: usize,
}

impl fmt::Display for AppendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the list at {:#x} is in another segment (or mapping) than the list it would be appended to",
            self.from
        )
    }
}

impl std::error::Error for AppendError {}

impl From<AppendError> for Error {
    fn from(e: AppendError) -> Error {
        Error::InvalidAddress {
            addr: e.from,
            reason: "a list in another segment (or mapping) cannot give its nodes".into(),
        }
    }
}
