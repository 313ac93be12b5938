//! The container seam: [`SegmentAllocator`], a small std-like allocation interface to one
//! mapping of a segment, reached from a value's own address through the registry (so a
//! container needs no allocator field) or from the segment itself.
//!
//! The allocator carries the mapping's segment manager view, so it uses this thread's cache
//! in that mapping like [`ManagedSegment::allocate`] does. It borrows the mapping for `'a`:
//! every use of it touches the segment's header and blocks, which must stay mapped.

use std::alloc::Layout;
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;

use super::managed::{Backing, ManagedSegment};
use super::mode::Writable;
use crate::alloc::block::{block_size_for, HEADER};
use crate::alloc::MemoryAlgorithm;
use crate::alloc::{Command, MIN_ALIGN};
use crate::error::Error;
use crate::manager::SegmentCore;
use crate::objects::IndexKind;
use crate::registry;

/// Allocation in one writable mapping of a segment, as containers use it: std's allocator
/// methods with a `Copy` error, plus in-place growth and shrinking.
///
/// `Copy`, and `Send`/`Sync` because the segment manager it leads to is: every change goes
/// through the segment's process-shared lock or this thread's own cache slot, chosen per
/// calling thread, never per allocator. The lifetime keeps the mapping alive while it is used.
///
/// ```
/// use std::alloc::Layout;
/// use shmkit_runtime::{ManagedHeapMemory, SegmentAllocator};
///
/// let seg = ManagedHeapMemory::new(64 * 1024)?;
/// let counter: &u64 = seg.construct("counter", 0u64)?;
/// // From the value's own address: the allocator of the mapping it lives in.
/// let alloc = SegmentAllocator::of(counter)?;
/// let block = alloc.allocate(Layout::array::<u32>(10).unwrap())?;
/// assert!(seg.contains(block.cast::<u8>().as_ptr()) && block.len() >= 40);
/// // SAFETY: allocated just above with this layout, not used afterwards.
/// unsafe { alloc.deallocate(block.cast(), Layout::array::<u32>(10).unwrap())? };
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SegmentAllocator<'a> {
    core: SegmentCore,
    _mapping: PhantomData<&'a ()>,
}

impl<'a> SegmentAllocator<'a> {
    /// The allocator of the mapping that `value` lives in (the innermost one when segments
    /// are nested, e.g. an external buffer inside another segment's block).
    ///
    /// Errors: `ReadOnly` when that mapping is read-only, `NotInSegment` when no segment of
    /// this process holds `value`, or `value` is zero-sized (it then occupies no mapping,
    /// and its reference could not keep one alive).
    pub fn of<T: ?Sized>(value: &'a T) -> Result<Self, AllocError> {
        let addr = (value as *const T).cast::<u8>();
        let not_in_segment =
            AllocError::new(AllocErrorKind::NotInSegment { addr: addr.addr() }, None);
        if size_of_val(value) == 0 {
            return Err(not_in_segment);
        }
        // The mapping holds at least the first byte of `value`, which stays valid for `'a`:
        // so the mapping stays mapped for `'a` too.
        let core = registry::segment_at(addr).ok_or(not_in_segment)?;
        if !core.writable() {
            return Err(AllocError::new(
                AllocErrorKind::ReadOnly { addr: addr.addr() },
                None,
            ));
        }
        Ok(SegmentAllocator::new(core))
    }

    fn new(core: SegmentCore) -> Self {
        SegmentAllocator {
            core,
            _mapping: PhantomData,
        }
    }

    /// Allocates a block for `layout`; the slice is as long as the block's usable bytes
    /// known without reading it (at least `layout.size()`). Alignments above
    /// [`MIN_ALIGN`](crate::ManagedSegment::MIN_ALIGN) take the aligned path, under the
    /// lock; smaller requests may come from this thread's cache without it.
    #[inline]
    pub fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let got = if layout.align() <= MIN_ALIGN {
            self.core.allocate(layout.size())
        } else {
            self.core.allocate_aligned(layout.size(), layout.align())
        };
        let ptr = got.map_err(|e| self.error(e, Some(layout)))?;
        // The block is at least the block size the request maps to.
        let len = block_size_for(layout.size()).map_or(layout.size(), |b| b as usize - HEADER);
        Ok(NonNull::slice_from_raw_parts(ptr, len))
    }

    /// [`allocate`](Self::allocate), with the block's bytes zeroed.
    pub fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let block = self.allocate(layout)?;
        // SAFETY: a fresh block of `block.len()` writable bytes that only we know about.
        unsafe { block.cast::<u8>().write_bytes(0, block.len()) };
        Ok(block)
    }

    /// Frees a block. A pointer that is not a live allocation of this mapping is reported
    /// (`NotAnAllocation`) as far as the header in front of it can tell.
    ///
    /// # Safety
    /// `ptr` was returned by an allocator of this same mapping (this one, a copy, the
    /// segment's own `allocate`) and is not used afterwards; `layout` is the one it was
    /// allocated with (it only names the block in errors).
    #[inline]
    pub unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) -> Result<(), AllocError> {
        // SAFETY: forwarded contract.
        unsafe { self.core.deallocate(ptr) }.map_err(|e| self.error(e, Some(layout)))
    }

    /// Grows the block at `ptr` to at least `new_size` bytes without moving it, taking room
    /// from the free block after it (`allocation_command`'s expand-forward); its usable
    /// size. `NoRoomInPlace` when the next block is in use or too small: the block is then
    /// unchanged.
    ///
    /// # Safety
    /// `ptr` is a live allocation of this mapping, allocated with `old`, that the caller
    /// owns: nobody else may use it while it is resized.
    pub unsafe fn grow_in_place(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new_size: usize,
    ) -> Result<usize, AllocError> {
        if new_size < old.size() {
            return Err(self.invalid("grow_in_place to fewer bytes", old));
        }
        // SAFETY: forwarded contract.
        unsafe { self.resize(Command::EXPAND_FWD, new_size, new_size, ptr, old) }
    }

    /// Gives the tail of the block at `ptr` beyond `new_size` bytes back to the segment,
    /// keeping the block where it is; its usable size, at least `new_size` (a tail too
    /// small to stand as a block of its own stays).
    ///
    /// # Safety
    /// As for [`grow_in_place`](Self::grow_in_place).
    pub unsafe fn shrink_in_place(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new_size: usize,
    ) -> Result<usize, AllocError> {
        if new_size > old.size() {
            return Err(self.invalid("shrink_in_place to more bytes", old));
        }
        // SAFETY: forwarded contract.
        unsafe { self.resize(Command::SHRINK_IN_PLACE, usize::MAX, new_size, ptr, old) }
    }

    /// Resizes a block in place through `allocation_command`.
    ///
    /// # Safety
    /// As for [`grow_in_place`](Self::grow_in_place).
    unsafe fn resize(
        &self,
        cmd: Command,
        limit: usize,
        preferred: usize,
        ptr: NonNull<u8>,
        old: Layout,
    ) -> Result<usize, AllocError> {
        let request = Layout::from_size_align(preferred, old.align()).ok();
        // SAFETY: forwarded contract: a live block the caller owns.
        unsafe {
            self.core
                .allocation_command(cmd, limit, preferred, Some(ptr), 1)
        }
        .map(|a| a.received)
        .map_err(|e| self.error(e, request.or(Some(old))))
    }

    /// Grows the block at `ptr` to `new`: in place when its address suits `new.align()` and
    /// the next block has room, else into a new block (the first `old.size()` bytes
    /// copied, the old block freed). On error the old block is unchanged and still owned.
    /// The copy is of bytes: values holding self-relative pointers ([`OffsetPtr`]) must be
    /// moved with their relocation hook instead (grow in place, else allocate, relocate,
    /// deallocate).
    ///
    /// [`OffsetPtr`]: crate::OffsetPtr
    ///
    /// # Safety
    /// As for [`grow_in_place`](Self::grow_in_place); the first `old.size()` bytes of the
    /// block are initialised.
    pub unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if new.size() < old.size() {
            return Err(self.invalid("grow to fewer bytes", old));
        }
        if ptr.as_ptr().addr() % new.align() == 0 {
            // SAFETY: forwarded contract.
            match unsafe { self.grow_in_place(ptr, old, new.size()) } {
                Ok(len) => return Ok(NonNull::slice_from_raw_parts(ptr, len)),
                Err(e) if matches!(e.kind, AllocErrorKind::NoRoomInPlace { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let block = self.allocate(new)?;
        // SAFETY: the old block has `old.size()` initialised bytes (caller); the new one is
        // at least as large, fresh, so the two do not overlap.
        unsafe { block.cast::<u8>().copy_from_nonoverlapping(ptr, old.size()) };
        // SAFETY: forwarded contract; the data now lives in `block`.
        if let Err(e) = unsafe { self.deallocate(ptr, old) } {
            // SAFETY: allocated just above, never handed out.
            let _ = unsafe { self.deallocate(block.cast(), new) };
            return Err(e);
        }
        Ok(block)
    }

    /// Usable bytes of the live allocation at `ptr` (at least what was asked for); None if
    /// `ptr` is not one in this mapping.
    pub fn usable_size(&self, ptr: NonNull<u8>) -> Option<usize> {
        self.core.usable_size(ptr)
    }

    /// Whether `ptr` points into this mapping of the segment.
    pub fn contains(&self, ptr: *const u8) -> bool {
        self.core.handle_from_address(ptr).is_some()
    }

    fn invalid(&self, reason: &'static str, layout: Layout) -> AllocError {
        AllocError::new(AllocErrorKind::InvalidRequest { reason }, Some(layout))
    }

    /// The manager's error as a `Copy` one. The manager returns, for the calls made here,
    /// only the variants matched; its lock's failures are reentry and corruption.
    #[cold]
    fn error(&self, e: Error, request: Option<Layout>) -> AllocError {
        let base = self.core.base().as_ptr().addr();
        let kind = match e {
            Error::OutOfMemory { free, .. } => AllocErrorKind::OutOfMemory { free },
            Error::AllocationCommandFailed { possible, .. } => {
                AllocErrorKind::NoRoomInPlace { possible }
            }
            Error::NotAnAllocation { addr, .. } => AllocErrorKind::NotAnAllocation { addr, base },
            Error::InvalidCommand { reason } => AllocErrorKind::InvalidRequest { reason },
            Error::LockReentered { .. } => AllocErrorKind::LockReentered { base },
            _ => AllocErrorKind::Corrupted { base },
        };
        AllocError::new(kind, request)
    }
}

impl<B: Backing, M: Writable, I: IndexKind, A: MemoryAlgorithm> ManagedSegment<B, M, I, A> {
    /// The allocator of this mapping, as containers reach it through
    /// [`SegmentAllocator::of`] from their own address.
    pub fn allocator(&self) -> SegmentAllocator<'_> {
        SegmentAllocator::new(*self.core())
    }
}

/// Why a [`SegmentAllocator`] call failed: `Copy`, so that a container can return it
/// without allocating. [`Error`] has the same conditions with more words (`From`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocError {
    kind: AllocErrorKind,
    request: Option<Layout>,
}

/// The condition an [`AllocError`] reports. Addresses are plain numbers: the error keeps
/// no pointer alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AllocErrorKind {
    /// No free block is large enough.
    OutOfMemory {
        /// Bytes free in all, in blocks of any size.
        free: usize,
    },
    /// The block cannot be resized where it is; it is unchanged.
    NoRoomInPlace {
        /// Usable bytes the block could reach in place.
        possible: usize,
    },
    /// The address lies in a read-only mapping, which cannot allocate.
    ReadOnly {
        /// The address asked about.
        addr: usize,
    },
    /// The address lies in no segment mapped by this process.
    NotInSegment {
        /// The address asked about.
        addr: usize,
    },
    /// A pointer given back that is not a live allocation of the mapping.
    NotAnAllocation {
        /// The pointer's address.
        addr: usize,
        /// The mapping's base address.
        base: usize,
    },
    /// Sizes that contradict the call (growing to fewer bytes, shrinking to more).
    InvalidRequest {
        /// Which rule the call breaks.
        reason: &'static str,
    },
    /// This thread holds the segment lock (inside `with_lock`): waiting would deadlock.
    LockReentered {
        /// The mapping's base address.
        base: usize,
    },
    /// The segment is marked corrupted; the segment's `check()` says what is wrong.
    Corrupted {
        /// The mapping's base address.
        base: usize,
    },
}

impl AllocError {
    fn new(kind: AllocErrorKind, request: Option<Layout>) -> Self {
        AllocError { kind, request }
    }

    /// A container's capacity whose bytes would exceed `isize::MAX`, which no allocation
    /// can hold: `InvalidRequest`, before any allocator is asked.
    pub fn capacity_overflow() -> Self {
        AllocError::new(
            AllocErrorKind::InvalidRequest {
                reason: "capacity overflow (more than isize::MAX bytes)",
            },
            None,
        )
    }

    /// What went wrong.
    pub fn kind(&self) -> AllocErrorKind {
        self.kind
    }

    /// The size and alignment asked for; None when the call asked for none
    /// ([`SegmentAllocator::of`]).
    pub fn request(&self) -> Option<Layout> {
        self.request
    }
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            AllocErrorKind::OutOfMemory { free } => {
                write!(f, "segment out of memory ({free} bytes free in all)")?
            }
            AllocErrorKind::NoRoomInPlace { possible } => write!(
                f,
                "no room to resize the block in place (at most {possible} bytes)"
            )?,
            AllocErrorKind::ReadOnly { addr } => write!(
                f,
                "address {addr:#x} is in a read-only mapping, which cannot allocate"
            )?,
            AllocErrorKind::NotInSegment { addr } => {
                write!(f, "address {addr:#x} is in no segment of this process")?
            }
            AllocErrorKind::NotAnAllocation { addr, base } => write!(
                f,
                "{addr:#x} is not a live allocation of the segment at {base:#x}"
            )?,
            AllocErrorKind::InvalidRequest { reason } => write!(f, "invalid request: {reason}")?,
            AllocErrorKind::LockReentered { base } => write!(
                f,
                "the segment at {base:#x} is locked by this thread (inside with_lock)"
            )?,
            AllocErrorKind::Corrupted { base } => write!(
                f,
                "the segment at {base:#x} is corrupted (its check() says what is wrong)"
            )?,
        }
        if let Some(l) = self.request {
            write!(
                f,
                ", asking for {} bytes aligned to {}",
                l.size(),
                l.align()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for AllocError {}

impl From<AllocError> for Error {
    fn from(e: AllocError) -> Error {
        let (size, align) = e.request.map_or((0, 1), |l| (l.size(), l.align()));
        let segment = |base: usize| format!("segment at {base:#x}");
        match e.kind {
            AllocErrorKind::OutOfMemory { free } => Error::OutOfMemory {
                requested: size,
                align,
                free,
            },
            AllocErrorKind::NoRoomInPlace { possible } => Error::AllocationCommandFailed {
                limit: size,
                preferred: size,
                possible,
            },
            AllocErrorKind::ReadOnly { addr } => Error::InvalidAddress {
                addr,
                reason: "in a read-only mapping, which cannot allocate".into(),
            },
            AllocErrorKind::NotInSegment { addr } => Error::InvalidAddress {
                addr,
                reason: "in no segment of this process".into(),
            },
            AllocErrorKind::NotAnAllocation { addr, base } => Error::NotAnAllocation {
                addr,
                what: segment(base),
            },
            AllocErrorKind::InvalidRequest { reason } => Error::InvalidCommand { reason },
            AllocErrorKind::LockReentered { base } => Error::LockReentered {
                what: segment(base),
            },
            AllocErrorKind::Corrupted { base } => Error::Corrupted {
                what: segment(base),
                reason: "found while allocating; check() says what is wrong".into(),
            },
        }
    }
}
