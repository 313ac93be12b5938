//! [`MapExt`], the mutating methods of [`Map`] on whatever gives in-place access to one,
//! and its entry API ([`Entry`]).

use core::borrow::Borrow;
use core::ops::RangeBounds;

use shmkit_runtime::{AllocError, PositionIndependent, ShmDerefMut, ShmMut, ShmSafe};

use super::iter::{IterMut, RangeMut, ValuesMut};
use super::node::{Discard, Read, ReadValue};
use super::path::Path;
use super::raw::{self, InPlace, Seek};
use super::Map;
use crate::emplace::Emplace;

/// The mutating methods of the segment [`Map`], with std's names and semantics, on
/// anything that gives in-place access to one: a [`ShmMut`] (from `root_mut`, `find_mut`
/// or a derived accessor) and the guards of shmkit's locks. Brought in by
/// `use shmkit::prelude::*`.
///
/// Keys and values are built from sources ([`Emplace`]): `map.insert("key", 5)` for a
/// `Map<String, u64>`. Allocation failure is an [`AllocError`] that leaves the
/// map exactly as it was. A position-dependent key or value (one holding an offset pointer,
/// or a nested container) is never returned by value: the `_with` methods hand it to a
/// closure in place and drop it there.
///
/// ```
/// use shmkit_containers::{Map, MapExt, Vec, VecExt};
/// use shmkit_runtime::ManagedHeapMemory;
///
/// let mut seg = ManagedHeapMemory::new(1 << 16)?;
/// seg.construct("rows", Map::<u64, Vec<u32>>::new())?;
/// let mut rows = seg.find_mut::<Map<u64, Vec<u32>>>("rows")?.expect("constructed above");
/// rows.insert_with(1, &[1, 2, 3][..], |_| ())?; // a row built in place from a slice
/// rows.entry(2)?.or_insert(Vec::new())?.push(7)?;
/// rows.value_mut(&1).expect("inserted").push(4)?;
/// assert_eq!(rows[&1], [1, 2, 3, 4]);
/// let sum = rows.remove_with(&1, |_, row| row.iter().sum::<u32>()); // dropped in place
/// assert_eq!((sum, rows.len()), (Some(10), 1));
/// # Ok::<(), shmkit_runtime::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` gives no in-place access to a segment `Map<{K}, {V}>`",
    label = "not a guard of a `Map<{K}, {V}>` in place",
    note = "lock the map's Mutex (`db.index.lock()?.insert(k, v)?`), or reach it through `root_mut`/`find_mut` of an exclusive mapping and the accessors #[derive(ShmSafe)] generates (`db.index_mut().insert(k, v)?`)"
)]
pub trait MapExt<K: ShmSafe + Ord, V: ShmSafe>: ShmDerefMut<Target = Map<K, V>> {
    /// Inserts a pair built from the sources `key` and `value`; if the key was there, its
    /// value is replaced and returned (the key stays, the new one is dropped), as std.
    /// Position-independent values only: see [`insert_with`](Self::insert_with).
    fn insert<KS, VS>(&mut self, key: KS, value: VS) -> Result<Option<V>, AllocError>
    where
        K: Emplace<KS>,
        V: Emplace<VS> + PositionIndependent;

    /// [`insert`](Self::insert) for any value: a replaced value is handed to `old` in
    /// place, then dropped there; what `old` returns is returned.
    fn insert_with<KS, VS, R>(
        &mut self,
        key: KS,
        value: VS,
        old: impl FnOnce(ShmMut<'_, V>) -> R,
    ) -> Result<Option<R>, AllocError>
    where
        K: Emplace<KS>,
        V: Emplace<VS>;

    /// The entry of the key built from `key`, to insert or update in place. The key is
    /// built first (an error when that fails) and dropped again if the map has it.
    fn entry<KS>(&mut self, key: KS) -> Result<Entry<'_, K, V>, AllocError>
    where
        K: Emplace<KS>;

    /// The guard of the value of `key`: std's `get_mut`, whose name is taken on a guard
    /// by [`ShmMut::get_mut`]. Plain data derefs mutably: `*m.value_mut(&k).unwrap() += 1`.
    fn value_mut<Q>(&mut self, key: &Q) -> Option<ShmMut<'_, V>>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized;

    /// Removes `key` and returns its value.
    fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        V: PositionIndependent;

    /// Removes `key` and returns the stored key and the value.
    fn remove_entry<Q>(&mut self, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q> + PositionIndependent,
        Q: Ord + ?Sized,
        V: PositionIndependent;

    /// Hands the element of `key` to `f` in place, then removes it, dropping it in place;
    /// None (and `f` not called) when the key is missing.
    fn remove_with<Q, R>(&mut self, key: &Q, f: impl FnOnce(&K, ShmMut<'_, V>) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized;

    /// Removes and returns the first element (smallest key).
    fn pop_first(&mut self) -> Option<(K, V)>
    where
        K: PositionIndependent,
        V: PositionIndependent;

    /// Removes and returns the last element (largest key).
    fn pop_last(&mut self) -> Option<(K, V)>
    where
        K: PositionIndependent,
        V: PositionIndependent;

    /// Hands the first element to `f` in place, then removes and drops it.
    fn pop_first_with<R>(&mut self, f: impl FnOnce(&K, ShmMut<'_, V>) -> R) -> Option<R>;

    /// Hands the last element to `f` in place, then removes and drops it.
    fn pop_last_with<R>(&mut self, f: impl FnOnce(&K, ShmMut<'_, V>) -> R) -> Option<R>;

    /// Keeps only the elements `keep` says yes to (in key order), dropping the others in
    /// place.
    fn retain(&mut self, keep: impl FnMut(&K, ShmMut<'_, V>) -> bool);

    /// Drops every element and gives every node back to the segment.
    fn clear(&mut self);

    /// Inserts every `(key, value)` pair of sources, as [`insert_with`](Self::insert_with)
    /// one after the other (replaced values are dropped). On error the pairs before the
    /// failing one are in, the failing one is not.
    fn extend<I, KS, VS>(&mut self, iter: I) -> Result<(), AllocError>
    where
        I: IntoIterator<Item = (KS, VS)>,
        K: Emplace<KS>,
        V: Emplace<VS>;

    /// The keys with guards of their values, in order.
    fn iter_mut(&mut self) -> IterMut<'_, K, V>;

    /// Guards of the values, in key order.
    fn values_mut(&mut self) -> ValuesMut<'_, K, V>;

    /// The keys in `range` with guards of their values, in order (empty, not a panic, for
    /// a range that starts after it ends).
    fn range_mut<Q, R>(&mut self, range: R) -> RangeMut<'_, K, V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        R: RangeBounds<Q>;
}

/// The map behind a guard, for its in-place algorithms.
#[inline(always)]
fn in_place<K, V, P: ShmDerefMut<Target = Map<K, V>> + ?Sized>(p: &mut P) -> InPlace<'_, K, V> {
    // SAFETY: only the map's own algorithms (in `raw`) and the iterators and entries use
    // the reference; they change the map in place and never move it.
    InPlace(unsafe { p.as_shm_mut().get_unchecked_mut() })
}

impl<K, V, P> MapExt<K, V> for P
where
    K: ShmSafe + Ord,
    V: ShmSafe,
    P: ShmDerefMut<Target = Map<K, V>> + ?Sized,
{
    #[inline]
    fn insert<KS, VS>(&mut self, key: KS, value: VS) -> Result<Option<V>, AllocError>
    where
        K: Emplace<KS>,
        V: Emplace<VS> + PositionIndependent,
    {
        let old = in_place(self).insert(key, value, |_| (), ReadValue)?;
        Ok(old.map(|((), v)| v))
    }

    fn insert_with<KS, VS, R>(
        &mut self,
        key: KS,
        value: VS,
        old: impl FnOnce(ShmMut<'_, V>) -> R,
    ) -> Result<Option<R>, AllocError>
    where
        K: Emplace<KS>,
        V: Emplace<VS>,
    {
        let seen = in_place(self).insert(key, value, old, Discard)?;
        Ok(seen.map(|(r, ())| r))
    }

    fn entry<KS>(&mut self, key: KS) -> Result<Entry<'_, K, V>, AllocError>
    where
        K: Emplace<KS>,
    {
        let mut map = in_place(self);
        map.stage_key(key)?;
        let (path, found) = raw::search(map.0, map.staged_key());
        Ok(match found {
            Some(level) => {
                map.drop_staged_key();
                Entry::Occupied(OccupiedEntry { map, path, level })
            }
            None => Entry::Vacant(VacantEntry {
                map,
                path,
                staged: true,
            }),
        })
    }

    fn value_mut<Q>(&mut self, key: &Q) -> Option<ShmMut<'_, V>>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let map = in_place(self);
        let (node, i) = map.0.find(key)?;
        // SAFETY: the value in place, borrowed mutably with the map.
        Some(unsafe { ShmMut::new(&mut *node.val(i)) })
    }

    fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        V: PositionIndependent,
    {
        let mut path = Path::empty();
        let ((), value) = in_place(self).remove(Seek::Key(key), &mut path, |_, _| (), ReadValue)?;
        Some(value)
    }

    fn remove_entry<Q>(&mut self, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q> + PositionIndependent,
        Q: Ord + ?Sized,
        V: PositionIndependent,
    {
        let mut path = Path::empty();
        let ((), pair) = in_place(self).remove(Seek::Key(key), &mut path, |_, _| (), Read)?;
        Some(pair)
    }

    fn remove_with<Q, R>(&mut self, key: &Q, f: impl FnOnce(&K, ShmMut<'_, V>) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut path = Path::empty();
        let (r, ()) = in_place(self).remove(Seek::Key(key), &mut path, f, Discard)?;
        Some(r)
    }

    fn pop_first(&mut self) -> Option<(K, V)>
    where
        K: PositionIndependent,
        V: PositionIndependent,
    {
        pop(self, Seek::First, |_, _| (), Read).map(|((), pair)| pair)
    }

    fn pop_last(&mut self) -> Option<(K, V)>
    where
        K: PositionIndependent,
        V: PositionIndependent,
    {
        pop(self, Seek::Last, |_, _| (), Read).map(|((), pair)| pair)
    }

    fn pop_first_with<R>(&mut self, f: impl FnOnce(&K, ShmMut<'_, V>) -> R) -> Option<R> {
        pop(self, Seek::First, f, Discard).map(|(r, ())| r)
    }

    fn pop_last_with<R>(&mut self, f: impl FnOnce(&K, ShmMut<'_, V>) -> R) -> Option<R> {
        pop(self, Seek::Last, f, Discard).map(|(r, ())| r)
    }

    fn retain(&mut self, keep: impl FnMut(&K, ShmMut<'_, V>) -> bool) {
        in_place(self).retain(keep);
    }

    fn clear(&mut self) {
        raw::clear(in_place(self).0);
    }

    fn extend<I, KS, VS>(&mut self, iter: I) -> Result<(), AllocError>
    where
        I: IntoIterator<Item = (KS, VS)>,
        K: Emplace<KS>,
        V: Emplace<VS>,
    {
        let mut map = in_place(self);
        for (key, value) in iter {
            map.insert(key, value, |_| (), Discard)?;
        }
        Ok(())
    }

    fn iter_mut(&mut self) -> IterMut<'_, K, V> {
        IterMut::new(in_place(self).0)
    }

    fn values_mut(&mut self) -> ValuesMut<'_, K, V> {
        ValuesMut(self.iter_mut())
    }

    fn range_mut<Q, R>(&mut self, range: R) -> RangeMut<'_, K, V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        R: RangeBounds<Q>,
    {
        RangeMut::new(in_place(self).0, range)
    }
}

/// Removes the first or last element (`seek`) of the map behind `p`.
fn pop<K, V, P, R, T>(
    p: &mut P,
    seek: Seek<'_, K>,
    inspect: impl FnOnce(&K, ShmMut<'_, V>) -> R,
    take: impl super::node::Take<K, V, Out = T>,
) -> Option<(R, T)>
where
    K: ShmSafe + Ord,
    V: ShmSafe,
    P: ShmDerefMut<Target = Map<K, V>> + ?Sized,
{
    in_place(p).remove(seek, &mut Path::empty(), inspect, take)
}

/// A key's place in a [`Map`], from [`MapExt::entry`]: its element, or the gap for it.
pub enum Entry<'a, K, V> {
    /// The map does not hold the key.
    Vacant(VacantEntry<'a, K, V>),
    /// The map holds the key.
    Occupied(OccupiedEntry<'a, K, V>),
}

/// The gap for a key the map does not hold; the key is built already and is dropped
/// with the entry unless inserted.
pub struct VacantEntry<'a, K, V> {
    map: InPlace<'a, K, V>,
    /// Where the key belongs.
    path: Path<K, V>,
    /// Whether the key is still in the staging slot (the entry's to drop).
    staged: bool,
}

/// The element of a key the map holds.
pub struct OccupiedEntry<'a, K, V> {
    map: InPlace<'a, K, V>,
    /// The way to the element, which is at `path.node(level)`, index `path.idx(level)`.
    path: Path<K, V>,
    level: usize,
}

impl<'a, K: ShmSafe + Ord, V: ShmSafe> Entry<'a, K, V> {
    /// The key: the map's, or the one built for the gap.
    pub fn key(&self) -> &K {
        match self {
            Entry::Vacant(e) => e.key(),
            Entry::Occupied(e) => e.key(),
        }
    }

    /// The value, inserted built from `value` if the key was missing.
    pub fn or_insert<S>(self, value: S) -> Result<ShmMut<'a, V>, AllocError>
    where
        V: Emplace<S>,
    {
        match self {
            Entry::Vacant(e) => e.insert(value),
            Entry::Occupied(e) => Ok(e.into_mut()),
        }
    }

    /// The value, inserted built from what `value()` returns if the key was missing.
    pub fn or_insert_with<S>(self, value: impl FnOnce() -> S) -> Result<ShmMut<'a, V>, AllocError>
    where
        V: Emplace<S>,
    {
        match self {
            Entry::Vacant(e) => e.insert(value()),
            Entry::Occupied(e) => Ok(e.into_mut()),
        }
    }

    /// The value, inserted built from what `value(&key)` returns if the key was missing.
    pub fn or_insert_with_key<S>(
        self,
        value: impl FnOnce(&K) -> S,
    ) -> Result<ShmMut<'a, V>, AllocError>
    where
        V: Emplace<S>,
    {
        match self {
            Entry::Vacant(e) => {
                let value = value(e.key());
                e.insert(value)
            }
            Entry::Occupied(e) => Ok(e.into_mut()),
        }
    }

    /// The value, inserted as `V::default()` if the key was missing.
    pub fn or_default(self) -> Result<ShmMut<'a, V>, AllocError>
    where
        V: Default,
    {
        self.or_insert_with(V::default)
    }

    /// Hands the value to `f` in place if the key is there.
    pub fn and_modify(mut self, f: impl FnOnce(ShmMut<'_, V>)) -> Self {
        if let Entry::Occupied(e) = &mut self {
            f(e.get_mut());
        }
        self
    }
}

impl<'a, K: ShmSafe + Ord, V: ShmSafe> VacantEntry<'a, K, V> {
    /// The key built for the gap.
    pub fn key(&self) -> &K {
        self.map.staged_key()
    }

    /// Inserts the key with a value built from `value`; the guard of the value. On error
    /// the map is as it was (and the key is dropped).
    pub fn insert<S>(mut self, value: S) -> Result<ShmMut<'a, V>, AllocError>
    where
        V: Emplace<S>,
    {
        self.map.stage_val(value)?;
        // From here the staged key is `place`'s: inserted, or dropped on error.
        self.staged = false;
        let (node, i) = self.map.place(self.path.clone())?;
        // SAFETY: the value just placed, in place, borrowed mutably with the map for `'a`
        // (the entry held that borrow and is gone).
        Ok(unsafe { ShmMut::new(&mut *node.val(i)) })
    }
}

impl<K, V> Drop for VacantEntry<'_, K, V> {
    /// Drops the key built for the gap, unless it was inserted.
    fn drop(&mut self) {
        if self.staged && !crate::crash::crashing() {
            let (key, _) = self.map.0.staged();
            // SAFETY: the staged key is the entry's, dropped once.
            unsafe { key.drop_in_place() };
        }
    }
}

impl<'a, K: ShmSafe + Ord, V: ShmSafe> OccupiedEntry<'a, K, V> {
    /// The element's node and index.
    fn at(&self) -> (super::node::Node<K, V>, usize) {
        (self.path.node(self.level), self.path.idx(self.level))
    }

    /// The map's key.
    pub fn key(&self) -> &K {
        let (node, i) = self.at();
        // SAFETY: the element's key, borrowed with the entry.
        unsafe { node.key_ref(i) }
    }

    /// The value.
    pub fn get(&self) -> &V {
        let (node, i) = self.at();
        // SAFETY: the element's value, borrowed with the entry.
        unsafe { &*node.val(i) }
    }

    /// The guard of the value.
    pub fn get_mut(&mut self) -> ShmMut<'_, V> {
        let (node, i) = self.at();
        // SAFETY: the element's value in place, borrowed mutably with the entry.
        unsafe { ShmMut::new(&mut *node.val(i)) }
    }

    /// The guard of the value for as long as the map was borrowed.
    pub fn into_mut(self) -> ShmMut<'a, V> {
        let (node, i) = self.at();
        // SAFETY: as in `get_mut`, for `'a`: the entry held the map's borrow and is gone.
        unsafe { ShmMut::new(&mut *node.val(i)) }
    }

    /// Replaces the value by one built from `value` and returns the old one; on error
    /// the value is as it was.
    pub fn insert<S>(&mut self, value: S) -> Result<V, AllocError>
    where
        V: Emplace<S> + PositionIndependent,
    {
        self.map.stage_val(value)?;
        let (node, i) = self.at();
        Ok(self.map.replace_val(node, i, ReadValue))
    }

    /// Removes the element; what `inspect` and `take` make of it.
    fn remove_by<R, T>(
        mut self,
        inspect: impl FnOnce(&K, ShmMut<'_, V>) -> R,
        take: impl super::node::Take<K, V, Out = T>,
    ) -> (R, T) {
        self.map
            .remove::<K, _, _>(Seek::At(self.level), &mut self.path, inspect, take)
            .expect("an occupied entry's element is in the map")
    }

    /// Removes the element and returns its value.
    pub fn remove(self) -> V
    where
        V: PositionIndependent,
    {
        self.remove_by(|_, _| (), ReadValue).1
    }

    /// Removes the element and returns the map's key and the value.
    pub fn remove_entry(self) -> (K, V)
    where
        K: PositionIndependent,
        V: PositionIndependent,
    {
        self.remove_by(|_, _| (), Read).1
    }

    /// Hands the element to `f` in place, then removes and drops it.
    pub fn remove_with<R>(self, f: impl FnOnce(&K, ShmMut<'_, V>) -> R) -> R {
        self.remove_by(f, Discard).0
    }
}
