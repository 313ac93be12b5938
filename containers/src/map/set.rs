//! [`Set<T>`]: an ordered set in a segment, a [`Map<T, ()>`](Map) with std's `BTreeSet`
//! names and semantics, mutated through [`SetExt`].

use core::borrow::Borrow;
use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::iter::FusedIterator;
use core::ops::RangeBounds;

use shmkit_runtime::layout::{compound_fingerprint, ForwardsImmutable};
use shmkit_runtime::{
    AllocError, Invalid, PositionIndependent, ShmDerefMut, ShmImmutable, ShmMut, ShmSafe,
};

use super::{Keys, Map, MapExt};
use crate::emplace::Emplace;

/// An ordered set in a segment: std's `BTreeSet<T>`, a [`Map`] of the elements to `()`
/// (same layout, same crash consistency), with allocation failure as an error and
/// mutation in place through [`SetExt`].
///
/// ```
/// use shmkit_containers::{Set, SetExt};
/// use shmkit_runtime::ManagedHeapMemory;
///
/// let mut seg = ManagedHeapMemory::new(1 << 16)?;
/// seg.construct("seen", Set::<u64>::new())?;
/// let mut seen = seg.find_mut::<Set<u64>>("seen")?.expect("constructed above");
/// assert!(seen.insert(5)?);
/// assert!(!seen.insert(5)?);
/// seen.extend([1, 9, 3])?;
/// assert_eq!(seen.iter().copied().collect::<Vec<_>>(), [1, 3, 5, 9]);
/// assert_eq!(seen.range(2..6).count(), 2);
/// assert!(seen.remove(&9));
/// assert_eq!(seen.first(), Some(&1));
/// # Ok::<(), shmkit_runtime::Error>(())
/// ```
#[repr(transparent)]
pub struct Set<T> {
    map: Map<T, ()>,
}

impl<T> Set<T> {
    /// An empty set, allocating nothing (all-zero bytes are one too).
    pub const fn new() -> Self {
        Set { map: Map::new() }
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no elements.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The elements in order.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter(self.map.keys())
    }

    /// The smallest element.
    pub fn first(&self) -> Option<&T> {
        self.map.first_key_value().map(|(k, _)| k)
    }

    /// The largest element.
    pub fn last(&self) -> Option<&T> {
        self.map.last_key_value().map(|(k, _)| k)
    }

    /// Whether the set holds `value`.
    #[inline]
    pub fn contains<Q>(&self, value: &Q) -> bool
    where
        T: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.map.contains_key(value)
    }

    /// The stored element equal to `value`.
    pub fn get<Q>(&self, value: &Q) -> Option<&T>
    where
        T: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.map.get_key_value(value).map(|(k, _)| k)
    }

    /// The elements in `range`, in order (empty, not a panic, for a range that starts
    /// after it ends).
    pub fn range<Q, R>(&self, range: R) -> Range<'_, T>
    where
        T: Borrow<Q>,
        Q: Ord + ?Sized,
        R: RangeBounds<Q>,
    {
        Range(self.map.range(range))
    }

    /// Whether every element of `self` is in `other`.
    pub fn is_subset(&self, other: &Set<T>) -> bool
    where
        T: Ord,
    {
        self.len() <= other.len() && self.iter().all(|v| other.contains(v))
    }

    /// Whether every element of `other` is in `self`.
    pub fn is_superset(&self, other: &Set<T>) -> bool
    where
        T: Ord,
    {
        other.is_subset(self)
    }

    /// Whether the two sets have no element in common.
    pub fn is_disjoint(&self, other: &Set<T>) -> bool
    where
        T: Ord,
    {
        let (small, large) = if self.len() <= other.len() {
            (self, other)
        } else {
            (other, self)
        };
        small.iter().all(|v| !large.contains(v))
    }
}

impl<T> Default for Set<T> {
    fn default() -> Self {
        Set::new()
    }
}

impl<'a, T> IntoIterator for &'a Set<T> {
    type Item = &'a T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T: fmt::Debug> fmt::Debug for Set<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl<T: PartialEq> PartialEq for Set<T> {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<T: Eq> Eq for Set<T> {}

impl<T: PartialOrd> PartialOrd for Set<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.iter().partial_cmp(other.iter())
    }
}

impl<T: Ord> Ord for Set<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.iter().cmp(other.iter())
    }
}

impl<T: Hash> Hash for Set<T> {
    /// As std's `BTreeSet`: the length, then each element.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.map.hash(state);
    }
}

// SAFETY: a transparent `Map<T, ()>`, whose impl this forwards to.
unsafe impl<T: ShmSafe> ShmSafe for Set<T> {
    /// Over the element's pointee fingerprint and the map's node capacity.
    const LAYOUT_FINGERPRINT: u64 =
        compound_fingerprint("Set", &[<Map<T, ()> as ShmSafe>::LAYOUT_FINGERPRINT]);

    /// As the map's.
    const ALL_BIT_PATTERNS_VALID: bool = false;

    unsafe fn validate(value: *const Self) -> Result<(), Invalid> {
        // SAFETY: forwarded contract; the set is a transparent map.
        unsafe { <Map<T, ()> as ShmSafe>::validate(value.cast()) }
    }

    #[inline]
    unsafe fn relocate(&mut self, moved_from: usize) {
        // SAFETY: forwarded: the map is the set's only field, at its start.
        unsafe { self.map.relocate(moved_from) }
    }

    /// The layout fingerprint, the same in every program.
    fn type_fingerprint() -> u64 {
        Self::LAYOUT_FINGERPRINT
    }
}

// SAFETY: as the map's.
unsafe impl<T: ShmImmutable> ShmImmutable for Set<T> {}
// SAFETY: the impl above asks only `T: ShmImmutable`.
unsafe impl<T> ForwardsImmutable for Set<T> {}

/// The mutating methods of the segment [`Set`], with std's names and semantics, on
/// anything that gives in-place access to one (see [`MapExt`]). A position-dependent
/// element is never returned by value: `pop_first_with` hands it to a closure.
#[diagnostic::on_unimplemented(
    message = "`{Self}` gives no in-place access to a segment `Set<{T}>`",
    label = "not a guard of a `Set<{T}>` in place",
    note = "lock the set's Mutex (`db.seen.lock()?.insert(x)?`), or reach it through `root_mut`/`find_mut` of an exclusive mapping and the accessors #[derive(ShmSafe)] generates"
)]
pub trait SetExt<T: ShmSafe + Ord>: ShmDerefMut<Target = Set<T>> {
    /// Adds an element built from `value`; false (and the new one dropped) when an equal
    /// one was there, which stays.
    fn insert<S>(&mut self, value: S) -> Result<bool, AllocError>
    where
        T: Emplace<S>;

    /// Removes the element equal to `value`, dropping it in place; whether there was one.
    fn remove<Q>(&mut self, value: &Q) -> bool
    where
        T: Borrow<Q>,
        Q: Ord + ?Sized;

    /// Removes and returns the element equal to `value`.
    fn take<Q>(&mut self, value: &Q) -> Option<T>
    where
        T: Borrow<Q> + PositionIndependent,
        Q: Ord + ?Sized;

    /// Removes and returns the smallest element.
    fn pop_first(&mut self) -> Option<T>
    where
        T: PositionIndependent;

    /// Removes and returns the largest element.
    fn pop_last(&mut self) -> Option<T>
    where
        T: PositionIndependent;

    /// Hands the smallest element to `f`, then removes and drops it in place.
    fn pop_first_with<R>(&mut self, f: impl FnOnce(&T) -> R) -> Option<R>;

    /// Hands the largest element to `f`, then removes and drops it in place.
    fn pop_last_with<R>(&mut self, f: impl FnOnce(&T) -> R) -> Option<R>;

    /// Keeps only the elements `keep` says yes to, dropping the others in place.
    fn retain(&mut self, keep: impl FnMut(&T) -> bool);

    /// Drops every element and gives every node back to the segment.
    fn clear(&mut self);

    /// Adds an element built from every item of `iter`; on error the items before the
    /// failing one are in.
    fn extend<I>(&mut self, iter: I) -> Result<(), AllocError>
    where
        I: IntoIterator,
        T: Emplace<I::Item>;
}

/// The map behind a set's guard.
#[inline(always)]
fn map<T, P: ShmDerefMut<Target = Set<T>> + ?Sized>(p: &mut P) -> ShmMut<'_, Map<T, ()>> {
    // SAFETY: a projection to the set's only field, which moves nothing.
    unsafe { p.as_shm_mut().map_unchecked(|s| &mut s.map) }
}

impl<T, P> SetExt<T> for P
where
    T: ShmSafe + Ord,
    P: ShmDerefMut<Target = Set<T>> + ?Sized,
{
    #[inline]
    fn insert<S>(&mut self, value: S) -> Result<bool, AllocError>
    where
        T: Emplace<S>,
    {
        Ok(map(self).insert(value, ())?.is_none())
    }

    fn remove<Q>(&mut self, value: &Q) -> bool
    where
        T: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        map(self).remove(value).is_some()
    }

    fn take<Q>(&mut self, value: &Q) -> Option<T>
    where
        T: Borrow<Q> + PositionIndependent,
        Q: Ord + ?Sized,
    {
        map(self).remove_entry(value).map(|(v, ())| v)
    }

    fn pop_first(&mut self) -> Option<T>
    where
        T: PositionIndependent,
    {
        map(self).pop_first().map(|(v, ())| v)
    }

    fn pop_last(&mut self) -> Option<T>
    where
        T: PositionIndependent,
    {
        map(self).pop_last().map(|(v, ())| v)
    }

    fn pop_first_with<R>(&mut self, f: impl FnOnce(&T) -> R) -> Option<R> {
        map(self).pop_first_with(|v, _| f(v))
    }

    fn pop_last_with<R>(&mut self, f: impl FnOnce(&T) -> R) -> Option<R> {
        map(self).pop_last_with(|v, _| f(v))
    }

    fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        map(self).retain(|v, _| keep(v));
    }

    fn clear(&mut self) {
        map(self).clear();
    }

    fn extend<I>(&mut self, iter: I) -> Result<(), AllocError>
    where
        I: IntoIterator,
        T: Emplace<I::Item>,
    {
        map(self).extend(iter.into_iter().map(|v| (v, ())))
    }
}

/// The elements of a [`Set`] in order ([`Set::iter`]).
pub struct Iter<'a, T>(Keys<'a, T, ()>);

impl<T> Clone for Iter<'_, T> {
    fn clone(&self) -> Self {
        Iter(self.0.clone())
    }
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;

    #[inline]
    fn next(&mut self) -> Option<&'a T> {
        self.0.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<T> DoubleEndedIterator for Iter<'_, T> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back()
    }
}

impl<T> ExactSizeIterator for Iter<'_, T> {}

impl<T> FusedIterator for Iter<'_, T> {}

/// The elements of a [`Set`] in a range, in order ([`Set::range`]).
pub struct Range<'a, T>(super::Range<'a, T, ()>);

impl<T> Clone for Range<'_, T> {
    fn clone(&self) -> Self {
        Range(self.0.clone())
    }
}

impl<'a, T> Iterator for Range<'a, T> {
    type Item = &'a T;

    #[inline]
    fn next(&mut self) -> Option<&'a T> {
        self.0.next().map(|(v, _)| v)
    }
}

impl<T> DoubleEndedIterator for Range<'_, T> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(v, _)| v)
    }
}

impl<T> FusedIterator for Range<'_, T> {}
