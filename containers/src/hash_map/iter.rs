//! The iterators of a [`HashMap`]: over its elements ([`Iter`], [`Keys`], [`Values`]) and,
//! in place, over guards of its values ([`IterMut`], [`ValuesMut`]).

use core::iter::FusedIterator;
use core::marker::PhantomData;

use shmkit_runtime::ShmMut;

use super::raw::{Bucket, RawIter, Table};
use super::HashMap;

/// The full buckets of a map's table, at most as many as the map counts: the control
/// bytes decide what is visited, the count how many at most, so that the bound
/// `size_hint` gives holds even when the count is too low (a crash in the middle of an
/// insertion, bytes from elsewhere).
struct Buckets<K, V> {
    table: Option<(Table<K, V>, RawIter)>,
    left: usize,
}

impl<K, V> Buckets<K, V> {
    fn new(map: &HashMap<K, V>) -> Self {
        Buckets {
            // SAFETY: the map's live table, borrowed (by the iterator that holds this)
            // for as long as the iteration runs.
            table: map.table().map(|t| (t, unsafe { t.full() })),
            left: map.len(),
        }
    }

    #[inline]
    fn next(&mut self) -> Option<*mut Bucket<K, V>> {
        if self.left == 0 {
            return None;
        }
        let (table, raw) = self.table.as_mut()?;
        let i = raw.next()?;
        self.left -= 1;
        Some(table.bucket(i))
    }
}

/// The elements of a map ([`HashMap::iter`]).
pub struct Iter<'a, K, V> {
    buckets: Buckets<K, V>,
    _map: PhantomData<&'a HashMap<K, V>>,
}

impl<'a, K, V> Iter<'a, K, V> {
    pub(super) fn new(map: &'a HashMap<K, V>) -> Self {
        Iter {
            buckets: Buckets::new(map),
            _map: PhantomData,
        }
    }
}

impl<K, V> Clone for Iter<'_, K, V> {
    fn clone(&self) -> Self {
        Iter {
            buckets: Buckets {
                table: self.buckets.table.clone(),
                left: self.buckets.left,
            },
            _map: PhantomData,
        }
    }
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    #[inline]
    fn next(&mut self) -> Option<(&'a K, &'a V)> {
        let bucket = self.buckets.next()?;
        // SAFETY: a full bucket of the map borrowed for `'a`.
        Some(unsafe { (&(*bucket).key, &(*bucket).value) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.buckets.left, Some(self.buckets.left))
    }
}

// SAFETY: as `&HashMap`: it hands out only `&K` and `&V`.
unsafe impl<K: Sync, V: Sync> Send for Iter<'_, K, V> {}
// SAFETY: as above.
unsafe impl<K: Sync, V: Sync> Sync for Iter<'_, K, V> {}

impl<K, V> ExactSizeIterator for Iter<'_, K, V> {}
impl<K, V> FusedIterator for Iter<'_, K, V> {}

/// The keys of a map ([`HashMap::keys`]).
#[derive(Clone)]
pub struct Keys<'a, K, V>(pub(super) Iter<'a, K, V>);

impl<'a, K, V> Iterator for Keys<'a, K, V> {
    type Item = &'a K;

    #[inline]
    fn next(&mut self) -> Option<&'a K> {
        self.0.next().map(|(k, _)| k)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<K, V> ExactSizeIterator for Keys<'_, K, V> {}
impl<K, V> FusedIterator for Keys<'_, K, V> {}

/// The values of a map ([`HashMap::values`]).
#[derive(Clone)]
pub struct Values<'a, K, V>(pub(super) Iter<'a, K, V>);

impl<'a, K, V> Iterator for Values<'a, K, V> {
    type Item = &'a V;

    #[inline]
    fn next(&mut self) -> Option<&'a V> {
        self.0.next().map(|(_, v)| v)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<K, V> ExactSizeIterator for Values<'_, K, V> {}
impl<K, V> FusedIterator for Values<'_, K, V> {}

/// The keys of a map with guards of their values, in place
/// ([`HashMapExt::iter_mut`](super::HashMapExt::iter_mut)).
pub struct IterMut<'a, K, V> {
    buckets: Buckets<K, V>,
    _map: PhantomData<&'a mut HashMap<K, V>>,
}

impl<'a, K, V> IterMut<'a, K, V> {
    /// The elements of `map`, which must be in place (borrowed from a guard).
    pub(super) fn new(map: &'a mut HashMap<K, V>) -> Self {
        IterMut {
            buckets: Buckets::new(map),
            _map: PhantomData,
        }
    }
}

impl<'a, K, V> Iterator for IterMut<'a, K, V> {
    type Item = (&'a K, ShmMut<'a, V>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let bucket = self.buckets.next()?;
        // SAFETY: a full bucket of the map borrowed mutably (in place) for `'a`, handed
        // out once; the guard moves nothing.
        Some(unsafe { (&(*bucket).key, ShmMut::new(&mut (*bucket).value)) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.buckets.left, Some(self.buckets.left))
    }
}

// SAFETY: as `&mut HashMap` handing out `&K` and guards of `V`.
unsafe impl<K: Sync, V: Send> Send for IterMut<'_, K, V> {}
// SAFETY: as above; a shared iterator hands out nothing.
unsafe impl<K: Sync, V: Sync> Sync for IterMut<'_, K, V> {}

impl<K, V> ExactSizeIterator for IterMut<'_, K, V> {}
impl<K, V> FusedIterator for IterMut<'_, K, V> {}

/// Guards of a map's values, in place
/// ([`HashMapExt::values_mut`](super::HashMapExt::values_mut)).
pub struct ValuesMut<'a, K, V>(pub(super) IterMut<'a, K, V>);

impl<'a, K, V> Iterator for ValuesMut<'a, K, V> {
    type Item = ShmMut<'a, V>;

    #[inline]
    fn next(&mut self) -> Option<ShmMut<'a, V>> {
        self.0.next().map(|(_, v)| v)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<K, V> ExactSizeIterator for ValuesMut<'_, K, V> {}
impl<K, V> FusedIterator for ValuesMut<'_, K, V> {}
