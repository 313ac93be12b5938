//! The segment as the object layer sees it: bounds-checked access to offsets read from the
//! segment, the header words the indexes keep, and allocation in offsets.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::atomic::{fence, AtomicU64};

use crate::alloc::block::{ENTRY, HEADER, INTERNAL};
use crate::error::{Error, Result};
use crate::manager::header::{self, words, HEADER_END};
use crate::manager::SegmentCore;

/// The used blocks of a segment at one moment, in address order: (payload offset, usable
/// bytes, marks: `ENTRY`, `INTERNAL`), from one walk of the chain of block headers.
pub struct Blocks(Vec<(u64, usize, u64)>);

impl Blocks {
    /// Usable bytes of the used block whose payload starts at `off`, if it is one and
    /// carries exactly `marks`.
    fn len(&self, off: u64, marks: u64) -> Option<usize> {
        let i = self.0.partition_point(|&(payload, ..)| payload < off);
        self.0
            .get(i)
            .filter(|&&(payload, _, m)| payload == off && m == marks)
            .map(|&(_, len, _)| len)
    }

    /// Usable bytes of the block at `off` if it holds an object entry (its header says so):
    /// only then may its first bytes be read as an entry header.
    pub fn entry_len(&self, off: u64) -> Option<usize> {
        self.len(off, ENTRY)
    }

    /// Usable bytes of the block at `off` if it is one of the object layer's own tables,
    /// records or retired blocks (marked internal).
    pub fn len_of(&self, off: u64) -> Option<usize> {
        self.len(off, INTERNAL)
    }

    /// Bytes, block headers included, of the blocks marked internal but the one at
    /// `except`.
    pub fn internal_bytes(&self, except: u64) -> u64 {
        self.0
            .iter()
            .filter(|&&(payload, _, marks)| marks == INTERNAL && payload != except)
            .map(|&(_, len, _)| (len + HEADER) as u64)
            .fold(0, u64::saturating_add)
    }
}

/// Aligned words of a segment's block area, bounds-checked when the view was made. Read
/// with an acquire load each when `SHARED` (a reader without the index lock, which races
/// the lock holder's atomic stores; on mappings others write meanwhile: writable ones, and
/// observers), else plainly (under the index lock, or in a read-only mapping, which
/// excludes writers and whose memory is not accessed through `&AtomicU64`). Words that
/// readers without the lock load (hash slots and root, a table's header, an entry header)
/// are only ever stored atomically once such a reader can reach them (see
/// [`Space::shared`]).
pub struct Words<'a, const SHARED: bool> {
    first: *mut u64,
    len: u64,
    _space: PhantomData<&'a Space>,
}

impl<const SHARED: bool> Words<'_, SHARED> {
    /// Word `i`, if it is one of the view's.
    #[inline]
    pub fn get(&self, i: u64) -> Option<u64> {
        if i >= self.len {
            return None;
        }
        // SAFETY: one of the `len` aligned words in bounds that the view was made of
        // (checked then; the mapping outlives the borrowed `Space`).
        let p = unsafe { self.first.add(i as usize) };
        Some(if SHARED {
            // SAFETY: as above, in a mapping others write (see the type's doc).
            acquire(unsafe { AtomicU64::from_ptr(p) })
        } else {
            // SAFETY: as above; nobody stores to it meanwhile (see the type's doc).
            unsafe { p.read() }
        })
    }
}

/// An acquire load as a relaxed load and a fence: the same ordering, and the kind of load
/// that is defined on read-only memory (an observer's pages; an acquire load is not).
#[inline(always)]
fn acquire(word: &AtomicU64) -> u64 {
    let value = word.load(Relaxed);
    fence(Acquire);
    value
}

/// A view of one mapped segment for the object layer. Offsets, not addresses, are what
/// the segment stores; every offset is checked against the segment size before use.
#[derive(Clone, Copy)]
pub struct Space {
    core: SegmentCore,
    /// The segment size when the view was made. A segment shrinks only while no one uses
    /// it (offline, or through `&mut` for heap segments), never during an operation; it
    /// may grow meanwhile (see `Limits`), and an offset past this size is then checked
    /// again against the size now (`within`).
    size: u64,
}

impl Space {
    #[inline]
    pub fn new(core: SegmentCore) -> Self {
        Space {
            size: core.size() as u64,
            core,
        }
    }

    /// The segment size when the view was made.
    #[inline]
    pub fn size(&self) -> u64 {
        self.size
    }

    #[inline]
    pub fn core(&self) -> &SegmentCore {
        &self.core
    }

    /// One of the header's reserved words (see [`words`]).
    #[inline]
    pub fn word(&self, i: usize) -> &AtomicU64 {
        let h = header::header(self.core.base().as_ptr());
        // SAFETY: the header is mapped while the core is; `i` is one of the `words`
        // constants, all below the reserved array's length. Shared references to atomics
        // are fine while other processes change them.
        unsafe { &(*h).reserved[i] }
    }

    /// Reads a reserved word without a reference: read-only mappings may not hand out `&`
    /// to memory lent to them shared (see [`header::read_word`]).
    #[inline]
    pub fn read_word(&self, i: usize) -> u64 {
        let h = header::header(self.core.base().as_ptr());
        // SAFETY: as in `word`; an aligned header word.
        unsafe { header::read_word((&raw const (*h).reserved[i]).cast::<u64>()) }
    }

    /// Reads a reserved word: with an acquire load when `SHARED` (a reader without the
    /// index lock, which races the lock holder's stores; writable mappings only), else as
    /// [`read_word`](Self::read_word) does (under the index lock, or in a read-only mapping).
    #[inline]
    pub fn load_word<const SHARED: bool>(&self, i: usize) -> u64 {
        if SHARED {
            acquire(self.word(i))
        } else {
            self.read_word(i)
        }
    }

    /// The aligned word at `off` in the block area, if it lies there, read as [`Words`]
    /// reads.
    #[inline]
    pub fn load<const SHARED: bool>(&self, off: u64) -> Option<u64> {
        self.words::<SHARED>(off, 1)?.get(0)
    }

    /// The `len` aligned words from `off`, if they lie in the block area: checked once,
    /// then read one by one (a hash table's slots, an entry's header).
    #[inline]
    pub fn words<const SHARED: bool>(&self, off: u64, len: u64) -> Option<Words<'_, SHARED>> {
        debug_assert!(!SHARED || self.core.shared_reads());
        if off % 8 != 0 {
            return None;
        }
        let first = self
            .checked(off, usize::try_from(len.checked_mul(8)?).ok()?)?
            .cast::<u64>();
        Some(Words {
            first,
            len,
            _space: PhantomData,
        })
    }

    /// The aligned word at `off` as an atomic, for the index lock holder to store what a
    /// reader without the lock may be loading at the same time (see [`load`](Self::load)).
    #[inline]
    pub fn shared(&self, off: u64) -> Result<&AtomicU64> {
        debug_assert!(self.core.writable());
        let p = self.at::<u64>(off)?;
        // SAFETY: aligned and in bounds (checked), in a writable mapping (only writers
        // store), which stays mapped as long as the core, hence `self`.
        Ok(unsafe { AtomicU64::from_ptr(p) })
    }

    /// The `size`-byte (1, 2, 4 or 8) aligned unsigned value at `off`, if it lies in the
    /// block area, read with one atomic load in a writable mapping (others may be storing
    /// it: only atomics are read so) and with one volatile load in a read-only one (which
    /// no writer maps meanwhile, and whose pages an atomic's `&` may not claim). For the
    /// inspector's rendering of plain values; never forms a reference to anything else.
    pub fn read_scalar(&self, off: u64, size: usize) -> Option<u64> {
        if !matches!(size, 1 | 2 | 4 | 8) || off % size as u64 != 0 {
            return None;
        }
        let p = self.checked(off, size)?;
        let shared = self.core.writable();
        macro_rules! load {
            ($int:ty, $atomic:ty) => {
                if shared {
                    // SAFETY: in bounds and aligned (checked), in a writable mapping that
                    // stays mapped while `self` lives; an atomic load races with nothing.
                    let a = unsafe { <$atomic>::from_ptr(p.cast::<$int>()) };
                    a.load(Acquire) as u64
                } else {
                    // SAFETY: in bounds and aligned (checked); a read-only mapping has no
                    // writer while it lives. Any bytes are a value of the integer type.
                    let v = unsafe { p.cast::<$int>().read_volatile() };
                    v as u64
                }
            };
        }
        Some(match size {
            1 => load!(u8, std::sync::atomic::AtomicU8),
            2 => load!(u16, std::sync::atomic::AtomicU16),
            4 => load!(u32, std::sync::atomic::AtomicU32),
            _ => load!(u64, AtomicU64),
        })
    }

    /// The address of `len` bytes at `off`, if they lie in the block area.
    #[inline]
    pub fn checked(&self, off: u64, len: usize) -> Option<*mut u8> {
        let end = off.checked_add(len as u64)?;
        (off >= HEADER_END as u64 && self.within(end)).then(|| {
            // SAFETY: `off` is inside the mapping (checked just above).
            unsafe { self.core.base().as_ptr().add(off as usize) }
        })
    }

    /// Asks the CPU to start loading the cache line at `off` (nothing if it is not mapped):
    /// so that an entry spanning two lines costs one memory round trip, not two.
    #[inline(always)]
    pub fn prefetch(&self, off: u64) {
        #[cfg(target_arch = "x86_64")]
        {
            let at = self.core.base().as_ptr().wrapping_add(off as usize);
            // SAFETY: a prefetch is a hint that never faults, whatever the address.
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                    at.cast::<i8>(),
                )
            };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = off;
    }

    /// Whether the first `end` bytes lie in the segment: in it when the view was made, or
    /// since it grew.
    #[inline]
    fn within(&self, end: u64) -> bool {
        end <= self.size || self.grown_to(end)
    }

    #[cold]
    fn grown_to(&self, end: u64) -> bool {
        end <= self.core.size() as u64
    }

    /// The address of `len` bytes at `off`; an error naming the offset if they do not lie
    /// in the block area.
    #[inline]
    pub fn bytes(&self, off: u64, len: usize) -> Result<*mut u8> {
        self.checked(off, len)
            .ok_or_else(|| self.out_of_bounds(off, len))
    }

    #[cold]
    fn out_of_bounds(&self, off: u64, len: usize) -> Error {
        self.corrupt(format!(
            "offset {off} (+{len} bytes) lies outside the {}-byte segment",
            self.core.size()
        ))
    }

    /// A copy of the plain-data `T` at `off`, if it is in bounds and aligned (for the lookup
    /// fast path, which leaves every doubt to the checked path).
    #[inline]
    pub fn read<T: Copy>(&self, off: u64) -> Option<T> {
        if off % align_of::<T>() as u64 != 0 {
            return None;
        }
        let p = self.checked(off, size_of::<T>())?;
        // SAFETY: in bounds and aligned (checked); callers read plain-data types, for which
        // any bytes are a value.
        Some(unsafe { p.cast::<T>().read() })
    }

    /// A `T` at `off`, bounds- and alignment-checked.
    #[inline]
    pub fn at<T>(&self, off: u64) -> Result<*mut T> {
        if off % align_of::<T>() as u64 != 0 {
            return Err(self.corrupt(format!("offset {off} is misaligned")));
        }
        Ok(self.bytes(off, size_of::<T>())?.cast())
    }

    /// Adds `delta` to a reserved word, under the index lock (its only writer): a plain
    /// load and store, no locked instruction.
    #[inline]
    pub fn bump(&self, i: usize, delta: i64) {
        let w = self.word(i);
        w.store(w.load(Relaxed).wrapping_add_signed(delta), Relaxed);
    }

    /// The offset of an address in this mapping.
    #[inline]
    pub fn offset_of(&self, p: *const u8) -> Option<u64> {
        let off = p.addr().checked_sub(self.core.base().as_ptr().addr())?;
        self.within(off as u64 + 1).then_some(off as u64)
    }

    /// Usable bytes of the block at `off` if it is a used block marked as an object entry
    /// (read from its header, without the lock): only then may its first bytes be read as
    /// an entry header.
    #[inline]
    pub fn entry_len(&self, off: u64) -> Option<usize> {
        self.core.entry_block_len(off)
    }

    /// Allocates `size` bytes aligned to `align` for one of the object layer's own tables
    /// or records, marked internal before anything is written to it; returns the offset.
    #[inline]
    pub fn alloc(&self, size: usize, align: usize) -> Result<u64> {
        self.alloc_marked(size, align, INTERNAL)
    }

    /// Allocates the block of an object entry of `size` bytes aligned to `align` and marks
    /// it as one (see `SegmentCore::mark`) before anything is written to it.
    #[inline]
    pub fn alloc_entry(&self, size: usize, align: usize) -> Result<u64> {
        self.alloc_marked(size, align, ENTRY)
    }

    #[inline]
    fn alloc_marked(&self, size: usize, align: usize, mark: u64) -> Result<u64> {
        let p = if align <= crate::alloc::MIN_ALIGN {
            self.core.allocate(size)?
        } else {
            self.core.allocate_aligned(size, align)?
        };
        let off = (p.as_ptr().addr() - self.core.base().as_ptr().addr()) as u64;
        // SAFETY: a fresh block of this writable mapping (allocation needs one), ours.
        unsafe { self.core.mark(off, mark, true) };
        Ok(off)
    }

    /// Clears the entry mark of the block at `off` and frees it.
    ///
    /// # Safety
    /// `off` came from [`alloc_entry`](Self::alloc_entry), is unlinked and unregistered,
    /// and nothing uses it afterwards.
    #[inline]
    pub unsafe fn free_entry(&self, off: u64) -> Result<()> {
        // SAFETY: forwarded contract: a live block we own, of a writable mapping (it was
        // allocated through this one's core).
        unsafe {
            self.core.mark(off, ENTRY, false);
            self.free(off)
        }
    }

    /// Frees the allocation at `off`.
    ///
    /// # Safety
    /// `off` came from [`alloc`](Self::alloc) and nothing uses it afterwards.
    #[inline]
    pub unsafe fn free(&self, off: u64) -> Result<()> {
        let p = self.bytes(off, 0)?;
        // SAFETY: forwarded contract; `p` is non-null (inside the mapping).
        unsafe { self.core.deallocate(NonNull::new_unchecked(p)) }
    }

    /// The used blocks of the segment, to check offsets read from the object layer's own
    /// words before following them (recovery): a forged offset into the middle of a block
    /// is not one, and its neighbourhood is never read as a block header.
    pub fn blocks(&self) -> Blocks {
        Blocks(self.core.used_blocks())
    }

    pub fn corrupt(&self, reason: String) -> Error {
        Error::Corrupted {
            what: format!("object index of the segment at {:p}", self.core.base()),
            reason,
        }
    }

    /// The payload offset of the thread-cache table (0 when the segment has none).
    pub fn cache_table(&self) -> u64 {
        let h = header::header(self.core.base().as_ptr());
        // SAFETY: the header is mapped while the core is; an aligned header word.
        unsafe { header::read_word((&raw const (*h).cache_table).cast::<u64>()) }
    }

    /// The index kind recorded at creation.
    pub fn index_kind(&self) -> u64 {
        self.read_word(words::INDEX_KIND)
    }
}
