//! The header at offset 0 of every segment: identification, the creation state word, the
//! segment lock and the allocator state. Its layout is the on-disk format of a segment file.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::alloc::algorithm::Ops;
use crate::alloc::block::{block_size_for, mark_unlocked, HeapState, GRANULE, HEADER, INTERNAL};
use crate::alloc::cache::{self, SlotTable};
use crate::alloc::heap::Heap;
use crate::alloc::{MemoryAlgorithm, SeqFit, Tlsf};
use crate::error::{Error, Result};
use crate::robust::RobustMutex;

/// First bytes of every segment.
pub const MAGIC: [u8; 8] = *b"SHMKIT\0\x01";
/// Bumped whenever the layout below, or what its words mean, changes incompatibly (2: the
/// allocator's level table follows the header and is sized by the segment; 3: lock words
/// and the creator word name lock owner ids, not pids, and every object entry's block is
/// marked as one in its block header, which version 2 never did: its entries would all be
/// refused; 4: the blocks of the segment's own structures are marked internal in their
/// headers, and a block a container owns names its owner in its first word; 5: a thread
/// cache slot has bins by size class up to 4 KiB, so the slot table is larger; 6: the
/// header records the size the segment may grow to while mapped, `words::MAX_SIZE`, which
/// every mapping reserves: a version-5 reader would trust a grown size it never mapped).
pub const FORMAT_VERSION: u32 = 6;
/// Written natively; reads back byte-swapped on a machine of the other endianness.
pub(crate) const ENDIAN_MARK: u32 = 0x0102_0304;

/// Creation states of [`SegmentHeader::state`].
pub mod state {
    /// All-zero: nothing written yet.
    pub const UNINITIALISED: u32 = 0;
    /// A creator is writing the header.
    pub const INITIALISING: u32 = 1;
    /// Usable.
    pub const READY: u32 = 2;
    /// Recovery after a crash found damage it could not repair.
    pub const CORRUPTED: u32 = 3;
}

/// Slots reserved for the object indexes and roots of later format additions.
const RESERVED_WORDS: usize = 16;

/// What the object layer keeps in [`SegmentHeader::reserved`]: one word each, so the
/// header layout (and [`FORMAT_VERSION`]) stays what it was.
pub mod words {
    /// The index lock: a robust mutex in the low half, the holding thread in the high half.
    pub const INDEX_LOCK: usize = 0;
    /// The index kind chosen at creation (`IndexKind::KIND`).
    pub const INDEX_KIND: usize = 1;
    /// Root of the named-object index.
    pub const NAMED_ROOT: usize = 2;
    /// Number of named objects.
    pub const NAMED_COUNT: usize = 3;
    /// Root of the unique-object index.
    pub const UNIQUE_ROOT: usize = 4;
    /// Number of unique objects.
    pub const UNIQUE_COUNT: usize = 5;
    /// Head of the list of type records.
    pub const TYPES: usize = 6;
    /// The registry of every object entry (an offset set; see `objects::registry`).
    pub const ENTRIES: usize = 7;
    /// Number of entries in the registry.
    pub const ENTRIES_COUNT: usize = 8;
    /// Head of the list of retired blocks: index tables and entries unlinked while readers
    /// without the index lock may still be reading them (see `objects::retired`). Zero in
    /// every segment written before it existed, which is the empty list.
    pub const RETIRED: usize = 9;
    /// A random number drawn whenever bytes of unknown origin become this segment (it is
    /// created, opened cold, copied from an image): what container handles record to tell
    /// those they were written with since (trusted) from older ones (see
    /// `segment::owned::trust_epoch`).
    pub const TRUST_EPOCH: usize = 10;
    /// Bumped by every holder of the segment lock as it lets go: the chain of blocks (where
    /// blocks start) changes only under that lock, so a walk of it made under the lock
    /// stays true while this word is unchanged (see `segment::owned`).
    pub const CHAIN_GENERATION: usize = 11;
    /// Root of the table of stored type schemas (`objects::ops::SCHEMAS`), an index like
    /// the named one that no public lookup reaches. Zero, the empty table, in every
    /// segment written before it existed: those read as they did, and
    /// [`FORMAT_VERSION`](super::FORMAT_VERSION) stays.
    pub const SCHEMA_ROOT: usize = 12;
    /// Number of stored type schemas.
    pub const SCHEMA_COUNT: usize = 13;
    /// The memory algorithm chosen at creation (`MemoryAlgorithm::KIND`); TLSF's kind is
    /// zero, what the word held before algorithms could be chosen.
    pub const ALGORITHM_KIND: usize = 14;
    /// The size the segment may grow to while processes have it mapped: every mapping
    /// reserves this much address space, so growing needs no remapping. At least the
    /// size; equal to it for a segment that cannot grow while mapped.
    pub const MAX_SIZE: usize = 15;
}

/// The largest `MAX_SIZE` a header may record: 4 TiB, 1/32 of x86-64's 128 TiB of user
/// address space, so that a process can map many such segments and a forged word cannot
/// make an opener reserve most of it.
pub const MAX_RESERVATION: u64 = if usize::BITS >= 64 { 1 << 42 } else { 1 << 30 };

/// The header's layout: the first bytes of every segment.
#[repr(C)]
pub struct SegmentHeader {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`FORMAT_VERSION`] of the writer.
    pub version: u32,
    /// A mark written natively, to detect a segment from a machine of the other endianness.
    pub endian: u32,
    /// `usize::BITS` of the creator: 32- and 64-bit processes cannot share a segment.
    pub pointer_width: u32,
    /// uninitialised → initialising → ready (or corrupted); see [`state`].
    pub state: AtomicU32,
    /// Who is (or was) initialising (a lock owner id, see `sync::owner`), so an opener can
    /// tell a slow creator from a dead one.
    pub creator: AtomicU32,
    /// The segment lock: allocator and (later) index updates happen under it.
    pub lock: RobustMutex,
    /// Current size of the segment in bytes (changes with `grow` / `shrink_to_fit`).
    pub size: AtomicU64,
    /// Offset of the thread-cache slot table (0: this segment has no cache).
    pub cache_table: AtomicU64,
    /// Bumped when every thread must empty its cache before using it again.
    pub cache_epoch: AtomicU64,
    /// Words of the object layer (see `words`), and room for later format additions.
    pub reserved: [AtomicU64; RESERVED_WORDS],
    /// The block area's state, last: the memory algorithm's table follows the header
    /// (see `blocks_start`).
    pub heap: HeapState,
}

const _: () = assert!(
    std::mem::offset_of!(SegmentHeader, heap) + std::mem::size_of::<HeapState>()
        == std::mem::size_of::<SegmentHeader>()
);

/// Where the blocks of a segment whose algorithm keeps `table` bytes of table begin.
pub const fn blocks_start(table: usize) -> usize {
    (HEADER_END + table).next_multiple_of(GRANULE * 2)
}

/// Offset of the first byte past the header: the allocator table, then the blocks, lie
/// above it (the lowest offset the object layer may ever read an object at).
pub const HEADER_END: usize = std::mem::size_of::<SegmentHeader>();
/// The smallest segment: the header, a one-level table and room for a few small objects.
/// Boost's examples create segments of 1,000 bytes.
pub const MIN_SEGMENT_SIZE: usize = 768;
const _: () = assert!(
    MIN_SEGMENT_SIZE >= blocks_start(Tlsf::levels_bytes(1)) + 256
        && Tlsf::levels_for(MIN_SEGMENT_SIZE) == 1
);
/// The alignment a segment's first byte needs.
pub const SEGMENT_ALIGN: usize = 16;

/// Bytes kept free in front of the thread-cache table when a segment is made, for its
/// first objects.
const FIRST_OBJECTS_ROOM: usize = 64 << 10;

/// How long an opener waits for a live creator to finish initialising.
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads a header word that another process may be writing, without creating a reference:
/// read-only segments may live in memory Rust only lent us shared (`&[u8]`), where even an
/// atomic's `&` would claim write permission. Aligned word reads are single loads on every
/// supported target, and the acquire fence orders what is read after them.
///
/// # Safety
/// `word` points to a readable, aligned header field.
pub unsafe fn read_word<T: Copy>(word: *const T) -> T {
    // SAFETY: forwarded contract.
    let v = unsafe { word.read_volatile() };
    std::sync::atomic::fence(Ordering::Acquire);
    v
}

/// Pointer to the header of the segment starting at `base`.
#[inline]
pub fn header(base: *mut u8) -> *mut SegmentHeader {
    base.cast()
}

/// The heap view of the segment at `base`, mapped `limit` bytes long, whose algorithm is
/// `ops`.
///
/// # Safety
/// `base` starts a formatted segment of `ops`'s algorithm that stays mapped (at least
/// `limit` bytes) while the view is used; its writing methods are used only under the
/// segment lock of a writable mapping (or before the segment is shared).
#[inline]
pub unsafe fn heap(base: *mut u8, limit: u64, ops: &'static Ops) -> Heap {
    // SAFETY: the state lives inside the header at the start of the mapping, the
    // algorithm's table right after it (contract).
    unsafe { Heap::new(base, &raw mut (*header(base)).heap, limit, ops) }
}

/// The memory algorithm the segment at `base` was created with (its `KIND`).
///
/// # Safety
/// At least a header is mapped readable at `base`.
pub unsafe fn algorithm_kind(base: *const u8) -> u64 {
    // SAFETY: a header is readable (contract); the word is read without a reference.
    unsafe {
        read_word(
            (&raw const (*base.cast::<SegmentHeader>()).reserved[words::ALGORITHM_KIND]).cast(),
        )
    }
}

/// The size the segment at `base` may grow to while mapped ([`words::MAX_SIZE`]).
///
/// # Safety
/// At least a header is mapped readable at `base`.
pub unsafe fn max_size(base: *const u8) -> u64 {
    // SAFETY: a header is readable (contract); the word is read without a reference.
    unsafe {
        read_word((&raw const (*base.cast::<SegmentHeader>()).reserved[words::MAX_SIZE]).cast())
    }
}

/// The name of the algorithm of kind `kind`, as far as this build knows it.
pub fn algorithm_name(kind: u64) -> String {
    match kind {
        k if k == Tlsf::KIND => Tlsf::NAME.into(),
        k if k == SeqFit::KIND => SeqFit::NAME.into(),
        k => format!("memory algorithm of kind {k:#x}"),
    }
}

/// Formats the zeroed (or freshly created) memory `[base, base+len)` as an empty segment
/// whose object index is of kind `index_kind`. The state word goes to READY last, with
/// release ordering, so an opener that sees READY sees everything else.
///
/// `InvalidSize`, before anything is written, when the memory algorithm's table leaves no
/// room for the block area's sentinel: `table_bytes` is the algorithm's safe function (a
/// user's algorithm may ask for any size), asked once.
///
/// # Safety
/// The range is mapped writable, aligned to [`SEGMENT_ALIGN`], and no other process uses it
/// until READY is published (openers wait for READY).
pub unsafe fn format(
    base: *mut u8,
    len: usize,
    max_size: u64,
    index_kind: u32,
    ops: &'static Ops,
    creator: u32,
) -> Result<()> {
    let end = (len / GRANULE * GRANULE) as u64;
    let table_bytes = (ops.table_bytes)(len);
    let start = HEADER_END
        .checked_add(table_bytes)
        .and_then(|s| s.checked_next_multiple_of(GRANULE * 2))
        .map(|s| s as u64)
        .filter(|&s| s.checked_add(HEADER as u64).is_some_and(|e| e <= end));
    let Some(start) = start else {
        return Err(Error::InvalidSize {
            size: len as u64,
            reason: format!(
                "the {} memory algorithm's table of {table_bytes} bytes leaves no room for \
                 blocks",
                ops.name
            ),
        });
    };
    let h = header(base);
    // SAFETY: the range is ours and holds at least a header (caller checked the size).
    unsafe {
        (*h).creator.store(creator, Ordering::Relaxed);
        (*h).state.store(state::INITIALISING, Ordering::Relaxed);
        (*h).magic = MAGIC;
        (*h).version = FORMAT_VERSION;
        (*h).endian = ENDIAN_MARK;
        (*h).pointer_width = usize::BITS;
        (*h).size.store(len as u64, Ordering::Relaxed);
        for w in &(*h).reserved {
            w.store(0, Ordering::Relaxed);
        }
        (*h).reserved[words::INDEX_KIND].store(index_kind.into(), Ordering::Relaxed);
        (*h).reserved[words::ALGORITHM_KIND].store(ops.kind, Ordering::Relaxed);
        (*h).reserved[words::MAX_SIZE].store(max_size.max(len as u64), Ordering::Relaxed);
        (*h).lock = RobustMutex::new();
        let mut t = heap(base, len as u64, ops);
        // `start` is `blocks_start(table_bytes)`, checked above to leave room for the
        // sentinel before `end`.
        t.init(start, end);
        (*h).cache_epoch.store(0, Ordering::Relaxed);
        let table = if cache::wanted(len, max_size) {
            // Behind a room kept free for the first objects (the index tables, the first
            // entries): a process that opens the segment to look one up then touches
            // the pages next to the header, not pages past the 70 KiB table.
            let front = block_size_for(FIRST_OBJECTS_ROOM).and_then(|b| t.alloc_block(b));
            let table = block_size_for(SlotTable::SIZE)
                .and_then(|b| t.alloc_block(b))
                .map_or(0, |off| {
                    t.payload(off).as_ptr().write_bytes(0, SlotTable::SIZE);
                    mark_unlocked(base, off + HEADER as u64, INTERNAL, true);
                    off + HEADER as u64
                });
            if let Some(front) = front {
                t.free_block(front);
            }
            table
        } else {
            0
        };
        (*h).cache_table.store(table, Ordering::Relaxed);
        (*h).state.store(state::READY, Ordering::Release);
    }
    Ok(())
}

/// Whether the segment at `base` was left half-made: its header never reached READY (all
/// zero, or still INITIALISING) and nothing else (a foreign magic, a CORRUPTED mark) says
/// the bytes are someone's data. Only such a segment may be formatted anew over.
///
/// # Safety
/// At least a header is mapped readable at `base`.
pub unsafe fn half_made(base: *const u8) -> bool {
    let h = base.cast::<SegmentHeader>();
    // SAFETY: a header is readable (contract); state first, then magic, as in `validate`.
    let (st, magic) = unsafe {
        (
            read_word((&raw const (*h).state).cast::<u32>()),
            (&raw const (*h).magic).read_volatile(),
        )
    };
    (st == state::UNINITIALISED || st == state::INITIALISING) && (magic == MAGIC || magic == [0; 8])
}

/// Checks that `[base, base+len)` holds a usable segment, waiting (up to `timeout`) for a
/// creator that is still initialising it, as long as `at_work(creator's owner id)` says it is
/// (see [`Backing::creator_at_work`](crate::segment::Backing::creator_at_work)). `what`
/// names the device for errors (called only when there is an error to report).
///
/// # Safety
/// The range is mapped readable for the duration of the call.
pub unsafe fn validate(
    base: *const u8,
    len: usize,
    what: &dyn Fn() -> String,
    at_work: &dyn Fn(u32) -> Option<bool>,
    timeout: Duration,
) -> Result<()> {
    let not_segment = |reason: String| Error::NotASegment {
        what: what(),
        reason,
    };
    if len < MIN_SEGMENT_SIZE {
        // SAFETY: at least `len` bytes are readable; only the first 8 are read.
        let ours = len >= MAGIC.len() && unsafe { base.cast::<[u8; 8]>().read() } == MAGIC;
        return Err(if ours {
            Error::Truncated {
                what: what(),
                expected: MIN_SEGMENT_SIZE as u64,
                actual: len as u64,
            }
        } else {
            not_segment(format!(
                "{len} bytes is shorter than a segment header ({MIN_SEGMENT_SIZE})"
            ))
        });
    }
    let h = base.cast::<SegmentHeader>();
    // Read the clock only once there is something to wait for (opening is a hot path).
    let mut started = None;
    loop {
        // SAFETY: the range holds at least a header (checked above) and is readable. The
        // state is read first, with acquire ordering: READY then makes the creator's magic
        // visible. The magic is read volatile because a creator may be writing it.
        let st = unsafe { read_word((&raw const (*h).state).cast::<u32>()) };
        // SAFETY: as above.
        let magic = unsafe { (&raw const (*h).magic).read_volatile() };
        if st == state::READY && magic == MAGIC {
            break;
        }
        if magic != MAGIC && magic != [0; 8] {
            return Err(not_segment("wrong magic bytes".into()));
        }
        if st > state::CORRUPTED {
            return Err(not_segment(format!("unknown state word {st}")));
        }
        if st == state::CORRUPTED {
            return Err(Error::Corrupted {
                what: what(),
                reason: "a previous recovery marked the segment corrupted".into(),
            });
        }
        if st == state::READY {
            return Err(not_segment(
                "the state word says ready but the magic bytes are zero".into(),
            ));
        }
        // SAFETY: as above.
        let creator = unsafe { read_word((&raw const (*h).creator).cast::<u32>()) };
        let all_zero = st == state::UNINITIALISED && magic == [0; 8] && creator == 0;
        let waited = started.get_or_insert_with(Instant::now).elapsed();
        let at_work = at_work(creator);
        // Nobody will finish it: judge the bytes now. `None`: a creator may not have said
        // who it is yet; a tenth of the timeout is long enough for that.
        if at_work == Some(false) || (at_work.is_none() && waited > timeout / 10) {
            return Err(if all_zero {
                not_segment("header is all zero and no creator is making it".into())
            } else {
                Error::Corrupted {
                    what: what(),
                    reason: format!(
                        "its creator (lock owner {creator}) stopped before finishing \
                         initialisation (it died, or these bytes were copied half-way)"
                    ),
                }
            });
        }
        if waited > timeout {
            return Err(Error::Timeout {
                what: what(),
                reason: format!(
                    "its creator (lock owner {creator}) did not finish initialising within \
                     {timeout:?}"
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // SAFETY: READY was observed with acquire ordering: the creator's writes are visible.
    let (version, endian, width, size) = unsafe {
        (
            (*h).version,
            (*h).endian,
            (*h).pointer_width,
            read_word((&raw const (*h).size).cast::<u64>()),
        )
    };
    if endian != ENDIAN_MARK {
        return Err(not_segment(if endian == ENDIAN_MARK.swap_bytes() {
            "written on a machine of the other endianness".into()
        } else {
            format!("unknown endianness mark {endian:#x}")
        }));
    }
    if version != FORMAT_VERSION {
        return Err(Error::IncompatibleVersion {
            what: what(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if width != usize::BITS {
        return Err(not_segment(format!(
            "written by a {width}-bit process, this one is {}-bit",
            usize::BITS
        )));
    }
    if size > len as u64 {
        return Err(Error::Truncated {
            what: what(),
            expected: size,
            actual: len as u64,
        });
    }
    if size < MIN_SEGMENT_SIZE as u64 {
        return Err(Error::Corrupted {
            what: what(),
            reason: format!("recorded size {size} is below the minimum"),
        });
    }
    // SAFETY: as for the words above.
    let max = unsafe { max_size(base) };
    if max < size || max > MAX_RESERVATION {
        return Err(Error::Corrupted {
            what: what(),
            reason: format!(
                "it may grow to {max} bytes, which is below its size {size} or above the \
                 {MAX_RESERVATION} bytes a mapping reserves at most"
            ),
        });
    }
    Ok(())
}
