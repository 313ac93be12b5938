//! [`HashSet<T>`]: a [`HashMap<T, ()>`] with std's set API, and its set operations.

use core::borrow::Borrow;
use core::fmt;
use core::hash::{BuildHasher, Hash};
use core::iter::{Chain, FusedIterator};

use shmkit_runtime::layout::{compound_fingerprint, ForwardsImmutable};
use shmkit_runtime::{
    AllocError, Invalid, PositionIndependent, ShmDerefMut, ShmImmutable, ShmMut, ShmSafe,
};

use super::entry::Entry;
use super::{HashMap, HashMapExt, Keys};
use crate::emplace::{Emplace, Filled, Slot};

/// A hash set in a segment: std's `HashSet<T>`, a [`HashMap`] with `()` values (same
/// table, same fixed hash, same crash consistency; see the [map's docs](super)).
///
/// ```
/// use shmkit_containers::{HashSet, HashSetExt};
/// use shmkit_runtime::ManagedHeapMemory;
///
/// let mut seg = ManagedHeapMemory::new(1 << 16)?;
/// seg.construct_array_with("sets", 2, |_| HashSet::<u32>::new())?;
/// let mut sets = seg.find_slice_mut::<HashSet<u32>>("sets")?.expect("constructed above");
/// let mut both = sets.iter_mut();
/// let (mut a, mut b) = (both.next().expect("two"), both.next().expect("two"));
/// a.extend([1, 2, 3])?;
/// b.extend([2, 3, 4])?;
/// assert!(!a.insert(2)? && a.contains(&2));
/// let mut common: std::vec::Vec<u32> = a.intersection(&b).copied().collect();
/// common.sort();
/// assert_eq!(common, [2, 3]);
/// assert_eq!(a.union(&b).count(), 4);
/// # Ok::<(), shmkit_runtime::Error>(())
/// ```
#[repr(transparent)]
pub struct HashSet<T> {
    map: HashMap<T, ()>,
}

impl<T> HashSet<T> {
    /// An empty set, allocating nothing (all-zero bytes are one too).
    pub const fn new() -> Self {
        HashSet {
            map: HashMap::new(),
        }
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

    /// How many elements fit without growing the table.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.map.capacity()
    }

    /// Whether `value` is in the set.
    #[inline]
    pub fn contains<Q>(&self, value: &Q) -> bool
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains_key(value)
    }

    /// The element equal to `value`.
    #[inline]
    pub fn get<Q>(&self, value: &Q) -> Option<&T>
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get_key_value(value).map(|(k, _)| k)
    }

    /// The elements, in no particular order.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter(self.map.keys())
    }

    /// The elements of `self` that are not in `other`.
    pub fn difference<'a>(&'a self, other: &'a HashSet<T>) -> Difference<'a, T>
    where
        T: Hash + Eq,
    {
        Difference {
            iter: self.iter(),
            other,
        }
    }

    /// The elements of `self` that are also in `other`.
    pub fn intersection<'a>(&'a self, other: &'a HashSet<T>) -> Intersection<'a, T>
    where
        T: Hash + Eq,
    {
        // As std: iterate the smaller set, look up in the larger.
        let (small, large) = if self.len() <= other.len() {
            (self, other)
        } else {
            (other, self)
        };
        Intersection {
            iter: small.iter(),
            other: large,
        }
    }

    /// The elements of either set, each once.
    pub fn union<'a>(&'a self, other: &'a HashSet<T>) -> Union<'a, T>
    where
        T: Hash + Eq,
    {
        Union(self.iter().chain(other.difference(self)))
    }

    /// The elements of exactly one of the sets.
    pub fn symmetric_difference<'a>(&'a self, other: &'a HashSet<T>) -> SymmetricDifference<'a, T>
    where
        T: Hash + Eq,
    {
        SymmetricDifference(self.difference(other).chain(other.difference(self)))
    }

    /// Whether the sets have no element in common.
    pub fn is_disjoint(&self, other: &HashSet<T>) -> bool
    where
        T: Hash + Eq,
    {
        self.intersection(other).next().is_none()
    }

    /// Whether every element of `self` is in `other`.
    pub fn is_subset(&self, other: &HashSet<T>) -> bool
    where
        T: Hash + Eq,
    {
        self.len() <= other.len() && self.iter().all(|x| other.contains(x))
    }

    /// Whether every element of `other` is in `self`.
    pub fn is_superset(&self, other: &HashSet<T>) -> bool
    where
        T: Hash + Eq,
    {
        other.is_subset(self)
    }
}

impl<T> Default for HashSet<T> {
    fn default() -> Self {
        HashSet::new()
    }
}

impl<'a, T> IntoIterator for &'a HashSet<T> {
    type Item = &'a T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T: fmt::Debug> fmt::Debug for HashSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Equal when both hold the same elements.
impl<T: Hash + Eq> PartialEq for HashSet<T> {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<T: Hash + Eq> Eq for HashSet<T> {}

/// Equal to a std set that holds the same elements.
impl<T: Hash + Eq, S: BuildHasher> PartialEq<std::collections::HashSet<T, S>> for HashSet<T> {
    fn eq(&self, other: &std::collections::HashSet<T, S>) -> bool {
        self.len() == other.len() && self.iter().all(|x| other.contains(x))
    }
}

// SAFETY: the same bytes as its map (`repr(transparent)`), whose impl this forwards to.
unsafe impl<T: ShmSafe> ShmSafe for HashSet<T> {
    const LAYOUT_FINGERPRINT: u64 = compound_fingerprint(
        "HashSet",
        &[<HashMap<T, ()> as ShmSafe>::LAYOUT_FINGERPRINT],
    );

    const ALL_BIT_PATTERNS_VALID: bool = false;

    unsafe fn validate(value: *const Self) -> Result<(), Invalid> {
        // SAFETY: the same bytes as a map; the caller's contract carries over.
        unsafe { <HashMap<T, ()> as ShmSafe>::validate(value.cast()) }
    }

    #[inline]
    unsafe fn relocate(&mut self, moved_from: usize) {
        // SAFETY: the map is at offset 0, so it moved from `moved_from` too.
        unsafe { self.map.relocate(moved_from) }
    }

    fn type_fingerprint() -> u64 {
        Self::LAYOUT_FINGERPRINT
    }
}

// SAFETY: as the map's.
unsafe impl<T: ShmImmutable> ShmImmutable for HashSet<T> {}
// SAFETY: the impl above asks only `T: ShmImmutable`.
unsafe impl<T> ForwardsImmutable for HashSet<T> {}

/// A set built in place from sources of its elements (`0..10`, `["a", "b"]` once
/// `String` lands, another set's `&HashSet` for clonable plain data).
impl<T, I> Emplace<I> for HashSet<T>
where
    I: IntoIterator,
    T: Emplace<I::Item> + Hash + Eq,
{
    fn emplace<'a>(slot: Slot<'a, Self>, items: I) -> Result<Filled<'a, Self>, AllocError> {
        let mut set = slot.write(HashSet::new());
        set.as_mut().extend(items)?;
        Ok(set)
    }
}

/// The mutating methods of the segment [`HashSet`], with std's names and semantics, on
/// anything that gives in-place access to one (as [`HashMapExt`] for maps). Brought in by
/// `use shmkit::prelude::*`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` gives no in-place access to a segment `HashSet<{T}>`",
    label = "not a guard of a `HashSet<{T}>` in place",
    note = "lock the set's Mutex (`db.tags.lock()?.insert(t)?`), or reach it through `root_mut`/`find_mut` of an exclusive mapping and the accessors #[derive(ShmSafe)] generates (`db.tags_mut().insert(t)?`)"
)]
pub trait HashSetExt<T: ShmSafe + Hash + Eq>: ShmDerefMut<Target = HashSet<T>> {
    /// Adds an element built from `value`; false (and the set unchanged) when an equal
    /// one was there.
    fn insert<S>(&mut self, value: S) -> Result<bool, AllocError>
    where
        T: Emplace<S>;

    /// Removes the element equal to `value` (dropped in place); whether there was one.
    fn remove<Q>(&mut self, value: &Q) -> bool
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized;

    /// Removes and returns the element equal to `value`. Plain data only.
    fn take<Q>(&mut self, value: &Q) -> Option<T>
    where
        T: Borrow<Q> + PositionIndependent,
        Q: Hash + Eq + ?Sized;

    /// Keeps only the elements `f` says yes to, dropping the others in place.
    fn retain(&mut self, f: impl FnMut(&T) -> bool);

    /// Drops every element; the capacity stays.
    fn clear(&mut self);

    /// Makes room for at least `additional` more elements.
    fn reserve(&mut self, additional: usize) -> Result<(), AllocError>;

    /// Gives the room beyond the elements back to the segment (all of it when empty).
    fn shrink_to_fit(&mut self) -> Result<(), AllocError>;

    /// Adds an element built from every item of `items`. On error the items before the
    /// failing one stay added.
    fn extend<I>(&mut self, items: I) -> Result<(), AllocError>
    where
        I: IntoIterator,
        T: Emplace<I::Item>;
}

/// The map of a set behind a guard.
#[inline(always)]
fn map_of<T, P: ShmDerefMut<Target = HashSet<T>> + ?Sized>(
    p: &mut P,
) -> ShmMut<'_, HashMap<T, ()>> {
    // SAFETY: a projection onto the set's only field, moving nothing.
    unsafe { p.as_shm_mut().map_unchecked(|s| &mut s.map) }
}

impl<T, P> HashSetExt<T> for P
where
    T: ShmSafe + Hash + Eq,
    P: ShmDerefMut<Target = HashSet<T>> + ?Sized,
{
    #[inline]
    fn insert<S>(&mut self, value: S) -> Result<bool, AllocError>
    where
        T: Emplace<S>,
    {
        Ok(match map_of(self).entry(value)? {
            Entry::Occupied(_) => false,
            Entry::Vacant(e) => {
                e.insert(())?;
                true
            }
        })
    }

    fn remove<Q>(&mut self, value: &Q) -> bool
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        map_of(self).remove_with(value, |_, _| ()).is_some()
    }

    fn take<Q>(&mut self, value: &Q) -> Option<T>
    where
        T: Borrow<Q> + PositionIndependent,
        Q: Hash + Eq + ?Sized,
    {
        map_of(self).remove_entry(value).map(|(k, ())| k)
    }

    fn retain(&mut self, mut f: impl FnMut(&T) -> bool) {
        map_of(self).retain(|k, _| f(k));
    }

    fn clear(&mut self) {
        map_of(self).clear();
    }

    fn reserve(&mut self, additional: usize) -> Result<(), AllocError> {
        map_of(self).reserve(additional)
    }

    fn shrink_to_fit(&mut self) -> Result<(), AllocError> {
        map_of(self).shrink_to_fit()
    }

    fn extend<I>(&mut self, items: I) -> Result<(), AllocError>
    where
        I: IntoIterator,
        T: Emplace<I::Item>,
    {
        map_of(self).extend(items.into_iter().map(|x| (x, ())))
    }
}

/// The elements of a set ([`HashSet::iter`]).
#[derive(Clone)]
pub struct Iter<'a, T>(Keys<'a, T, ()>);

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

impl<T> ExactSizeIterator for Iter<'_, T> {}
impl<T> FusedIterator for Iter<'_, T> {}

/// The elements of one set that are not in another ([`HashSet::difference`]).
#[derive(Clone)]
pub struct Difference<'a, T> {
    iter: Iter<'a, T>,
    other: &'a HashSet<T>,
}

impl<'a, T: Hash + Eq> Iterator for Difference<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        let other = self.other;
        self.iter.by_ref().find(|x| !other.contains(*x))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, self.iter.size_hint().1)
    }
}

impl<T: Hash + Eq> FusedIterator for Difference<'_, T> {}

/// The elements two sets have in common ([`HashSet::intersection`]).
#[derive(Clone)]
pub struct Intersection<'a, T> {
    iter: Iter<'a, T>,
    other: &'a HashSet<T>,
}

impl<'a, T: Hash + Eq> Iterator for Intersection<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        let other = self.other;
        self.iter.by_ref().find(|x| other.contains(*x))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, self.iter.size_hint().1)
    }
}

impl<T: Hash + Eq> FusedIterator for Intersection<'_, T> {}

/// The elements of either of two sets, each once ([`HashSet::union`]).
#[derive(Clone)]
pub struct Union<'a, T>(Chain<Iter<'a, T>, Difference<'a, T>>);

impl<'a, T: Hash + Eq> Iterator for Union<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        self.0.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<T: Hash + Eq> FusedIterator for Union<'_, T> {}

/// The elements of exactly one of two sets ([`HashSet::symmetric_difference`]).
#[derive(Clone)]
pub struct SymmetricDifference<'a, T>(Chain<Difference<'a, T>, Difference<'a, T>>);

impl<'a, T: Hash + Eq> Iterator for SymmetricDifference<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        self.0.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<T: Hash + Eq> FusedIterator for SymmetricDifference<'_, T> {}
