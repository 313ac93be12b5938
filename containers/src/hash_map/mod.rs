//! [`HashMap<K, V>`] and [`HashSet<T>`]: hash tables that live in a segment, with std's
//! names and semantics.
//!
//! # The table
//!
//! Open addressing of the SwissTable class, as hashbrown (std's `HashMap`) does it: a
//! control byte per bucket (`EMPTY`, `DELETED`, or the top 7 bits of a full bucket's hash),
//! probed 16 at a time (SSE2 where the target has it, two 64-bit words elsewhere and under
//! Miri; both see the same bytes, so the format does not depend on it) along a
//! triangular sequence of groups that visits every group once. At most 7/8 of the
//! buckets are full. The hash is [`FixedHasher`]: the same in every process and program,
//! with the HashDoS caveat its docs spell out.
//!
//! # Layout
//!
//! The map's header is `#[repr(C)]`, 16 bytes: a self-relative [`OffsetPtr`] to its table
//! and the element count as a `u64`. All-zero bytes, like [`HashMap::new`], are an empty
//! map without a table (a pointer aimed at itself, as zero bytes aim, means none, as does
//! null). The table is one block of the segment the header lives in: a 24-byte table
//! header (the [tag](shmkit_runtime::segment::owned) that names the map's pointer as the
//! block's one owner, the bucket mask and the room left), the control bytes (one per
//! bucket and 16 more that repeat the first ones, so a group read near the end wraps
//! around), then the buckets (`#[repr(C)]` key and value) and one spare bucket, where an
//! insertion builds its key before it knows the key's place. The size lives in the table's
//! block rather than in the map's header so that one store of the pointer publishes a
//! table with its size.
//! The layout and the hash are part of the segment format: [`hasher::VERSION`] is in the
//! type fingerprint, so a program that lays tables out or hashes differently finds the
//! map as a type mismatch, never as a table whose lookups go wrong.
//!
//! # Moves, and what is mutated how
//!
//! As for [`Vec`](crate::Vec): the header is position-dependent and never
//! [`PositionIndependent`]; it is mutated in place through the extension trait
//! [`HashMapExt`] on anything that gives in-place access (`use shmkit::prelude::*`), and
//! read through `&HashMap`. Keys and values are built in place from sources
//! ([`Emplace`]), and a position-dependent value is never returned by
//! value. Growing moves every element into a new table with its relocation hook.
//!
//! # Crash consistency
//!
//! A process killed at any instruction of a mutating operation leaves a map that is
//! memory-safe to read and to drop, possibly leaking and possibly with a count that is
//! off (the count is never trusted for memory; a full control byte is what owns an
//! element):
//! - an element is written to a bucket that is not full, and then published by its
//!   control byte (a Release store; the copy after the last bucket is set after it);
//! - an element is disowned by its control byte (the copy first) before it is dropped or
//!   read out; replacing a value marks the bucket `DELETED` meanwhile (a crash leaks the
//!   element, never leaves a half-written value in a full bucket);
//! - the room left is lowered before an `EMPTY` bucket is taken and raised after one is
//!   freed, so it never claims more room than there is;
//! - a new table names the map as its owner and is filled (every key hashed and placed
//!   first, then the elements moved with their relocation hook, so that a panicking
//!   `Hash` leaves nothing moved; the old table's bytes untouched), then published by one
//!   Release store of the pointer; only then is the old block freed, without dropping
//!   what moved out of it. Between the moves and the publication the moved elements'
//!   blocks name their new places, so a writable mapping's validation refuses the map
//!   (an error, no more) until the pointer is published;
//! - dropping the map unpublishes the table before dropping its elements; clearing it
//!   marks each bucket `DELETED` before dropping its element (probes still pass it to
//!   the elements left), and only then every control byte `EMPTY`.
//!
//! [`OffsetPtr`]: shmkit_runtime::OffsetPtr
//! [`PositionIndependent`]: shmkit_runtime::PositionIndependent

mod entry;
mod ext;
mod group;
pub mod hasher;
mod iter;
mod raw;
pub mod set;

pub use entry::{Entry, OccupiedEntry, VacantEntry};
pub use ext::HashMapExt;
pub use hasher::{FixedHasher, FixedState};
pub use iter::{Iter, IterMut, Keys, Values, ValuesMut};
pub use set::{HashSet, HashSetExt};

use core::borrow::Borrow;
use core::fmt;
use core::hash::{BuildHasher, Hash};
use core::marker::PhantomData;
use core::ops::Index;

use shmkit_runtime::layout::{compound_fingerprint, container_schemas, ForwardsImmutable};
use shmkit_runtime::segment::owned::set_owner;
use shmkit_runtime::{AllocError, Invalid, OffsetPtr, Schema, ShmImmutable, ShmSafe};

use crate::emplace::{Emplace, Filled, Slot};
use raw::TableHeader;

/// A hash map in a segment: std's `HashMap<K, V>`, with allocation failure as an error,
/// mutation in place and a fixed hash (see the [module docs](self)).
///
/// By value a map is only ever empty ([`HashMap::new`], [`Default`]): it gets elements
/// once it lives in a segment (constructed there, or as a field of a root), through
/// [`HashMapExt`] (`use shmkit::prelude::*`). It allocates from the segment it lives in,
/// found from its own address, so it holds no allocator and `new()` is `const`.
///
/// Lookups are `Borrow`-based as in std: `map.get(q)` for any `Q` that `K` borrows as,
/// whose `Hash` and `Eq` must agree with `K`'s (as `str`'s do with `String`'s); a `Hash`
/// or `Eq` that does not is a logic error that may lose elements, never undefined
/// behaviour.
///
/// ```
/// use shmkit_containers::{HashMap, HashMapExt, Vec, VecExt};
/// use shmkit_runtime::ManagedHeapMemory;
///
/// let mut seg = ManagedHeapMemory::new(1 << 16)?;
/// seg.construct("ages", HashMap::<u64, u32>::new())?;
/// let mut ages = seg.find_mut::<HashMap<u64, u32>>("ages")?.expect("constructed above");
/// assert_eq!(ages.insert(7, 30)?, None);
/// assert_eq!(ages.insert(7, 31)?, Some(30));
/// *ages.entry(9)?.or_insert(0)? += 1;
/// assert_eq!((ages.get(&7), ages[&9], ages.len()), (Some(&31), 1, 2));
///
/// // Position-dependent values are built in place, and handed out as guards.
/// seg.construct("rows", HashMap::<u64, Vec<u32>>::new())?;
/// let mut rows = seg.find_mut::<HashMap<u64, Vec<u32>>>("rows")?.expect("constructed above");
/// rows.insert_with(1, 10..13, |_| ())?; // a `Vec<u32>` built from a range
/// rows.value_mut(&1).expect("inserted").push(13)?;
/// assert_eq!(rows[&1], [10, 11, 12, 13]);
/// # Ok::<(), shmkit_runtime::Error>(())
/// ```
#[repr(C)]
pub struct HashMap<K, V> {
    table: OffsetPtr<TableHeader>,
    items: u64,
    /// The map owns its keys and values (for drop check).
    _owns: PhantomData<(K, V)>,
}

// SAFETY: as std's `HashMap`: the map owns its elements, reached only through it.
unsafe impl<K: Send, V: Send> Send for HashMap<K, V> {}
// SAFETY: as above; `&HashMap` gives only `&K` and `&V`.
unsafe impl<K: Sync, V: Sync> Sync for HashMap<K, V> {}

impl<K, V> HashMap<K, V> {
    /// An empty map, allocating nothing (all-zero bytes are one too).
    pub const fn new() -> Self {
        HashMap {
            table: OffsetPtr::null(),
            items: 0,
            _owns: PhantomData,
        }
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.items as usize
    }

    /// Whether there are no elements.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// How many elements fit without growing the table.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.table().map_or(0, |t| t.capacity())
    }

    /// The value under `k`.
    #[inline]
    pub fn get<Q>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_key_value(k).map(|(_, v)| v)
    }

    /// The key and value under `k`.
    #[inline]
    pub fn get_key_value<Q>(&self, k: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (table, i) = self.locate(k)?;
        let bucket = table.bucket(i);
        // SAFETY: a full bucket, borrowed with the map.
        Some(unsafe { (&(*bucket).key, &(*bucket).value) })
    }

    /// Whether there is a value under `k`.
    #[inline]
    pub fn contains_key<Q>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.locate(k).is_some()
    }

    /// The elements, in no particular order.
    pub fn iter(&self) -> Iter<'_, K, V> {
        Iter::new(self)
    }

    /// The keys, in no particular order.
    pub fn keys(&self) -> Keys<'_, K, V> {
        Keys(self.iter())
    }

    /// The values, in no particular order.
    pub fn values(&self) -> Values<'_, K, V> {
        Values(self.iter())
    }
}

impl<K, V> Default for HashMap<K, V> {
    fn default() -> Self {
        HashMap::new()
    }
}

impl<'a, K, V> IntoIterator for &'a HashMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Iter<'a, K, V> {
        self.iter()
    }
}

/// `map[&k]`: the value under `k`.
///
/// # Panics
///
/// When there is none, as std's `HashMap` does; [`HashMap::get`] returns an `Option`.
impl<K, Q, V> Index<&Q> for HashMap<K, V>
where
    K: Borrow<Q>,
    Q: Hash + Eq + ?Sized,
{
    type Output = V;

    fn index(&self, key: &Q) -> &V {
        self.get(key).expect("no entry found for key")
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for HashMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Equal when both hold the same keys with equal values, in whatever order.
impl<K: Hash + Eq, V: PartialEq> PartialEq for HashMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(k, v)| other.get(k).is_some_and(|w| v == w))
    }
}

impl<K: Hash + Eq, V: Eq> Eq for HashMap<K, V> {}

/// Equal to a std map that holds the same keys with equal values.
impl<K: Hash + Eq, V: PartialEq, S: BuildHasher> PartialEq<std::collections::HashMap<K, V, S>>
    for HashMap<K, V>
{
    fn eq(&self, other: &std::collections::HashMap<K, V, S>) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(k, v)| other.get(k).is_some_and(|w| v == w))
    }
}

impl<K: ShmSafe, V: ShmSafe> HashMap<K, V> {
    /// What the fingerprint hashes beside the name.
    const GENERICS: &'static [u64] = &[
        K::POINTEE_FINGERPRINT,
        V::POINTEE_FINGERPRINT,
        hasher::VERSION,
    ];
}

// SAFETY: the header holds an offset pointer and an integer; `relocate` re-aims the
// pointer after a move of the header (the table stays where it is); `validate` accepts
// exactly the tables the map's methods rely on, and the elements in their full buckets.
// The drop glue is the map's own (a segment container).
unsafe impl<K: ShmSafe, V: ShmSafe> ShmSafe for HashMap<K, V> {
    /// Over the key's and value's pointee fingerprints (a type may hold a map of itself)
    /// and the table format's version (the layout and the hash function).
    const LAYOUT_FINGERPRINT: u64 = compound_fingerprint("HashMap", Self::GENERICS);

    /// A table of buckets behind control bytes (for the inspector's `dump`; its parts
    /// are `raw::Bucket::PARTS`).
    const SCHEMA: Option<&'static Schema> = Some(&Schema::container(
        "HashMap",
        "hash",
        size_of::<Self>(),
        align_of::<Self>(),
        Self::GENERICS,
        raw::Bucket::<K, V>::PARTS,
    ));

    fn for_each_schema(f: &mut dyn FnMut(&'static Schema) -> bool) {
        container_schemas::<(K, V)>(Self::SCHEMA, f);
    }

    /// A count beyond the capacity, a table outside the segment or garbage in a full
    /// bucket must be refused.
    const ALL_BIT_PATTERNS_VALID: bool = false;

    unsafe fn validate(value: *const Self) -> Result<(), Invalid> {
        // SAFETY: forwarded contract.
        unsafe { raw::validate(value) }
    }

    #[inline]
    unsafe fn relocate(&mut self, moved_from: usize) {
        // No table at the old place means none here: a pointer aimed at itself keeps
        // doing so, and re-aiming it would aim it at the old header.
        if self.table_ptr().is_some() {
            let at = core::mem::offset_of!(Self, table);
            // SAFETY: the pointer moved with the header, from its own old address.
            unsafe { self.table.relocate(moved_from.wrapping_add(at)) };
            if let Some(block) = core::ptr::NonNull::new(self.table.get()) {
                // SAFETY: the table's block is this map's (the caller's contract: `self`
                // holds the bytes that were its header), in the writable mapping it was
                // moved in, and starts with the word reserved for its tag.
                unsafe { set_owner(block.cast(), self.owner()) };
            }
        }
    }

    /// The layout fingerprint, the same in every program.
    fn type_fingerprint() -> u64 {
        Self::LAYOUT_FINGERPRINT
    }
}

// SAFETY: the map changes only through `&mut` (`HashMapExt`), and immutable keys and
// values make an immutable whole: a read-only mapping may lend a map of plain data.
unsafe impl<K: ShmImmutable, V: ShmImmutable> ShmImmutable for HashMap<K, V> {}
// SAFETY: the impl above asks only `K, V: ShmImmutable`.
unsafe impl<K, V> ForwardsImmutable for HashMap<K, V> {}

impl<K, V> Drop for HashMap<K, V> {
    /// Drops the elements in place and gives the table back to the segment. A map that
    /// is in no writable segment has no table (by value it is empty).
    fn drop(&mut self) {
        self.drop_in_place();
    }
}

/// A map built in place from pairs of sources (`[(1, 10..12), (2, 20..22)]` for a
/// `HashMap<u64, Vec<u32>>`, another map's `&HashMap` for clonable plain data); a later
/// pair replaces an earlier one with the same key.
impl<K, V, I, KS, VS> Emplace<I> for HashMap<K, V>
where
    I: IntoIterator<Item = (KS, VS)>,
    K: Emplace<KS> + Hash + Eq,
    V: Emplace<VS>,
{
    fn emplace<'a>(slot: Slot<'a, Self>, pairs: I) -> Result<Filled<'a, Self>, AllocError> {
        let mut map = slot.write(HashMap::new());
        map.as_mut().extend(pairs)?;
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header without a table, moved and relocated, still has none: null stays null,
    /// and a pointer aimed at itself (all-zero bytes) must not be re-aimed at the old
    /// header.
    #[test]
    fn a_header_without_a_table_moves_without_one() {
        // SAFETY: all-zero bytes are an empty map (the type's documented layout).
        let zeroed: HashMap<u64, u64> = unsafe { core::mem::zeroed() };
        for map in [HashMap::<u64, u64>::new(), zeroed] {
            assert!(map.table_ptr().is_none());
            let from = (&raw const map).addr();
            let mut moved = Box::new(map);
            // SAFETY: the box holds the bytes that were at `from`, moved once.
            unsafe { moved.relocate(from) };
            assert!(moved.table_ptr().is_none() && moved.is_empty());
            assert_eq!(moved.capacity(), 0);
        }
    }
}
