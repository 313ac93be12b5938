//! [`HashMapExt`], the mutating methods of [`HashMap`] on whatever gives in-place access
//! to one.

use core::borrow::Borrow;
use core::hash::Hash;
use core::ptr;

use shmkit_runtime::{AllocError, PositionIndependent, ShmDerefMut, ShmMut, ShmSafe};

use super::entry::Entry;
use super::iter::{IterMut, ValuesMut};
use super::raw::{InMap, Prepared};
use super::HashMap;
use crate::emplace::Emplace;

/// The mutating methods of the segment [`HashMap`], with std's names and semantics, on
/// anything that gives in-place access to one: a [`ShmMut`] (from `root_mut`, `find_mut`
/// or a derived accessor) and the guards of shmkit's locks (`db.index.lock()?`). Brought
/// in by `use shmkit::prelude::*`.
///
/// Keys and values are built in place from sources ([`Emplace`]): the values themselves,
/// or anything the types are built from (`map.insert("key", 5)` for `String` keys). An
/// allocation failure is an [`AllocError`] that leaves the elements as they were. A
/// position-dependent value (a nested container) is never returned by value: replacing
/// or removing one hands it to a closure in place (`insert_with`, `remove_with`) and
/// drops it there.
///
/// ```
/// use shmkit_containers::{HashMap, HashMapExt, Vec, VecExt};
/// use shmkit_runtime::ManagedHeapMemory;
///
/// let mut seg = ManagedHeapMemory::new(1 << 16)?;
/// seg.construct("groups", HashMap::<u32, Vec<u64>>::new())?;
/// let mut groups = seg.find_mut::<HashMap<u32, Vec<u64>>>("groups")?.expect("constructed above");
/// for x in 0..20u64 {
///     groups.entry((x % 3) as u32)?.or_insert(Vec::new())?.push(x)?;
/// }
/// assert_eq!(groups[&1].len(), 7);
/// let sum = groups.remove_with(&1, |_, row| row.iter().sum::<u64>()); // dropped in place
/// assert_eq!((sum, groups.len()), (Some(70), 2));
/// groups.retain(|k, _| *k == 0);
/// assert_eq!(groups.keys().collect::<std::vec::Vec<_>>(), [&0]);
/// # Ok::<(), shmkit_runtime::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` gives no in-place access to a segment `HashMap<{K}, {V}>`",
    label = "not a guard of a `HashMap<{K}, {V}>` in place",
    note = "lock the map's Mutex (`db.index.lock()?.insert(k, v)?`), or reach it through `root_mut`/`find_mut` of an exclusive mapping and the accessors #[derive(ShmSafe)] generates (`db.index_mut().insert(k, v)?`)"
)]
pub trait HashMapExt<K: ShmSafe + Hash + Eq, V: ShmSafe>:
    ShmDerefMut<Target = HashMap<K, V>>
{
    /// Inserts a value built from `value` under a key built from `key`; the old value if
    /// the key was there (the old key stays, as in std). Plain values only: for others,
    /// [`insert_with`](Self::insert_with).
    fn insert<KS, VS>(&mut self, key: KS, value: VS) -> Result<Option<V>, AllocError>
    where
        K: Emplace<KS>,
        V: Emplace<VS> + PositionIndependent;

    /// Inserts a value built from `value` under a key built from `key`; if the key was
    /// there, its old value is handed to `old` in place and then dropped there, and
    /// `old`'s result returned. What `insert` is for position-dependent values.
    fn insert_with<KS, VS, R>(
        &mut self,
        key: KS,
        value: VS,
        old: impl FnOnce(ShmMut<'_, V>) -> R,
    ) -> Result<Option<R>, AllocError>
    where
        K: Emplace<KS>,
        V: Emplace<VS>;

    /// The guard of the value under `k`: std's `get_mut`, whose name is taken on a guard
    /// by [`ShmMut::get_mut`] (the `&mut` of plain data). Plain data derefs mutably:
    /// `*map.value_mut(&k).unwrap() += 1`.
    fn value_mut<Q>(&mut self, k: &Q) -> Option<ShmMut<'_, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;

    /// Removes the element under `k` and returns its value (the key is dropped in place);
    /// None when absent.
    fn remove<Q>(&mut self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: PositionIndependent;

    /// Removes the element under `k` and returns it; None when absent. Plain data only.
    fn remove_entry<Q>(&mut self, k: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q> + PositionIndependent,
        Q: Hash + Eq + ?Sized,
        V: PositionIndependent;

    /// Hands the element under `k` to `f` in place, then drops it there; None (and `f`
    /// not called) when absent.
    fn remove_with<Q, R>(&mut self, k: &Q, f: impl FnOnce(&K, ShmMut<'_, V>) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;

    /// Keeps only the elements `f` says yes to, dropping the others in place.
    fn retain(&mut self, f: impl FnMut(&K, ShmMut<'_, V>) -> bool);

    /// Drops every element; the capacity stays.
    fn clear(&mut self);

    /// Makes room for at least `additional` more elements.
    fn reserve(&mut self, additional: usize) -> Result<(), AllocError>;

    /// Gives the room beyond the elements back to the segment (all of it when empty).
    fn shrink_to_fit(&mut self) -> Result<(), AllocError>;

    /// The entry of the key built from `key`, to read, change or fill in place. Makes
    /// room for one more element first (as std's insertions do), which is the error.
    fn entry<KS>(&mut self, key: KS) -> Result<Entry<'_, K, V>, AllocError>
    where
        K: Emplace<KS>;

    /// The keys with guards of their values, in no particular order.
    fn iter_mut(&mut self) -> IterMut<'_, K, V>;

    /// Guards of the values, in no particular order.
    fn values_mut(&mut self) -> ValuesMut<'_, K, V>;

    /// Inserts every pair of sources of `pairs`, a later value replacing an earlier one
    /// (dropped in place). On error the pairs before the failing one stay inserted.
    fn extend<I, KS, VS>(&mut self, pairs: I) -> Result<(), AllocError>
    where
        I: IntoIterator<Item = (KS, VS)>,
        K: Emplace<KS>,
        V: Emplace<VS>;
}

/// The map behind a guard, for its in-place algorithms.
#[inline(always)]
fn in_place<K, V, P: ShmDerefMut<Target = HashMap<K, V>> + ?Sized>(p: &mut P) -> InMap<'_, K, V> {
    // SAFETY: only the map's own algorithms (in `raw`, `entry`, `iter`) use the
    // reference; they change the map in place and never move it.
    InMap(unsafe { p.as_shm_mut().get_unchecked_mut() })
}

impl<K, V, P> HashMapExt<K, V> for P
where
    K: ShmSafe + Hash + Eq,
    V: ShmSafe,
    P: ShmDerefMut<Target = HashMap<K, V>> + ?Sized,
{
    #[inline]
    fn insert<KS, VS>(&mut self, key: KS, value: VS) -> Result<Option<V>, AllocError>
    where
        K: Emplace<KS>,
        V: Emplace<VS> + PositionIndependent,
    {
        // SAFETY: the old value is read out once its bucket disowned it: the copy
        // returned is its one owner.
        in_place(self).insert(key, value, |_| (), |old, ()| unsafe { ptr::read(old) })
    }

    #[inline]
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
        in_place(self).insert(
            key,
            value,
            // SAFETY: the old value in place, borrowed for the call; the guard moves
            // nothing.
            |v| old(unsafe { ShmMut::new(v) }),
            |v, r| {
                // SAFETY: the old value, which nothing owns now, dropped once.
                unsafe { v.drop_in_place() };
                r
            },
        )
    }

    #[inline]
    fn value_mut<Q>(&mut self, k: &Q) -> Option<ShmMut<'_, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = in_place(self).0;
        let (table, i) = map.locate(k)?;
        // SAFETY: a full bucket's value in place, borrowed with the map.
        Some(unsafe { ShmMut::new(&mut (*table.bucket(i)).value) })
    }

    fn remove<Q>(&mut self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: PositionIndependent,
    {
        let mut map = in_place(self);
        let (table, i) = map.0.locate(k)?;
        // SAFETY: bucket `i` is full; once nothing owns its element, the key is dropped
        // and the value read out, each once.
        Some(unsafe {
            map.take(table, i, |b| {
                ptr::drop_in_place(&raw mut (*b).key);
                ptr::read(&raw const (*b).value)
            })
        })
    }

    fn remove_entry<Q>(&mut self, k: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q> + PositionIndependent,
        Q: Hash + Eq + ?Sized,
        V: PositionIndependent,
    {
        let mut map = in_place(self);
        let (table, i) = map.0.locate(k)?;
        // SAFETY: bucket `i` is full; once nothing owns its element, it is read out once.
        Some(unsafe { map.take(table, i, |b| ptr::read(b)) }).map(|b| (b.key, b.value))
    }

    fn remove_with<Q, R>(&mut self, k: &Q, f: impl FnOnce(&K, ShmMut<'_, V>) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut map = in_place(self);
        let (table, i) = map.0.locate(k)?;
        let bucket = table.bucket(i);
        // SAFETY: a full bucket's element in place, borrowed for the call.
        let r = f(unsafe { &(*bucket).key }, unsafe {
            ShmMut::new(&mut (*bucket).value)
        });
        // SAFETY: bucket `i` is still full; its element is dropped once nothing owns it.
        unsafe { map.take(table, i, |b| b.drop_in_place()) };
        Some(r)
    }

    fn retain(&mut self, f: impl FnMut(&K, ShmMut<'_, V>) -> bool) {
        in_place(self).retain(f);
    }

    fn clear(&mut self) {
        in_place(self).clear();
    }

    fn reserve(&mut self, additional: usize) -> Result<(), AllocError> {
        if additional > 0 {
            in_place(self).room(additional)?;
        }
        Ok(())
    }

    fn shrink_to_fit(&mut self) -> Result<(), AllocError> {
        in_place(self).shrink_to_fit()
    }

    #[inline]
    fn entry<KS>(&mut self, key: KS) -> Result<Entry<'_, K, V>, AllocError>
    where
        K: Emplace<KS>,
    {
        let mut map = in_place(self);
        Ok(match map.prepare(key)? {
            Prepared::Occupied(table, index) => Entry::occupied(map.0, table, index),
            Prepared::Vacant(vacancy) => Entry::vacant(map.0, vacancy),
        })
    }

    fn iter_mut(&mut self) -> IterMut<'_, K, V> {
        IterMut::new(in_place(self).0)
    }

    fn values_mut(&mut self) -> ValuesMut<'_, K, V> {
        ValuesMut(self.iter_mut())
    }

    fn extend<I, KS, VS>(&mut self, pairs: I) -> Result<(), AllocError>
    where
        I: IntoIterator<Item = (KS, VS)>,
        K: Emplace<KS>,
        V: Emplace<VS>,
    {
        // One guard for every step: all pairs go into the map the hint was taken from.
        let mut map = self.as_shm_mut();
        let pairs = pairs.into_iter();
        // As std: a hint of new keys only into an empty map, else half of it.
        let hint = pairs.size_hint().0;
        map.reserve(if map.is_empty() {
            hint
        } else {
            hint.div_ceil(2)
        })?;
        for (k, v) in pairs {
            map.insert_with(k, v, |_| ())?;
        }
        Ok(())
    }
}
