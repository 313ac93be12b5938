//! Name indexes, chosen by a type parameter of the segment like Boost's `IndexType`:
//! [`HashIndex`] (the default, O(1) find), [`OrderedIndex`] (names in order, O(log n)) and
//! [`NullIndex`] (no index: anonymous objects only, named construction does not compile).
//!
//! An index only links entries that live in the segment; it never owns them. Every
//! operation runs under the segment's index lock, except the probe of a hash index's named
//! objects ([`IndexKind::LOCK_FREE_FIND`]), which `find` runs without it.

pub(crate) mod hash;
pub(crate) mod null;
pub(crate) mod ordered;

use super::entry::Entry;
use super::space::{Blocks, Space};
use crate::error::Result;
use crate::manager::header::words;

pub use hash::HashIndex;
pub use null::NullIndex;
pub use ordered::OrderedIndex;

mod sealed {
    pub trait Sealed {}
}

/// The index kind of a segment. Sealed: the three kinds above are all there is.
pub trait IndexKind: sealed::Sealed + Send + Sync + 'static {
    /// Recorded in the segment header at creation; opening with another kind fails.
    const KIND: u32;
    /// For error messages.
    const NAME: &'static str;
    /// The index links each entry carries (plain offsets into the segment).
    type Link: Copy + Default + Send + Sync + 'static;

    /// Whether [`probe`](Self::probe) may run without the index lock (`SHARED`) on the
    /// named index of a writable mapping: its structures are read and written by atomic
    /// words, and what it unlinks there is retired rather than freed (`objects::retired`).
    #[doc(hidden)]
    const LOCK_FREE_FIND: bool = false;

    /// Whether the index keeps names (the null index keeps none).
    #[doc(hidden)]
    const NAMES: bool = true;

    /// The live or constructing entry named by `key`, if any.
    #[doc(hidden)]
    fn find(s: &Space, root: Root, key: Key<'_>) -> Result<Option<u64>>;
    /// [`find`](Self::find) without error values, for the lookup fast path: `Slow` when in
    /// any doubt (the checked `find` then decides and reports). Without the index lock
    /// (`SHARED`, only where [`LOCK_FREE_FIND`](Self::LOCK_FREE_FIND) says so and the
    /// mapping is writable) it reads every word with an acquire load, and only `Found` is
    /// an answer: the lock holder may be moving slots meanwhile.
    #[doc(hidden)]
    #[inline]
    fn probe<const SHARED: bool>(s: &Space, root: Root, key: Key<'_>) -> Probe {
        let _ = (s, root, key);
        Probe::Slow
    }
    /// Links a new entry (its name is not in the index yet). Reads the count word, which
    /// the caller updates afterwards.
    #[doc(hidden)]
    fn insert(s: &Space, root: Root, entry: u64) -> Result<()>;
    /// Unlinks an entry that is in the index (before the caller lowers the count).
    #[doc(hidden)]
    fn remove(s: &Space, root: Root, entry: u64) -> Result<()>;
    /// Calls `f` on every entry, in the index's order. `f` must not change the index.
    #[doc(hidden)]
    fn for_each(s: &Space, root: Root, f: &mut dyn FnMut(u64) -> Result<()>) -> Result<()>;
    /// For a cold check and for recovery, where the index may be forged or torn: calls
    /// `visit` on every offset the index links, and reads the links an entry holds only
    /// once `visit` accepted it (returned true). The index's own structures are checked
    /// against `blocks` before they are read, and no entry is followed twice, so a cycle
    /// ends; `visit` may see an offset more than once.
    #[doc(hidden)]
    fn walk(
        s: &Space,
        root: Root,
        blocks: &Blocks,
        visit: &mut dyn FnMut(u64) -> Result<bool>,
    ) -> Result<()>;
    /// Prepares room for `n` entries in all, so that inserting them allocates no index memory.
    #[doc(hidden)]
    fn reserve(s: &Space, root: Root, n: u64) -> Result<()>;
    /// Gives back the index memory the entries it holds do not need (all of it when it
    /// holds none); an index that keeps nothing beyond its entries has nothing to do.
    #[doc(hidden)]
    fn shrink_to_fit(s: &Space, root: Root) -> Result<()> {
        let _ = (s, root);
        Ok(())
    }
    /// What a tool can say about the index's shape (`inspect::index_load`), read under
    /// the index lock or from a read-only mapping.
    #[doc(hidden)]
    fn shape(s: &Space, root: Root) -> Result<crate::segment::inspect::IndexShape>;
    /// Forgets every link and frees the index's own structures.
    #[doc(hidden)]
    fn reset(s: &Space, root: Root) -> Result<()>;
    /// For recovery: forgets every link but keeps the index's own structures where they
    /// are sound, so that linking the entries again needs no allocation.
    #[doc(hidden)]
    fn clear(s: &Space, root: Root, _blocks: &Blocks) -> Result<()> {
        s.word(root.root)
            .store(0, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// The name of the index kind recorded as `kind`, for error messages.
pub(crate) fn kind_name(kind: u64) -> String {
    match kind as u32 {
        HashIndex::KIND => HashIndex::NAME.into(),
        OrderedIndex::KIND => OrderedIndex::NAME.into(),
        NullIndex::KIND => NullIndex::NAME.into(),
        other => format!("unknown index kind {other}"),
    }
}

/// What a lookup compares: the name bytes and their hash.
#[derive(Clone, Copy)]
pub struct Key<'a> {
    pub name: &'a [u8],
    pub hash: u32,
}

/// What the lookup fast path found.
pub enum Probe {
    /// The entry at this offset, the usable length of its (entry-marked) block, and its
    /// header as the probe read it (the index links left out), tag checked.
    Found {
        entry: u64,
        block_len: usize,
        header: Entry<()>,
    },
    Absent,
    Slow,
}

/// Where one index (named, unique, or the schema table) keeps its root and its count in
/// the header.
#[derive(Clone, Copy)]
pub struct Root {
    pub root: usize,
    pub count: usize,
}

impl Root {
    /// Whether readers without the lock may be in this index of a segment of kind `I`: the
    /// named index, where the kind allows it ([`IndexKind::LOCK_FREE_FIND`]; unique objects
    /// are always looked up under the lock). What it unlinks (a table, an entry) is then
    /// retired rather than freed.
    #[inline]
    pub fn read_without_lock<I: IndexKind>(self) -> bool {
        I::LOCK_FREE_FIND && self.root == words::NAMED_ROOT
    }
}

/// An index kind that can map names to entries: named and unique objects need one.
///
/// ```compile_fail,E0277
/// use shmkit_runtime::segment::HeapMemory;
/// use shmkit_runtime::{ManagedSegment, NullIndex, ReadWrite};
/// fn named(seg: &ManagedSegment<HeapMemory, ReadWrite, NullIndex>) {
///     let _ = seg.construct("counter", 0u64); // error: NullIndex is not a NamedIndex
/// }
/// ```
/// ```
/// use shmkit_runtime::{ManagedHeapMemory, NullIndex};
/// let seg = ManagedHeapMemory::options().index::<NullIndex>().create(1 << 16).unwrap();
/// let x = seg.construct_anonymous(5u64).unwrap(); // anonymous objects need no index
/// assert_eq!(*x, 5);
/// ```
#[diagnostic::on_unimplemented(
    message = "a segment whose index is `{Self}` keeps no names",
    label = "names and `Unique` need a name index",
    note = "a NullIndex segment holds only `Anonymous` objects, reached through the reference construction returns; use HashIndex or OrderedIndex to construct and find named and unique objects"
)]
pub trait NamedIndex: IndexKind {}

impl NamedIndex for HashIndex {}
impl NamedIndex for OrderedIndex {}

impl sealed::Sealed for HashIndex {}
impl sealed::Sealed for OrderedIndex {}
impl sealed::Sealed for NullIndex {}
