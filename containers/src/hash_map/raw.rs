//! The table under [`HashMap`]: its layout in one block, probing, and every step that
//! changes control bytes, counts or the table pointer, in the order the module docs'
//! crash consistency asks for. Only this crate reaches it, through the map's methods and
//! [`HashMapExt`](super::HashMapExt).

use core::alloc::Layout;
use core::borrow::Borrow;
use core::hash::Hash;
use core::marker::PhantomData;
use core::mem::offset_of;
use core::ptr::{self, NonNull};
use core::sync::atomic::{compiler_fence, AtomicU64, AtomicU8, Ordering};

use shmkit_runtime::layout::compound_fingerprint;
use shmkit_runtime::segment::owned::{check_owned, set_owner, OWNER_TAG_BYTES};
use shmkit_runtime::{
    relocate_value, AllocError, FieldSchema, Invalid, SegmentAllocator, ShmMut, ShmSafe,
};

use super::group::{BitMask, Group, DELETED, EMPTY, WIDTH};
use super::hasher::hash_one;
use super::HashMap;
use crate::boxed::block;
use crate::crash::{crashing, point};
use crate::emplace::{emplace_at, Emplace, Slot};

/// The smallest table: 4 buckets, 3 of them usable.
const MIN_BUCKETS: usize = 4;

/// An element: the key and its value side by side.
#[repr(C)]
pub(super) struct Bucket<K, V> {
    pub(super) key: K,
    pub(super) value: V,
}

/// The first bytes of a table's block: the word that names its owner, then its size and
/// room left, published with the block itself by one store of the map's pointer (a size
/// kept in the map's header could not change in the same store).
#[repr(C, align(8))]
pub(super) struct TableHeader {
    /// The block's owner tag ([`set_owner`]): the map's table pointer, written before the
    /// table is published and again whenever the map moves; only the tag's functions read
    /// or write it.
    _owner: u64,
    /// Buckets - 1; the bucket count is a power of two, at least [`MIN_BUCKETS`].
    bucket_mask: u64,
    /// How many more elements may take an `EMPTY` bucket before the table must grow: it
    /// keeps the load at 7/8 at most, and is always below the number of `EMPTY` buckets,
    /// so a probe for room always finds some.
    growth_left: u64,
}

const _: () = assert!(offset_of!(TableHeader, bucket_mask) == OWNER_TAG_BYTES);

// SAFETY: three integers; any bytes are a header, checked against the block by the map's
// `validate` before they are used.
unsafe impl ShmSafe for TableHeader {
    const LAYOUT_FINGERPRINT: u64 = compound_fingerprint("hash_map::TableHeader", &[]);
    const ALL_BIT_PATTERNS_VALID: bool = true;
}

impl<K: ShmSafe, V: ShmSafe> Bucket<K, V> {
    /// The parts of a hash map's descriptor (a `"hash"`, for the inspector's `dump`): the
    /// `table` pointer, the `len` count, in the table its `mask` (buckets - 1) and its
    /// control bytes `ctrl` (their size the trailing group's), then the buckets (`bucket`,
    /// aligned after the control bytes) with their `key` and `value`. A bucket is full
    /// when its control byte's top bit is clear.
    pub(super) const PARTS: &'static [FieldSchema] = &[
        FieldSchema::part("table", offset_of!(HashMap<K, V>, table), 0, 8, 0),
        FieldSchema::part(
            "len",
            offset_of!(HashMap<K, V>, items),
            8,
            8,
            u64::LAYOUT_FINGERPRINT,
        ),
        FieldSchema::part("table.mask", offset_of!(TableHeader, bucket_mask), 8, 8, 0),
        FieldSchema::part("table.ctrl", size_of::<TableHeader>(), WIDTH, 1, 0),
        FieldSchema::part("bucket", 0, size_of::<Self>(), align_of::<Self>(), 0),
        FieldSchema::part(
            "bucket.key",
            offset_of!(Self, key),
            size_of::<K>(),
            align_of::<K>(),
            K::LAYOUT_FINGERPRINT,
        ),
        FieldSchema::part(
            "bucket.value",
            offset_of!(Self, value),
            size_of::<V>(),
            align_of::<V>(),
            V::LAYOUT_FINGERPRINT,
        ),
    ];
}

/// Usable elements of a table of `mask + 1` buckets: all but one of a small table, 7/8
/// of a larger one.
#[inline]
fn capacity_of(mask: usize) -> usize {
    if mask < 8 {
        mask
    } else {
        (mask + 1) / 8 * 7
    }
}

/// The fewest buckets that hold `capacity` elements; None when they would overflow.
fn buckets_for(capacity: usize) -> Option<usize> {
    if capacity < 8 {
        return Some(if capacity < 4 { MIN_BUCKETS } else { 8 });
    }
    (capacity.checked_mul(8)? / 7).checked_next_power_of_two()
}

/// Where the buckets start in a table's block of `buckets` buckets: after the header and
/// the `buckets + WIDTH` control bytes, aligned for a bucket.
#[inline(always)]
fn data_offset<K, V>(buckets: usize) -> usize {
    let align = align_of::<Bucket<K, V>>();
    (size_of::<TableHeader>() + buckets + WIDTH + align - 1) & !(align - 1)
}

/// The block of a table of `buckets` buckets: the header, the control bytes, then
/// `buckets + 1` buckets (the last one is the spare bucket an insertion builds its key
/// in before it knows where the key goes), rounded up to 16 bytes. None when too large.
fn table_layout<K, V>(buckets: usize) -> Option<Layout> {
    let align = align_of::<Bucket<K, V>>().max(align_of::<TableHeader>());
    let ctrl_end = (size_of::<TableHeader>() + WIDTH).checked_add(buckets)?;
    let data = ctrl_end.checked_next_multiple_of(align_of::<Bucket<K, V>>())?;
    let size = size_of::<Bucket<K, V>>()
        .checked_mul(buckets.checked_add(1)?)?
        .checked_add(data)?
        .checked_next_multiple_of(16)?;
    Layout::from_size_align(size, align).ok()
}

/// The 7-bit tag of a hash that a full bucket's control byte holds (its top bits: the
/// position comes from the low ones).
#[inline(always)]
fn tag(hash: u64) -> u8 {
    (hash >> 57) as u8
}

/// Whether a control byte is `EMPTY` or `DELETED` (or any other byte with the top bit).
#[inline(always)]
fn is_special(ctrl: u8) -> bool {
    ctrl & 0x80 != 0
}

/// A view of a live table: where its block is and its size. Valid while the map it was
/// read from is borrowed and its table pointer unchanged.
///
/// The table's invariants, kept at every instruction by this module (and checked by
/// `validate` for bytes from elsewhere):
/// - a bucket whose control byte (the *primary* byte, `ctrl[i]` for `i < buckets`) is
///   full holds an initialised, valid element, owned by the table;
/// - the `WIDTH` control bytes after the last bucket repeat the first ones cyclically
///   (`ctrl[buckets + k]` stands for bucket `k % buckets`, the format hashbrown's
///   tables share); such a copy is full only while its primary byte holds the same value
///   (a copy is set after its primary byte and cleared before it). Lookups read primary
///   bytes only ([`group`](Self::group)), so a copy a crash left behind misleads none;
/// - `growth_left` is below the number of `EMPTY` primary bytes.
pub(super) struct Table<K, V> {
    header: NonNull<TableHeader>,
    mask: usize,
    _elements: PhantomData<*mut Bucket<K, V>>,
}

impl<K, V> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for Table<K, V> {}

/// What a lookup for insertion found.
pub(super) enum Lookup {
    /// The key is in bucket `.0`.
    Found(usize),
    /// The key is absent; bucket `.0` (not full) may take it.
    Vacant(usize),
    /// No bucket is free. Cannot happen in a table that keeps the invariants, which
    /// `validate` checks; reported as an error rather than trusted.
    Full,
}

/// The triangular probe sequence over groups: windows at `h, h + 16, h + 48, …` (mod the
/// bucket count) visit every group of a power-of-two table once, and end after that.
struct Probe {
    pos: usize,
    stride: usize,
}

impl Probe {
    #[inline(always)]
    fn new(hash: u64, mask: usize) -> Self {
        Probe {
            pos: hash as usize & mask,
            stride: 0,
        }
    }

    /// Moves to the next window; false once every group has been seen (a table of at
    /// most `WIDTH` buckets is seen whole by one window).
    #[inline(always)]
    fn next(&mut self, mask: usize) -> bool {
        self.stride += WIDTH;
        self.pos = (self.pos + self.stride) & mask;
        self.stride <= mask
    }
}

impl<K, V> Table<K, V> {
    #[inline(always)]
    pub(super) fn buckets(&self) -> usize {
        self.mask + 1
    }

    /// Usable elements (full buckets at most).
    #[inline]
    pub(super) fn capacity(&self) -> usize {
        capacity_of(self.mask)
    }

    #[inline(always)]
    fn ctrl(&self) -> *mut u8 {
        self.header
            .as_ptr()
            .cast::<u8>()
            .wrapping_add(size_of::<TableHeader>())
    }

    /// Bucket `i` (`i == buckets` is the spare bucket).
    #[inline(always)]
    pub(super) fn bucket(&self, i: usize) -> *mut Bucket<K, V> {
        let data = self
            .header
            .as_ptr()
            .cast::<u8>()
            .wrapping_add(data_offset::<K, V>(self.buckets()));
        data.cast::<Bucket<K, V>>().wrapping_add(i)
    }

    /// The bucket an insertion builds its key in before it knows where the key goes.
    #[inline(always)]
    fn spare(&self) -> *mut Bucket<K, V> {
        self.bucket(self.buckets())
    }

    /// The group of control bytes of buckets `pos, pos + 1, …` (wrapping around).
    ///
    /// A window that reaches past the last bucket is gathered from the primary bytes
    /// rather than read from their copies: a crash between a primary byte and its copy
    /// leaves the copy behind, and a lookup must still see the bucket as it is (full, or
    /// not). Only the last 15 windows of a table (every window of a table of at most 16
    /// buckets) take that path.
    ///
    /// # Safety
    /// `pos <= mask`.
    #[inline(always)]
    unsafe fn group(&self, pos: usize) -> Group {
        if pos + WIDTH <= self.buckets() {
            // SAFETY: the 16 bytes are primary control bytes (caller's bound), initialised
            // when the table is made.
            unsafe { Group::load(self.ctrl().add(pos)) }
        } else {
            // SAFETY: forwarded bound.
            unsafe { self.wrapped_group(pos) }
        }
    }

    /// [`group`](Self::group) for a window past the last bucket.
    ///
    /// # Safety
    /// `pos <= mask`.
    #[inline(never)]
    unsafe fn wrapped_group(&self, pos: usize) -> Group {
        let mut bytes = [EMPTY; WIDTH];
        for (k, byte) in bytes.iter_mut().enumerate() {
            // SAFETY: masked to a bucket.
            *byte = unsafe { self.ctrl_at((pos + k) & self.mask) };
        }
        // SAFETY: 16 readable bytes.
        unsafe { Group::load(bytes.as_ptr()) }
    }

    /// Primary control byte `i`.
    ///
    /// # Safety
    /// `i <= mask`.
    #[inline(always)]
    unsafe fn ctrl_at(&self, i: usize) -> u8 {
        // SAFETY: the caller's bound.
        unsafe { *self.ctrl().add(i) }
    }

    /// The control byte at `at` as an atomic, for the stores that publish or disown.
    ///
    /// # Safety
    /// `at < buckets + WIDTH`, and the caller changes the table (the map is borrowed
    /// mutably): nothing else accesses the byte meanwhile.
    #[inline(always)]
    unsafe fn ctrl_atomic(&self, at: usize) -> &AtomicU8 {
        // SAFETY: the caller's bound; a `u8` is always aligned for `AtomicU8`.
        unsafe { AtomicU8::from_ptr(self.ctrl().add(at)) }
    }

    /// Calls `f` with the position of each copy of bucket `i`'s control byte after the
    /// last bucket: one at most for `i < WIDTH` in a table of 16 buckets or more, several
    /// in a smaller table.
    #[inline(always)]
    fn for_each_copy(&self, i: usize, mut f: impl FnMut(usize)) {
        let n = self.buckets();
        let mut k = i;
        while k < WIDTH {
            f(n + k);
            k += n;
        }
    }

    /// Makes bucket `i` full with `tag`: its primary byte first, then the copies.
    ///
    /// # Safety
    /// `i <= mask`, the bucket holds an initialised element that nothing else owns, and
    /// the map is borrowed mutably.
    #[inline(always)]
    unsafe fn set_full(&self, i: usize, tag: u8) {
        // SAFETY: in bounds (caller), ours alone.
        unsafe { self.ctrl_atomic(i) }.store(tag, Ordering::Release);
        point("hash_map: a control byte full, its copies not yet");
        self.for_each_copy(i, |at| {
            // SAFETY: `at < buckets + WIDTH`; ours alone.
            unsafe { self.ctrl_atomic(at) }.store(tag, Ordering::Release);
        });
    }

    /// Makes bucket `i` `EMPTY` or `DELETED` (`ctrl`): the copies first, then the primary
    /// byte; after this the element has no owner (the fence keeps what follows after).
    ///
    /// # Safety
    /// `i <= mask`, and the map is borrowed mutably.
    #[inline(always)]
    unsafe fn set_special(&self, i: usize, ctrl: u8) {
        self.for_each_copy(i, |at| {
            // SAFETY: `at < buckets + WIDTH`; ours alone.
            unsafe { self.ctrl_atomic(at) }.store(ctrl, Ordering::Release);
        });
        point("hash_map: the copies of a control byte freed, the byte not yet");
        // SAFETY: in bounds (caller), ours alone.
        unsafe { self.ctrl_atomic(i) }.store(ctrl, Ordering::Release);
        compiler_fence(Ordering::SeqCst);
        point("hash_map: a bucket disowned");
    }

    #[inline(always)]
    pub(super) fn growth_left(&self) -> usize {
        // SAFETY: the header of a live table.
        unsafe { (*self.header.as_ptr()).growth_left as usize }
    }

    /// Publishes a new room count, ordered after what came before.
    ///
    /// # Safety
    /// The map is borrowed mutably.
    #[inline(always)]
    unsafe fn set_growth_left(&self, n: usize) {
        // SAFETY: an aligned `u64` of the live header, ours alone.
        unsafe { AtomicU64::from_ptr(&raw mut (*self.header.as_ptr()).growth_left) }
            .store(n as u64, Ordering::Release);
        point("hash_map: the room left stored");
    }

    /// The index of the full bucket whose key `eq` accepts, among those tagged like
    /// `hash`.
    ///
    /// # Safety
    /// A table of a map borrowed for the call.
    #[inline(always)]
    pub(super) unsafe fn find(&self, hash: u64, mut eq: impl FnMut(&K) -> bool) -> Option<usize> {
        let tag = tag(hash);
        let mut probe = Probe::new(hash, self.mask);
        loop {
            // SAFETY: `pos <= mask`.
            let group = unsafe { self.group(probe.pos) };
            for bit in group.match_byte(tag) {
                let i = (probe.pos + bit) & self.mask;
                // SAFETY: a full byte names a full bucket (the table's invariants).
                if eq(unsafe { &(*self.bucket(i)).key }) {
                    return Some(i);
                }
            }
            if group.match_empty().any() || !probe.next(self.mask) {
                return None;
            }
        }
    }

    /// The first bucket among the set bits of `special` (a mask of the window at `pos`).
    #[inline(always)]
    fn room_in(&self, mut special: BitMask, pos: usize) -> Option<usize> {
        special.next().map(|bit| (pos + bit) & self.mask)
    }

    /// A bucket that is not full, the first along `hash`'s probe sequence.
    ///
    /// # Safety
    /// A table of a map borrowed for the call.
    unsafe fn insert_slot(&self, hash: u64) -> Option<usize> {
        let mut probe = Probe::new(hash, self.mask);
        loop {
            // SAFETY: `pos <= mask`.
            let group = unsafe { self.group(probe.pos) };
            if let Some(i) = self.room_in(group.match_empty_or_deleted(), probe.pos) {
                return Some(i);
            }
            if !probe.next(self.mask) {
                return None;
            }
        }
    }

    /// Looks `hash` up with `eq` and, when absent, where it would go: one pass along the
    /// probe sequence, as in hashbrown.
    ///
    /// # Safety
    /// A table of a map borrowed for the call.
    #[inline(always)]
    unsafe fn find_or_slot(&self, hash: u64, mut eq: impl FnMut(&K) -> bool) -> Lookup {
        let tag = tag(hash);
        let mut probe = Probe::new(hash, self.mask);
        let mut slot = None;
        loop {
            // SAFETY: `pos <= mask`.
            let group = unsafe { self.group(probe.pos) };
            for bit in group.match_byte(tag) {
                let i = (probe.pos + bit) & self.mask;
                // SAFETY: a full byte names a full bucket (the table's invariants).
                if eq(unsafe { &(*self.bucket(i)).key }) {
                    return Lookup::Found(i);
                }
            }
            if slot.is_none() {
                slot = self.room_in(group.match_empty_or_deleted(), probe.pos);
            }
            if group.match_empty().any() || !probe.next(self.mask) {
                break;
            }
        }
        match slot {
            Some(i) => Lookup::Vacant(i),
            None => Lookup::Full,
        }
    }

    /// Number of full buckets, by their primary bytes.
    fn count_full(&self) -> usize {
        // SAFETY: a live table.
        unsafe { self.full() }.count()
    }

    /// The full buckets' indices, by their primary bytes.
    ///
    /// # Safety
    /// A live table, whose control bytes change meanwhile only where the iterator has
    /// passed (erasing the bucket just returned).
    #[inline]
    pub(super) unsafe fn full(&self) -> RawIter {
        RawIter {
            ctrl: self.ctrl(),
            buckets: self.buckets(),
            base: 0,
            // SAFETY: window 0 lies in the control bytes; only the first `buckets`
            // bytes of it are primary ones.
            bits: unsafe { self.group(0) }.match_full().first(self.buckets()),
        }
    }

    /// Publishes an element just written to bucket `i` (which was not full) with `tag`:
    /// the counts first (an `EMPTY` bucket taken uses up room), then the control byte.
    ///
    /// # Safety
    /// As for [`set_full`](Self::set_full); `items` is the map's count.
    unsafe fn publish(&self, items: &mut u64, i: usize, tag: u8) {
        // SAFETY: `i <= mask` (caller).
        if unsafe { self.ctrl_at(i) } == EMPTY {
            // SAFETY: the map is borrowed mutably (caller).
            unsafe { self.set_growth_left(self.growth_left().saturating_sub(1)) };
        }
        store_count(items, *items + 1);
        // SAFETY: forwarded contract.
        unsafe { self.set_full(i, tag) };
        point("hash_map: an element published");
    }

    /// Takes full bucket `i` out of the table: afterwards nothing owns its element, which
    /// the caller reads out or drops. `EMPTY` when no probe can have passed it in a full
    /// window (no run of 16 non-`EMPTY` bytes around it), else `DELETED`, as in hashbrown.
    ///
    /// # Safety
    /// `i` is full, and the map is borrowed mutably; `items` is its count.
    unsafe fn erase(&self, items: &mut u64, i: usize) {
        let before = i.wrapping_sub(WIDTH) & self.mask;
        // SAFETY: both positions are at most `mask`.
        let (empty_before, empty_after) = unsafe {
            (
                self.group(before).match_empty(),
                self.group(i).match_empty(),
            )
        };
        let ctrl = if empty_before.leading_zeros() + empty_after.trailing_zeros() >= WIDTH as u32 {
            DELETED
        } else {
            EMPTY
        };
        // SAFETY: forwarded contract.
        unsafe { self.set_special(i, ctrl) };
        store_count(items, items.saturating_sub(1));
        if ctrl == EMPTY {
            // SAFETY: as above.
            unsafe { self.set_growth_left(self.growth_left() + 1) };
        }
    }
}

/// The full buckets of a table, by index.
#[derive(Clone)]
pub(super) struct RawIter {
    ctrl: *const u8,
    buckets: usize,
    /// The window `bits` describes.
    base: usize,
    bits: BitMask,
}

impl Iterator for RawIter {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        loop {
            if let Some(bit) = self.bits.next() {
                return Some(self.base + bit);
            }
            if self.base + WIDTH >= self.buckets {
                return None;
            }
            self.base += WIDTH;
            // SAFETY: a window that starts below the bucket count (a multiple of 16 here)
            // lies in the primary bytes, which the iterator's maker vouched for.
            self.bits = unsafe { Group::load(self.ctrl.add(self.base)) }.match_full();
        }
    }
}

/// Stores a count with Release ordering, so that what came before it is in memory first.
#[inline(always)]
fn store_count(count: &mut u64, n: u64) {
    // SAFETY: an aligned, live `u64` that `&mut` keeps everybody else from.
    unsafe { AtomicU64::from_ptr(count) }.store(n, Ordering::Release);
    point("hash_map: a count stored");
}

impl<K, V> HashMap<K, V> {
    /// Where the table is, without reading it: None for no table (a null pointer, or one
    /// aimed at itself as all-zero bytes are).
    #[inline(always)]
    pub(super) fn table_ptr(&self) -> Option<NonNull<TableHeader>> {
        let p = self.table.get();
        if p.addr() == (&raw const self.table).addr() {
            None
        } else {
            NonNull::new(p)
        }
    }

    /// The live table, if any.
    #[inline(always)]
    pub(super) fn table(&self) -> Option<Table<K, V>> {
        let header = self.table_ptr()?;
        Some(Table {
            header,
            // SAFETY: a table pointer aims at a live table (checked by `validate` for
            // bytes from elsewhere); its size fits this process (`validate`).
            mask: unsafe { header.as_ref().bucket_mask } as usize,
            _elements: PhantomData,
        })
    }

    /// The table and bucket of the element whose key is `q`.
    #[inline(always)]
    pub(super) fn locate<Q>(&self, q: &Q) -> Option<(Table<K, V>, usize)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let table = self.table()?;
        // SAFETY: the table of the map borrowed for the call.
        let i = unsafe { table.find(hash_one(q), |k| k.borrow() == q) }?;
        Some((table, i))
    }

    /// Where the tag of the table's block says its owner is: the pointer to it.
    #[inline(always)]
    pub(super) fn owner(&self) -> *const u8 {
        (&raw const self.table).cast()
    }

    /// The allocator of the mapping this map lives in.
    ///
    /// The lifetime is the caller's choice: it must not outlive the caller's `&mut self`,
    /// which (through the guard it came from) keeps the mapping mapped. Every caller uses
    /// it within the method that asked for it.
    fn allocator<'a>(&self) -> Result<SegmentAllocator<'a>, AllocError> {
        let field: *const u64 = &self.items;
        // SAFETY: see above: the reference (to a field of the header, which holds no
        // element) is used only to find the mapping, while the map is borrowed.
        SegmentAllocator::of(unsafe { &*field })
    }

    /// Unpublishes the table (after zeroing the count): from here on nothing owns it.
    fn unpublish(&mut self) {
        store_count(&mut self.items, 0);
        // SAFETY: null is always a valid target.
        unsafe { self.table.set_release(ptr::null()) };
        compiler_fence(Ordering::SeqCst);
        point("hash_map: the table unpublished");
    }

    /// Gives the block of an unpublished table back to the segment.
    fn free_table(&self, table: Table<K, V>) {
        let layout = table_layout::<K, V>(table.buckets()).unwrap_or(Layout::new::<TableHeader>());
        if let Ok(alloc) = SegmentAllocator::of(&self.items) {
            // SAFETY: the block was this map's table, which nothing owns any more. A
            // failure means a corrupted segment, which its next allocation reports; the
            // block leaks.
            let _ = unsafe { alloc.deallocate(table.header.cast(), layout) };
        }
    }

    /// Drops every element and frees the table (the map's `Drop`): the table is
    /// unpublished first, so a crash midway leaks what was not dropped yet.
    pub(super) fn drop_in_place(&mut self) {
        let Some(table) = self.table() else {
            return;
        };
        self.unpublish();
        // SAFETY: a live table that nothing else reaches now.
        for i in unsafe { table.full() } {
            // SAFETY: a full bucket's element, owned by nobody but this loop.
            unsafe { table.bucket(i).drop_in_place() };
            point("hash_map: an element of an unpublished table dropped");
        }
        self.free_table(table);
    }
}

/// A key built in a table's spare bucket, not in the table yet: dropped there unless it
/// moves into a bucket.
pub(super) struct SpareKey<K, V> {
    bucket: *mut Bucket<K, V>,
}

impl<K: ShmSafe, V> SpareKey<K, V> {
    /// The key.
    pub(super) fn key(&self) -> &K {
        // SAFETY: built and owned by this guard.
        unsafe { &(*self.bucket).key }
    }

    /// Moves the key into `dst`, a bucket's key place that holds nothing.
    ///
    /// # Safety
    /// `dst` is valid for writes, in the same table, and holds no live key.
    unsafe fn move_to(self, dst: *mut K) {
        // SAFETY: the spare key is live; `dst` (a bucket of the table) is another place.
        unsafe { relocate_value(dst, &raw const (*self.bucket).key) };
        core::mem::forget(self);
    }
}

impl<K, V> Drop for SpareKey<K, V> {
    fn drop(&mut self) {
        if crashing() {
            return; // A killed process drops nothing: the key leaks.
        }
        // SAFETY: the key is built and owned by this guard alone.
        unsafe { ptr::drop_in_place(&raw mut (*self.bucket).key) };
    }
}

/// A vacant place for a key built in the spare bucket ([`InMap::prepare`]).
pub(super) struct Vacancy<K, V> {
    pub(super) table: Table<K, V>,
    pub(super) index: usize,
    pub(super) tag: u8,
    pub(super) key: SpareKey<K, V>,
}

impl<K: ShmSafe, V: ShmSafe> Vacancy<K, V> {
    /// Builds the value from `src` in its bucket, moves the key in beside it and
    /// publishes the element; the value in place. On error nothing changed (the key is
    /// dropped with `self`).
    ///
    /// # Safety
    /// `map` is the map of `table`, borrowed mutably since the vacancy was found.
    pub(super) unsafe fn fill<'a, S>(
        self,
        map: &mut HashMap<K, V>,
        src: S,
    ) -> Result<&'a mut V, AllocError>
    where
        V: Emplace<S>,
    {
        let bucket = self.table.bucket(self.index);
        // SAFETY: the bucket is not full: nobody owns its place, which lies in the
        // table's block in the map's mapping.
        unsafe { emplace_at(NonNull::new_unchecked(&raw mut (*bucket).value), src) }?;
        point("hash_map: a value built in a bucket not yet full");
        // SAFETY: the key place of the same bucket holds nothing.
        unsafe { self.key.move_to(&raw mut (*bucket).key) };
        point("hash_map: a key moved beside it");
        // SAFETY: the element is written; the map is borrowed mutably.
        unsafe { self.table.publish(&mut map.items, self.index, self.tag) };
        // SAFETY: a full bucket's value, borrowed with the map by the caller.
        Ok(unsafe { &mut (*bucket).value })
    }
}

/// What [`InMap::prepare`] found for a key built from a source.
pub(super) enum Prepared<K, V> {
    /// The key was there, in bucket `.1` (the built one is dropped).
    Occupied(Table<K, V>, usize),
    /// The key is absent.
    Vacant(Vacancy<K, V>),
}

/// A map in place, as the algorithms below see it. A type of its own rather than
/// inherent methods of `HashMap`: those would shadow [`HashMapExt`](super::HashMapExt)'s
/// methods of the same name on a `&HashMap`.
pub(super) struct InMap<'a, K, V>(pub(super) &'a mut HashMap<K, V>);

impl<'a, K: ShmSafe + Hash + Eq, V: ShmSafe> InMap<'a, K, V> {
    /// A table with room for `additional` more elements (at least one), growing it if
    /// needed.
    #[inline]
    pub(super) fn room(&mut self, additional: usize) -> Result<Table<K, V>, AllocError> {
        if let Some(table) = self.0.table() {
            if additional <= table.growth_left() {
                return Ok(table);
            }
        }
        self.grow(additional)
    }

    /// Makes room for `additional` more (at least one): a larger table when more than half
    /// full, else a table of the same size or smaller, free of `DELETED` buckets.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, additional: usize) -> Result<Table<K, V>, AllocError> {
        let items = (self.0.items as usize)
            .checked_add(additional.max(1))
            .ok_or_else(AllocError::capacity_overflow)?;
        let now = self.0.table().map_or(0, |t| t.capacity());
        let capacity = if items <= now / 2 {
            items
        } else {
            items.max(now + 1)
        };
        self.resize(capacity)
    }

    /// Moves every element into a new table with room for `capacity` (and for every
    /// element, whatever the count says): the new block is filled, published by one
    /// Release store of the pointer, and the old block freed without dropping what moved
    /// out of it. On error (or a panicking `Hash`) nothing changed.
    fn resize(&mut self, capacity: usize) -> Result<Table<K, V>, AllocError> {
        let old = self.0.table();
        let full = old.map_or(0, |t| t.count_full());
        let buckets = buckets_for(capacity.max(full)).ok_or_else(AllocError::capacity_overflow)?;
        let layout = table_layout::<K, V>(buckets).ok_or_else(AllocError::capacity_overflow)?;
        let alloc = self.0.allocator()?;
        let block = alloc.allocate(layout)?.cast::<u8>();
        let new = Table {
            header: block.cast::<TableHeader>(),
            mask: buckets - 1,
            _elements: PhantomData,
        };
        /// Frees the new block if filling it panics (a `Hash` of the keys): the old table
        /// still owns every element.
        struct Unpublished<'a> {
            alloc: SegmentAllocator<'a>,
            block: NonNull<u8>,
            layout: Layout,
        }
        impl Drop for Unpublished<'_> {
            fn drop(&mut self) {
                if crashing() {
                    return; // A killed process frees nothing: the block leaks.
                }
                // SAFETY: the block was allocated above, never published, and holds no
                // element of its own.
                let _ = unsafe { self.alloc.deallocate(self.block, self.layout) };
            }
        }
        let unpublished = Unpublished {
            alloc,
            block,
            layout,
        };
        // SAFETY: a fresh block of `layout` (aligned to 8, in the map's writable mapping),
        // whose header (its owner tag first) and control bytes are written before anything
        // reads them.
        unsafe {
            set_owner(block, self.0.owner());
            let header = new.header.as_ptr();
            (&raw mut (*header).bucket_mask).write((buckets - 1) as u64);
            (&raw mut (*header).growth_left).write((capacity_of(buckets - 1) - full) as u64);
            new.ctrl().write_bytes(EMPTY, buckets + WIDTH);
        }
        if let Some(old) = old {
            // SAFETY: the old table is live and unchanged meanwhile, the new one ours alone.
            unsafe { fill(&new, &old) }?;
        }
        point("hash_map: a new table filled, not yet published");
        core::mem::forget(unpublished);
        // SAFETY: the block lies in the mapping of the map's header (its allocator was
        // found from the header's address), and the header stays where it is.
        unsafe { self.0.table.set_release(new.header.as_ptr()) };
        compiler_fence(Ordering::SeqCst);
        point("hash_map: a new table published, the old one not yet freed");
        if let Some(old) = old {
            self.0.free_table(old);
        }
        Ok(new)
    }

    /// Gives back the room beyond the elements: the whole table when there are none.
    pub(super) fn shrink_to_fit(&mut self) -> Result<(), AllocError> {
        let Some(table) = self.0.table() else {
            return Ok(());
        };
        let full = table.count_full();
        if full == 0 {
            self.0.unpublish();
            self.0.free_table(table);
            return Ok(());
        }
        if buckets_for(full).is_some_and(|b| b < table.buckets()) {
            self.resize(full)?;
        }
        Ok(())
    }

    /// Builds a key from `src` in the spare bucket and looks it up, after making room for
    /// one more element (as hashbrown's insertions do, also when the key turns out to be
    /// there).
    #[inline]
    pub(super) fn prepare<S>(&mut self, src: S) -> Result<Prepared<K, V>, AllocError>
    where
        K: Emplace<S>,
    {
        let table = self.room(1)?;
        let spare = table.spare();
        // SAFETY: the spare bucket lies in the table's block, in the map's mapping, and
        // holds nothing: it is only ever used within one operation on the map.
        unsafe { emplace_at(NonNull::new_unchecked(&raw mut (*spare).key), src) }?;
        let key = SpareKey { bucket: spare };
        let hash = hash_one(key.key());
        // SAFETY: the table of the map borrowed mutably.
        match unsafe { table.find_or_slot(hash, |k| k == key.key()) } {
            Lookup::Found(i) => Ok(Prepared::Occupied(table, i)),
            Lookup::Vacant(index) => Ok(Prepared::Vacant(Vacancy {
                table,
                index,
                tag: tag(hash),
                key,
            })),
            Lookup::Full => Err(AllocError::capacity_overflow()),
        }
    }

    /// Inserts a value built from `value` under a key built from `key`. If the key was
    /// there, `old` sees its old value in place first, `dispose` gets the old value once
    /// nothing owns it (to drop it or read it out) with `old`'s result, and what `dispose`
    /// returns is returned. On error nothing changed.
    pub(super) fn insert<KS, VS, R, D>(
        &mut self,
        key: KS,
        value: VS,
        old: impl FnOnce(&mut V) -> R,
        dispose: impl FnOnce(*mut V, R) -> D,
    ) -> Result<Option<D>, AllocError>
    where
        K: Emplace<KS>,
        V: Emplace<VS>,
    {
        match self.prepare(key)? {
            Prepared::Vacant(vacancy) => {
                // SAFETY: found in this map, borrowed mutably since.
                unsafe { vacancy.fill(self.0, value) }?;
                Ok(None)
            }
            Prepared::Occupied(table, i) => {
                // SAFETY: bucket `i` is full, in the map borrowed mutably; the spare
                // bucket's value place holds nothing.
                unsafe { table.replace(i, value, old, dispose) }.map(Some)
            }
        }
    }

    /// Takes full bucket `i` out of `table` and hands it to `take`.
    ///
    /// # Safety
    /// `table` is this map's, and bucket `i` full.
    pub(super) unsafe fn take<R>(
        &mut self,
        table: Table<K, V>,
        i: usize,
        take: impl FnOnce(*mut Bucket<K, V>) -> R,
    ) -> R {
        // SAFETY: forwarded contract.
        unsafe { table.erase(&mut self.0.items, i) };
        take(table.bucket(i))
    }

    /// Keeps the elements `keep` says yes to, dropping the others in place.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&K, ShmMut<'_, V>) -> bool) {
        let Some(table) = self.0.table() else {
            return;
        };
        // SAFETY: the buckets erased are only those the iterator just returned.
        for i in unsafe { table.full() } {
            let bucket = table.bucket(i);
            // SAFETY: a full bucket's element in place, borrowed for the call.
            if !keep(unsafe { &(*bucket).key }, unsafe {
                ShmMut::new(&mut (*bucket).value)
            }) {
                // SAFETY: full; dropped once nothing owns it.
                unsafe { self.take(table, i, |b| b.drop_in_place()) };
                point("hash_map: a disowned element dropped");
            }
        }
    }

    /// Drops every element; the table (and so the capacity) stays.
    pub(super) fn clear(&mut self) {
        let Some(table) = self.0.table() else {
            return;
        };
        // SAFETY: the buckets changed are only those the iterator just returned.
        for i in unsafe { table.full() } {
            // SAFETY: a full bucket: disowned, then dropped. `DELETED`, not `EMPTY`: after
            // a crash here, probes must still pass it to reach the elements left.
            unsafe {
                table.set_special(i, DELETED);
                table.bucket(i).drop_in_place();
            }
            point("hash_map: a disowned element dropped");
        }
        // SAFETY: no bucket is full now, so every control byte may say `EMPTY` (also those
        // that said `DELETED`).
        unsafe { table.ctrl().write_bytes(EMPTY, table.buckets() + WIDTH) };
        compiler_fence(Ordering::SeqCst);
        point("hash_map: every control byte EMPTY");
        store_count(&mut self.0.items, 0);
        // SAFETY: the map is borrowed mutably.
        unsafe { table.set_growth_left(table.capacity()) };
    }
}

/// Moves every element of `old` into `new` (empty, with room for them all), each with its
/// relocation hook, placed by its key's hash; the old table keeps its bytes (and owns the
/// elements) until the new one is published.
///
/// The keys' `Hash` is user code and may panic, and a hook that ran leaves the blocks the
/// element owns naming its new place (their owner tags): so every key is hashed and
/// placed first, each bucket noting where its element comes from, and only then does
/// anything move, with no user code in between. A panic before leaves the old table as it
/// was. (A bucket too small for the note is too small for an offset pointer, whose hook
/// would be the only one to undo: it moves in one pass.)
///
/// # Safety
/// `old` is the live table of a map borrowed mutably; `new` is unpublished, its control
/// bytes all `EMPTY`, with room for every full bucket of `old`.
unsafe fn fill<K: ShmSafe + Hash, V: ShmSafe>(
    new: &Table<K, V>,
    old: &Table<K, V>,
) -> Result<(), AllocError> {
    let place = |i: usize| {
        // SAFETY: a full bucket of the old table (caller).
        let hash = hash_one(unsafe { &(*old.bucket(i)).key });
        // SAFETY: the new table is the caller's alone.
        let Some(to) = (unsafe { new.insert_slot(hash) }) else {
            // Cannot happen: the new table has room for every full bucket, and the probe
            // sees every bucket. Give up cleanly rather than trust it.
            return Err(AllocError::capacity_overflow());
        };
        // SAFETY: `to` is a bucket of the unpublished table (its primary byte and copies).
        unsafe {
            new.ctrl().add(to).write(tag(hash));
            new.for_each_copy(to, |at| new.ctrl().add(at).write(tag(hash)));
        }
        Ok(to)
    };
    let relocate = |from: *mut Bucket<K, V>, to: *mut Bucket<K, V>| {
        // SAFETY: a full bucket's element moves into an unpublished bucket.
        unsafe {
            relocate_value(&raw mut (*to).key, &raw const (*from).key);
            relocate_value(&raw mut (*to).value, &raw const (*from).value);
        }
        point("hash_map: an element copied to an unpublished table");
    };
    // SAFETY: the old table is live and unchanged meanwhile (caller).
    let full = unsafe { old.full() };
    if size_of::<Bucket<K, V>>() < size_of::<usize>() {
        for i in full {
            let to = place(i)?;
            relocate(old.bucket(i), new.bucket(to));
        }
        return Ok(());
    }
    for i in full {
        let to = place(i)?;
        // SAFETY: the unpublished bucket holds nothing yet and has room for the note.
        unsafe { new.bucket(to).cast::<usize>().write_unaligned(i) };
    }
    // SAFETY: the new table's full buckets are those placed just above.
    for to in unsafe { new.full() } {
        // SAFETY: the note written above.
        let i = unsafe { new.bucket(to).cast::<usize>().read_unaligned() };
        relocate(old.bucket(i), new.bucket(to));
    }
    Ok(())
}

impl<K: ShmSafe, V: ShmSafe> Table<K, V> {
    /// Builds a value from `src` in the spare bucket and puts it in place of bucket
    /// `i`'s value: `old` sees the old value while the bucket is still full (if it
    /// panics, the new value is dropped again); then the bucket is `DELETED` (a crash
    /// leaks the element rather than leave a half-written value in a full bucket),
    /// `dispose` gets the old value (with `old`'s result, and returns what this returns),
    /// the new one moves in, and the bucket is full again with its tag. On error nothing
    /// changed.
    ///
    /// # Safety
    /// Bucket `i` is full, the map is borrowed mutably, and the spare bucket's value place
    /// holds nothing. `dispose` leaves nothing owned at its pointer: it drops the value
    /// or reads it out (never `old`, which sees it while its bucket still owns it: a
    /// crash then must leave one owner).
    pub(super) unsafe fn replace<S, R, D>(
        &self,
        i: usize,
        src: S,
        old: impl FnOnce(&mut V) -> R,
        dispose: impl FnOnce(*mut V, R) -> D,
    ) -> Result<D, AllocError>
    where
        V: Emplace<S>,
    {
        let bucket = self.bucket(i);
        let spare = self.spare();
        // SAFETY: the spare bucket lies in the table's block, in the map's mapping, and
        // its value place holds nothing (caller); bucket `i` is full and ours (caller):
        // its element is disowned while the value changes, and full again afterwards.
        unsafe {
            let new = &raw mut (*spare).value;
            let built = V::emplace(Slot::new(NonNull::new_unchecked(new)), src)?;
            let r = old(&mut (*bucket).value);
            built.keep();
            let tag = self.ctrl_at(i);
            self.set_special(i, DELETED);
            let d = dispose(&raw mut (*bucket).value, r);
            point("hash_map: a replaced value disposed of");
            relocate_value(&raw mut (*bucket).value, new);
            point("hash_map: a new value moved into a deleted bucket");
            self.set_full(i, tag);
            Ok(d)
        }
    }
}

/// [`ShmSafe::validate`] for a map: a table its methods can rely on (the invariants of
/// [`Table`]), and valid elements in its full buckets.
///
/// # Safety
/// As for [`ShmSafe::validate`].
pub(super) unsafe fn validate<K: ShmSafe, V: ShmSafe>(
    value: *const HashMap<K, V>,
) -> Result<(), Invalid> {
    // SAFETY: the caller's contract: aligned, readable, initialised, not written meanwhile.
    let map = unsafe { &*value };
    let items = |expected| Invalid::new(expected).within("items", offset_of!(HashMap<K, V>, items));
    let table = |e: Invalid| e.within("table", offset_of!(HashMap<K, V>, table));
    let Some(header) = map.table_ptr() else {
        return match map.items {
            0 => Ok(()),
            _ => Err(items("no elements in a map without a table")),
        };
    };
    let (start, own) = (header.as_ptr().addr(), value.addr());
    let apart = |len: usize| own + size_of::<HashMap<K, V>>() <= start || start + len <= own;
    let misplaced = || {
        table(Invalid::new(
            "a table block that lies, aligned, inside the map's segment, apart from the map",
        ))
    };
    map.table.validate_target(1).map_err(table)?;
    if !apart(size_of::<TableHeader>()) {
        return Err(misplaced());
    }
    // SAFETY: an aligned header inside the mapping, apart from the map's own bytes
    // (checked just above).
    let (mask, growth_left) = unsafe {
        let h = header.as_ref();
        (h.bucket_mask, h.growth_left)
    };
    let layout = usize::try_from(mask)
        .ok()
        .and_then(|m| m.checked_add(1))
        .filter(|n| n.is_power_of_two() && *n >= MIN_BUCKETS)
        .and_then(table_layout::<K, V>);
    let Some(layout) = layout else {
        return Err(table(
            Invalid::new("a power-of-two bucket count of at least 4")
                .within("bucket_mask", offset_of!(TableHeader, bucket_mask)),
        ));
    };
    let t = Table::<K, V> {
        header,
        mask: mask as usize,
        _elements: PhantomData,
    };
    // The whole block inside the mapping, and (in a writable one) the map's own.
    check_owned(header.as_ptr().cast(), map.owner(), layout.size()).map_err(table)?;
    if start % layout.align() != 0 || !apart(layout.size()) {
        return Err(misplaced());
    }
    // SAFETY: the whole block lies in the mapping (checked just above); its bytes are
    // initialised like all of a segment's.
    let ctrl = unsafe { core::slice::from_raw_parts(t.ctrl(), t.buckets() + WIDTH) };
    let ctrl_err =
        |at: usize, expected| table(Invalid::new(expected).within(&format!("ctrl[{at}]"), 0));
    let mut empty = 0u64;
    for (i, &c) in ctrl[..t.buckets()].iter().enumerate() {
        match c {
            EMPTY => empty += 1,
            c if c == DELETED || !is_special(c) => {}
            _ => {
                return Err(ctrl_err(
                    i,
                    "a control byte that is EMPTY, DELETED or a tag",
                ))
            }
        }
    }
    for (k, &c) in ctrl[t.buckets()..].iter().enumerate() {
        let primary = ctrl[k & t.mask];
        if !is_special(c) && c != primary {
            return Err(ctrl_err(
                t.buckets() + k,
                "a repeated control byte that is full only as its bucket's own byte",
            ));
        }
    }
    if map.items > t.capacity() as u64 {
        return Err(items("at most as many elements as the table's capacity"));
    }
    if growth_left >= empty {
        return Err(table(
            Invalid::new("room for fewer elements than the EMPTY buckets")
                .within("growth_left", offset_of!(TableHeader, growth_left)),
        ));
    }
    if K::ALL_BIT_PATTERNS_VALID && V::ALL_BIT_PATTERNS_VALID {
        return Ok(());
    }
    block::contents(map, || {
        // SAFETY: the control bytes were just read, and nothing writes them.
        for i in unsafe { t.full() } {
            let bucket = t.bucket(i);
            // SAFETY: bucket `i < buckets` lies, aligned, in the checked block.
            unsafe {
                K::validate(&raw const (*bucket).key)
                    .map_err(|e| table(e.within(&format!("bucket[{i}].key"), 0)))?;
                V::validate(&raw const (*bucket).value)
                    .map_err(|e| table(e.within(&format!("bucket[{i}].value"), 0)))?;
            }
        }
        Ok(())
    })
}
