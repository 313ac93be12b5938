//! The entry API of a [`HashMap`] ([`HashMapExt::entry`](super::HashMapExt::entry)): one
//! lookup, then reading, changing or filling the place in place.

use core::hash::Hash;
use core::ptr;

use shmkit_runtime::{AllocError, PositionIndependent, ShmMut, ShmSafe};

use super::raw::{InMap, Table, Vacancy};
use super::HashMap;
use crate::emplace::Emplace;

/// The place of a key in a map: an element that is there, or room for one. Its values are
/// reached as guards ([`ShmMut`]), which deref mutably for plain data.
pub enum Entry<'a, K, V> {
    /// The key is there.
    Occupied(OccupiedEntry<'a, K, V>),
    /// The key is absent; it waits, built, for a value.
    Vacant(VacantEntry<'a, K, V>),
}

/// An element that is in the map ([`Entry::Occupied`]).
pub struct OccupiedEntry<'a, K, V> {
    map: &'a mut HashMap<K, V>,
    table: Table<K, V>,
    index: usize,
}

/// A key built in place but not in the map yet ([`Entry::Vacant`]): dropped again unless
/// a value is inserted.
pub struct VacantEntry<'a, K, V> {
    map: &'a mut HashMap<K, V>,
    vacancy: Vacancy<K, V>,
}

impl<'a, K: ShmSafe + Hash + Eq, V: ShmSafe> Entry<'a, K, V> {
    pub(super) fn occupied(map: &'a mut HashMap<K, V>, table: Table<K, V>, index: usize) -> Self {
        Entry::Occupied(OccupiedEntry { map, table, index })
    }

    pub(super) fn vacant(map: &'a mut HashMap<K, V>, vacancy: Vacancy<K, V>) -> Self {
        Entry::Vacant(VacantEntry { map, vacancy })
    }

    /// The value, inserting one built from `default` if the key is absent.
    pub fn or_insert<S>(self, default: S) -> Result<ShmMut<'a, V>, AllocError>
    where
        V: Emplace<S>,
    {
        match self {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(e) => e.insert(default),
        }
    }

    /// The value, inserting one built from what `default` returns if the key is absent.
    pub fn or_insert_with<S>(self, default: impl FnOnce() -> S) -> Result<ShmMut<'a, V>, AllocError>
    where
        V: Emplace<S>,
    {
        match self {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(e) => e.insert(default()),
        }
    }

    /// The value, inserting one built from what `default` returns for the key if absent.
    pub fn or_insert_with_key<S>(
        self,
        default: impl FnOnce(&K) -> S,
    ) -> Result<ShmMut<'a, V>, AllocError>
    where
        V: Emplace<S>,
    {
        match self {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(e) => {
                let src = default(e.key());
                e.insert(src)
            }
        }
    }

    /// The value, inserting `V::default()` if the key is absent.
    pub fn or_default(self) -> Result<ShmMut<'a, V>, AllocError>
    where
        V: Default,
    {
        self.or_insert(V::default())
    }

    /// Lets `f` change the value in place if the key is there.
    pub fn and_modify(mut self, f: impl FnOnce(ShmMut<'_, V>)) -> Self {
        if let Entry::Occupied(e) = &mut self {
            f(e.get_mut());
        }
        self
    }

    /// The key.
    pub fn key(&self) -> &K {
        match self {
            Entry::Occupied(e) => e.key(),
            Entry::Vacant(e) => e.key(),
        }
    }
}

impl<'a, K: ShmSafe + Hash + Eq, V: ShmSafe> OccupiedEntry<'a, K, V> {
    /// The element's bucket.
    fn bucket(&self) -> *mut super::raw::Bucket<K, V> {
        self.table.bucket(self.index)
    }

    /// The key in the map.
    pub fn key(&self) -> &K {
        // SAFETY: a full bucket, borrowed with the map.
        unsafe { &(*self.bucket()).key }
    }

    /// The value.
    pub fn get(&self) -> &V {
        // SAFETY: as above.
        unsafe { &(*self.bucket()).value }
    }

    /// The value's guard, for as long as the entry is borrowed.
    pub fn get_mut(&mut self) -> ShmMut<'_, V> {
        // SAFETY: a full bucket's value in place, borrowed with the entry; the guard
        // moves nothing.
        unsafe { ShmMut::new(&mut (*self.bucket()).value) }
    }

    /// The value's guard, for as long as the map is borrowed.
    pub fn into_mut(self) -> ShmMut<'a, V> {
        // SAFETY: as above, borrowed with the map for `'a`.
        unsafe { ShmMut::new(&mut (*self.bucket()).value) }
    }

    /// Replaces the value by one built from `value` and returns the old one. Plain values
    /// only; on error nothing changed.
    pub fn insert<S>(&mut self, value: S) -> Result<V, AllocError>
    where
        V: Emplace<S> + PositionIndependent,
    {
        // SAFETY: the bucket is full, in the map borrowed mutably; the spare bucket is
        // free (the key built for the lookup was dropped). The old value is read out once
        // disowned: the copy is its one owner.
        unsafe {
            self.table
                .replace(self.index, value, |_| (), |old, ()| ptr::read(old))
        }
    }

    /// Removes the element and returns its value (the key is dropped in place).
    pub fn remove(self) -> V
    where
        V: PositionIndependent,
    {
        let (table, index) = (self.table, self.index);
        // SAFETY: the bucket is full; once nothing owns its element, the key is dropped
        // and the value read out, each once.
        unsafe {
            InMap(self.map).take(table, index, |b| {
                ptr::drop_in_place(&raw mut (*b).key);
                ptr::read(&raw const (*b).value)
            })
        }
    }

    /// Hands the element to `f` in place, then drops it there.
    pub fn remove_with<R>(mut self, f: impl FnOnce(&K, ShmMut<'_, V>) -> R) -> R {
        let bucket = self.bucket();
        // SAFETY: a full bucket's key, borrowed for the call beside the value's guard.
        let r = f(unsafe { &(*bucket).key }, self.get_mut());
        let (table, index) = (self.table, self.index);
        // SAFETY: the bucket is still full; its element is dropped once nothing owns it.
        unsafe { InMap(self.map).take(table, index, |b| b.drop_in_place()) };
        r
    }
}

impl<'a, K: ShmSafe + Hash + Eq, V: ShmSafe> VacantEntry<'a, K, V> {
    /// The key that would be inserted.
    pub fn key(&self) -> &K {
        self.vacancy.key.key()
    }

    /// Inserts the key with a value built from `value`; the value's guard. On error the
    /// map is as it was (the key is dropped).
    pub fn insert<S>(self, value: S) -> Result<ShmMut<'a, V>, AllocError>
    where
        V: Emplace<S>,
    {
        // SAFETY: the vacancy was found in this map, borrowed mutably since.
        let v = unsafe { self.vacancy.fill(self.map, value) }?;
        // SAFETY: the value in place in a full bucket, borrowed with the map for `'a`.
        Ok(unsafe { ShmMut::new(v) })
    }
}
