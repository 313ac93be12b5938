//! The iterators of a [`Map`]: over shared elements ([`Iter`], [`Range`], [`Keys`],
//! [`Values`]) and over guards of the values ([`IterMut`], [`RangeMut`], [`ValuesMut`]).
//! All of them walk between two leaf edges and stop where those meet.

use core::borrow::Borrow;
use core::iter::FusedIterator;
use core::marker::PhantomData;
use core::ops::{Bound, RangeBounds};

use shmkit_runtime::ShmMut;

use super::node::Node;
use super::path::Path;
use super::Map;

/// The elements between two leaf edges.
struct Edges<K, V> {
    front: Path<K, V>,
    back: Path<K, V>,
}

impl<K, V> Clone for Edges<K, V> {
    fn clone(&self) -> Self {
        Edges {
            front: self.front.clone(),
            back: self.back.clone(),
        }
    }
}

impl<K, V> Edges<K, V> {
    /// Nothing.
    fn empty() -> Self {
        Edges {
            front: Path::empty(),
            back: Path::empty(),
        }
    }

    /// All the elements of `map`.
    fn all(map: &Map<K, V>) -> Self {
        match map.root() {
            Some(root) => Edges {
                front: Path::first(root),
                back: Path::last(root),
            },
            None => Edges::empty(),
        }
    }

    /// The elements of `map` whose keys lie in `range`; none when the range starts after
    /// it ends (std panics), so the two ends never cross.
    fn new<Q, R>(map: &Map<K, V>, range: R) -> Self
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        R: RangeBounds<Q>,
    {
        let Some(root) = map.root() else {
            return Edges::empty();
        };
        let (start, end) = (range.start_bound(), range.end_bound());
        let inverted = match (start, end) {
            (Bound::Excluded(s), Bound::Excluded(e)) => s >= e,
            (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => {
                s > e
            }
            _ => false,
        };
        if inverted {
            return Edges::empty();
        }
        Edges {
            front: Path::seek(root, start, false),
            back: Path::seek(root, end, true),
        }
    }

    /// The next element from the front.
    #[inline]
    fn next(&mut self) -> Option<(Node<K, V>, usize)> {
        if self.front.meets(&self.back) {
            return None;
        }
        self.front.next_kv()
    }

    /// The next element from the back.
    #[inline]
    fn next_back(&mut self) -> Option<(Node<K, V>, usize)> {
        if self.front.meets(&self.back) {
            return None;
        }
        self.back.next_back_kv()
    }
}

/// The elements of a [`Map`] whose keys lie in a range, in order ([`Map::range`]).
pub struct Range<'a, K, V> {
    edges: Edges<K, V>,
    _map: PhantomData<&'a Map<K, V>>,
}

// SAFETY: a range lends `&K` and `&V` only, as a `&Map` would.
unsafe impl<K: Sync, V: Sync> Send for Range<'_, K, V> {}
// SAFETY: as above.
unsafe impl<K: Sync, V: Sync> Sync for Range<'_, K, V> {}

impl<'a, K, V> Range<'a, K, V> {
    pub(super) fn new<Q, R>(map: &'a Map<K, V>, range: R) -> Self
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        R: RangeBounds<Q>,
    {
        Range {
            edges: Edges::new(map, range),
            _map: PhantomData,
        }
    }

    /// Every element of `map`.
    fn all(map: &'a Map<K, V>) -> Self {
        Range {
            edges: Edges::all(map),
            _map: PhantomData,
        }
    }

    /// The element at `(node, i)` for `'a`.
    #[inline(always)]
    fn pair((node, i): (Node<K, V>, usize)) -> (&'a K, &'a V) {
        // SAFETY: an initialised element of the map borrowed for `'a`.
        unsafe { (node.key_ref(i), &*node.val(i)) }
    }
}

impl<K, V> Clone for Range<'_, K, V> {
    fn clone(&self) -> Self {
        Range {
            edges: self.edges.clone(),
            _map: PhantomData,
        }
    }
}

impl<'a, K, V> Iterator for Range<'a, K, V> {
    type Item = (&'a K, &'a V);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.edges.next().map(Self::pair)
    }
}

impl<K, V> DoubleEndedIterator for Range<'_, K, V> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        self.edges.next_back().map(Self::pair)
    }
}

impl<K, V> FusedIterator for Range<'_, K, V> {}

/// The elements of a [`Map`] in key order ([`Map::iter`]).
pub struct Iter<'a, K, V> {
    range: Range<'a, K, V>,
    remaining: usize,
}

impl<'a, K, V> Iter<'a, K, V> {
    pub(super) fn new(map: &'a Map<K, V>) -> Self {
        Iter {
            range: Range::all(map),
            remaining: map.len(),
        }
    }
}

impl<K, V> Clone for Iter<'_, K, V> {
    fn clone(&self) -> Self {
        Iter {
            range: self.range.clone(),
            remaining: self.remaining,
        }
    }
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let pair = self.range.next()?;
        self.remaining = self.remaining.saturating_sub(1);
        Some(pair)
    }

    /// The map's length: exact, unless a crash left it counting leaked elements.
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<K, V> DoubleEndedIterator for Iter<'_, K, V> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        let pair = self.range.next_back()?;
        self.remaining = self.remaining.saturating_sub(1);
        Some(pair)
    }
}

impl<K, V> ExactSizeIterator for Iter<'_, K, V> {}

impl<K, V> FusedIterator for Iter<'_, K, V> {}

/// The keys of a [`Map`] in order ([`Map::keys`]).
pub struct Keys<'a, K, V>(pub(super) Iter<'a, K, V>);

impl<K, V> Clone for Keys<'_, K, V> {
    fn clone(&self) -> Self {
        Keys(self.0.clone())
    }
}

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

impl<K, V> DoubleEndedIterator for Keys<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(k, _)| k)
    }
}

impl<K, V> ExactSizeIterator for Keys<'_, K, V> {}

impl<K, V> FusedIterator for Keys<'_, K, V> {}

/// The values of a [`Map`] in key order ([`Map::values`]).
pub struct Values<'a, K, V>(pub(super) Iter<'a, K, V>);

impl<K, V> Clone for Values<'_, K, V> {
    fn clone(&self) -> Self {
        Values(self.0.clone())
    }
}

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

impl<K, V> DoubleEndedIterator for Values<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(_, v)| v)
    }
}

impl<K, V> ExactSizeIterator for Values<'_, K, V> {}

impl<K, V> FusedIterator for Values<'_, K, V> {}

/// The keys and value guards of a [`Map`] in a key range, in order
/// ([`MapExt::range_mut`](super::MapExt::range_mut)).
pub struct RangeMut<'a, K, V> {
    edges: Edges<K, V>,
    _map: PhantomData<&'a mut Map<K, V>>,
}

// SAFETY: as a `(&K, &mut V)` iterator: keys are shared, each value lent once.
unsafe impl<K: Sync, V: Send> Send for RangeMut<'_, K, V> {}
// SAFETY: as above; `&RangeMut` lends nothing.
unsafe impl<K: Sync, V: Sync> Sync for RangeMut<'_, K, V> {}

impl<'a, K, V> RangeMut<'a, K, V> {
    /// The elements of `map` in `range`; the map is borrowed in place for `'a` (its
    /// guard was given up to make the reference, which never moves it).
    pub(super) fn new<Q, R>(map: &'a mut Map<K, V>, range: R) -> Self
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        R: RangeBounds<Q>,
    {
        RangeMut {
            edges: Edges::new(map, range),
            _map: PhantomData,
        }
    }

    /// Every element of `map`, borrowed as for [`new`](Self::new).
    fn all(map: &'a mut Map<K, V>) -> Self {
        RangeMut {
            edges: Edges::all(map),
            _map: PhantomData,
        }
    }

    /// The key and value guard at `(node, i)` for `'a`.
    #[inline(always)]
    fn pair((node, i): (Node<K, V>, usize)) -> (&'a K, ShmMut<'a, V>) {
        // SAFETY: an initialised element of the map borrowed mutably for `'a`, in place;
        // the edges hand out each element once, so the guards never alias.
        unsafe { (node.key_ref(i), ShmMut::new(&mut *node.val(i))) }
    }
}

impl<'a, K, V> Iterator for RangeMut<'a, K, V> {
    type Item = (&'a K, ShmMut<'a, V>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.edges.next().map(Self::pair)
    }
}

impl<K, V> DoubleEndedIterator for RangeMut<'_, K, V> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        self.edges.next_back().map(Self::pair)
    }
}

impl<K, V> FusedIterator for RangeMut<'_, K, V> {}

/// The keys and value guards of a [`Map`] in key order
/// ([`MapExt::iter_mut`](super::MapExt::iter_mut)).
pub struct IterMut<'a, K, V> {
    range: RangeMut<'a, K, V>,
    remaining: usize,
}

impl<'a, K, V> IterMut<'a, K, V> {
    pub(super) fn new(map: &'a mut Map<K, V>) -> Self {
        let remaining = map.len();
        IterMut {
            range: RangeMut::all(map),
            remaining,
        }
    }
}

impl<'a, K, V> Iterator for IterMut<'a, K, V> {
    type Item = (&'a K, ShmMut<'a, V>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let pair = self.range.next()?;
        self.remaining = self.remaining.saturating_sub(1);
        Some(pair)
    }

    /// As [`Iter`]'s.
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<K, V> DoubleEndedIterator for IterMut<'_, K, V> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        let pair = self.range.next_back()?;
        self.remaining = self.remaining.saturating_sub(1);
        Some(pair)
    }
}

impl<K, V> ExactSizeIterator for IterMut<'_, K, V> {}

impl<K, V> FusedIterator for IterMut<'_, K, V> {}

/// The value guards of a [`Map`] in key order
/// ([`MapExt::values_mut`](super::MapExt::values_mut)).
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

impl<K, V> DoubleEndedIterator for ValuesMut<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(_, v)| v)
    }
}

impl<K, V> ExactSizeIterator for ValuesMut<'_, K, V> {}

impl<K, V> FusedIterator for ValuesMut<'_, K, V> {}
