//! `ManagedSegment<B, M, I, A>`: the one API every kind of managed segment offers. `B` is the
//! backing that keeps the bytes mapped (shared memory, a file, heap memory, …); `M` is the
//! access mode, which decides at compile time whether the writing half of the API exists;
//! `I` is the kind of name index (see [`crate::objects`]). Segments are opened through
//! [`SegmentBuilder`](super::SegmentBuilder) (`options()`) or its shorthands; the object
//! methods live in `objects_api.rs`.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use super::mode::{Mode, ReadWrite, Writable};
use crate::alloc::algorithm;
use crate::alloc::{cache, Allocation, Command};
use crate::alloc::{MemoryAlgorithm, Tlsf};
use crate::error::{Error, Result};
use crate::manager::header::{self, MIN_SEGMENT_SIZE, SEGMENT_ALIGN};
use crate::manager::limits::Limits;
use crate::manager::{CachePush, Handle, SegmentCore};
use crate::objects::{self, HashIndex, IndexKind};
use crate::os::{fork, MapMode};
use crate::registry::{self, Registration};
use crate::robust::owner::Owner;

/// What keeps a segment's bytes mapped. Each managed segment kind has one.
pub trait Backing: Send + Sync {
    /// The mode `options()` starts from: shared read-write for memory others can map,
    /// exclusive for memory only this segment reaches (heap memory, a borrowed buffer).
    type DefaultMode: Mode;
    /// The segment as error messages name it (`shared memory "name"`, a path, …).
    fn describe(&self) -> String;
    /// Writes changes back to the device, where there is one.
    fn flush(&self) -> Result<()> {
        Ok(())
    }
    /// Whether whoever makes the segment is still at it, for an opener that finds its
    /// header not ready: `Some(true)` (wait for it), `Some(false)` (it stopped: judge the
    /// bytes now), `None` (cannot tell yet: wait a little). `creator` is the lock owner id
    /// the header names (0 before the creator wrote it), which `owner` can test. Bytes in
    /// memory and devices with a creator's claim know better.
    fn creator_at_work(&self, creator: u32, owner: &Owner) -> Option<bool> {
        (creator != 0).then(|| owner.alive(creator))
    }

    /// Whether an open must validate the segment in full (a cold open): true unless a
    /// read-write mapping that validated, created or trusted it was attached when this
    /// mapping attached (`sync::owner`). Private copies and backings that cannot tell are
    /// always cold: validating in full is always safe.
    fn cold(&self) -> bool {
        true
    }

    /// Called once an open through this backing succeeded (the segment was validated,
    /// created or trusted): what it shares with later opens may now be trusted by them.
    fn opened(&self) {}

    /// In whose name this mapping takes the segment's locks (see `sync::owner`): an owner
    /// claimed on the description that holds its attachment locks (shared by the mappings
    /// of one process that hold one attachment), or a private owner for memory that only
    /// this segment reaches, or pages that are private to it (copy-on-write).
    fn owner(&self) -> Result<Arc<Owner>> {
        Ok(Arc::new(Owner::private()))
    }

    /// Runs `f` while no other mapping of the segment is attached anywhere (what in-place
    /// destruction through a shared mapping needs: nobody else can hold a reference into
    /// the segment), or fails with `InUse`. A backing that cannot tell refuses.
    fn alone<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        let _ = f;
        Err(Error::InUse {
            what: self.describe(),
            reason: "this kind of segment cannot yet tell whether other mappings are \
                     attached, so objects are destroyed only through an exclusive mapping"
                .into(),
        })
    }

    /// Whether these bytes are a private copy that no other mapping can reach (an image
    /// copied to the heap, a buffer lent exclusively): a held lock word found in them names
    /// an owner that is gone, whatever process id it holds, so opening them writable adopts
    /// them as a copy-on-write mapping does (locks cleared, structures repaired).
    fn private_copy(&self) -> bool {
        false
    }

    /// The fork generation (`os::fork::generation`) this mapping was made in when forked
    /// children do not inherit it (an exclusive device mapping, see `os::fork`): in a
    /// child forked since, the bytes are not mapped and the segment refuses every use.
    /// None for mappings forked children inherit.
    fn not_inherited_since(&self) -> Option<u32> {
        None
    }
}

/// How a segment holds its algorithm: as a type it returns, never as a value.
type ChosenAlgorithm<A> = fn() -> A;

/// A mapped, formatted segment: an allocator and named, unique and anonymous objects, in
/// memory that other processes or later runs can map too.
///
/// A child forked from a process that maps a segment exclusively does not inherit the
/// mapping: its copy of the segment returns [`Error::InUse`] from every fallible method,
/// `None` or `false` from lookups of addresses and handles, and panics in the accessors
/// that cannot fail ([`size`](Self::size), [`free_memory`](Self::free_memory),
/// [`allocator`](Self::allocator), …). References into the segment taken before the fork
/// dangle in the child.
pub struct ManagedSegment<
    B: Backing,
    M: Mode = ReadWrite,
    I: IndexKind = HashIndex,
    A: MemoryAlgorithm = Tlsf,
> {
    core: SegmentCore,
    caches: CacheRelease,
    validated: super::objects_api::Validated,
    schemas: super::objects_api::StoredSchemas,
    registration: Registration,
    /// In whose name the view takes the segment's locks; after everything that uses the
    /// view, before the backing whose description it names.
    /// (An `Arc`, not a `Box`: the view keeps a pointer to it, which moving a `Box`, a
    /// unique pointer, would invalidate.)
    owner: Arc<Owner>,
    /// How far the view trusts the segment's size (an `Arc` for the same reason); before
    /// the backing, whose device descriptor it borrows.
    limits: Arc<Limits>,
    // Declared after the core and registration: the bytes are unmapped last.
    backing: B,
    // The algorithm is chosen by type, never held: it leaves the segment's `Send`/`Sync`
    // to the backing and the mode.
    _mode: PhantomData<(M, I, ChosenAlgorithm<A>)>,
}

/// Returns this mapping's thread caches to the segment when the mapping goes away (before
/// it is unregistered and unmapped). None for read-only mappings, which never cache; and
/// nothing is returned in a forked child that did not inherit the mapping
/// ([`Backing::not_inherited_since`], as it was when the caches were set up).
struct CacheRelease(Option<SegmentCore>, Option<u32>);

impl Drop for CacheRelease {
    fn drop(&mut self) {
        if self.1.is_some_and(|since| since != fork::generation()) {
            return;
        }
        if let Some(core) = self.0 {
            // A failure here (the segment was found corrupted) leaves the blocks cached:
            // they count as free and the next process to claim a slot cannot reuse them,
            // which is all that is lost.
            let _ = core.release_cache();
        }
    }
}

impl<B: Backing, M: Mode, I: IndexKind, A: MemoryAlgorithm> std::fmt::Debug
    for ManagedSegment<B, M, I, A>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("ManagedSegment");
        d.field("backing", &self.backing.describe())
            .field("base", &self.core.base());
        match self.mapped() {
            Ok(core) => d.field("size", &core.size()),
            Err(_) => d.field("mapped", &false),
        }
        .finish()
    }
}

/// Checks that `len` bytes can hold a segment.
pub(crate) fn check_size(len: u64) -> Result<usize> {
    if len < MIN_SEGMENT_SIZE as u64 {
        return Err(Error::InvalidSize {
            size: len,
            reason: format!("a segment needs at least {MIN_SEGMENT_SIZE} bytes"),
        });
    }
    usize::try_from(len).map_err(|_| Error::InvalidSize {
        size: len,
        reason: "larger than the address space".into(),
    })
}

impl<B: Backing, M: Mode, I: IndexKind, A: MemoryAlgorithm> ManagedSegment<B, M, I, A> {
    /// Wraps bytes that `backing` keeps mapped at `base`: formats them (with index kind
    /// `I`) when `created`, else validates them (waiting up to `timeout` for a creator in
    /// another process) and checks that they were created with index kind `I`.
    ///
    /// # Safety
    /// `[base, base+len)` is mapped (writable unless `M` is read-only) for as long as
    /// `backing` lives, and, when `created`, nobody else uses it yet.
    pub(crate) unsafe fn attach(
        backing: B,
        base: NonNull<u8>,
        len: usize,
        created: bool,
        timeout: Duration,
    ) -> Result<Self> {
        // SAFETY: forwarded contract; a fixed mapping reserves exactly what it maps.
        unsafe { Self::attach_within(backing, base, len, Limits::fixed(len), created, timeout) }
    }

    /// [`attach`](Self::attach) for a mapping with its own `limits`: `len` bytes backed
    /// (checked), `limits.reserved()` mapped, at least `len`.
    ///
    /// # Safety
    /// As for `attach`, with `[base, base + limits.reserved())` mapped.
    pub(crate) unsafe fn attach_within(
        backing: B,
        base: NonNull<u8>,
        len: usize,
        limits: Limits,
        created: bool,
        timeout: Duration,
    ) -> Result<Self> {
        if base.as_ptr().addr() % SEGMENT_ALIGN != 0 {
            return Err(Error::BufferMisaligned {
                addr: base.as_ptr().addr(),
                align: SEGMENT_ALIGN,
            });
        }
        // Read-only mappings never lock, but test owners (a creator) through the description;
        // copy-on-write mappings lock their private pages alone.
        let owner = backing.owner()?;
        if created {
            check_size(len as u64)?;
            let creator = owner.me()?;
            // SAFETY: the caller gives us fresh, writable, exclusively used bytes.
            // (An algorithm whose table leaves no room for blocks: `InvalidSize`.)
            unsafe {
                header::format(
                    base.as_ptr(),
                    len,
                    limits.reserved(),
                    I::KIND,
                    algorithm::ops::<A>(),
                    creator,
                )?
            };
        } else {
            // SAFETY: the range is mapped readable (caller).
            unsafe {
                header::validate(
                    base.as_ptr(),
                    len,
                    &|| backing.describe(),
                    &|creator| backing.creator_at_work(creator, &owner),
                    timeout,
                )?
            };
            // SAFETY: as above; the header was just validated.
            let kind = unsafe { header::algorithm_kind(base.as_ptr()) };
            if kind != A::KIND {
                return Err(Error::AlgorithmMismatch {
                    what: backing.describe(),
                    expected: A::NAME,
                    found: header::algorithm_name(kind),
                });
            }
        }
        let limits = Arc::new(limits);
        // SAFETY: the segment was formatted or validated and stays mapped with `backing`;
        // the owner and limits are on the heap (they do not move with the segment) and
        // dropped after the last use of the view (field order of `ManagedSegment`).
        let core = unsafe {
            SegmentCore::new(
                base,
                cache::new_mapping_id(),
                M::MAP != MapMode::ReadOnly,
                NonNull::from(&*owner),
                NonNull::from(&*limits),
                algorithm::ops::<A>(),
            )
        };
        let core = if M::OBSERVES {
            core.with_shared_reads()
        } else {
            core
        };
        // A copy-on-write mapping is a private copy of pages others may have been changing:
        // adopted whole. A writable private copy (`private_copy`: a heap image, a buffer) is
        // cold, and nobody else can hold its locks: a held lock word names an owner that is
        // gone and is adopted as after a dead owner. Other cold opens (no trusted mapping
        // attached, see `Backing::cold`) validate in full; warm ones check the header
        // bounds. (A read-only mapping never takes the locks.)
        use objects::Opening;
        let cold = !created && backing.cold();
        let opening = if created {
            Opening::Created
        } else if M::MAP == MapMode::CopyOnWrite {
            Opening::CopyOnWrite
        } else if M::MAP == MapMode::ReadWrite && backing.private_copy() {
            Opening::PrivateCopy
        } else if cold && M::MAP == MapMode::ReadWrite {
            Opening::Cold
        } else {
            Opening::Trusted
        };
        match opening {
            Opening::Created => {}
            Opening::CopyOnWrite => core.adopt_private_copy()?,
            Opening::PrivateCopy if core.lock_held() => core.adopt_private_copy()?,
            Opening::PrivateCopy | Opening::Cold => core.validate_untrusted()?,
            // A cold read-only mapping cannot lock: its reads are bounds-checked instead.
            Opening::Trusted if cold => core.validate_untrusted()?,
            Opening::Trusted => core.check_bounds()?,
        }
        if opening != Opening::Trusted {
            // A writable mapping that did not trust what it found: what was written before
            // is of unknown origin from now on.
            super::owned::new_trust_epoch(core);
        }
        objects::attach::<I>(core, opening, &|| backing.describe())?;
        // Read-only mappings validate no allocator state and private copies repair theirs:
        // neither vouches for the shared bytes.
        if M::MAP == MapMode::ReadWrite {
            owner.vouch()?;
        }
        let registration = registry::register_segment(core, limits.reserved() as usize)?;
        backing.opened();
        Ok(ManagedSegment {
            core,
            caches: CacheRelease(
                (M::MAP != MapMode::ReadOnly).then_some(core),
                backing.not_inherited_since(),
            ),
            validated: Default::default(),
            schemas: Default::default(),
            registration,
            owner,
            limits,
            backing,
            _mode: PhantomData,
        })
    }

    /// The backing (to reach the device, name or path).
    pub fn backing(&self) -> &B {
        &self.backing
    }

    /// The objects this mapping has validated (see `objects_api`).
    pub(super) fn validated(&self) -> &super::objects_api::Validated {
        &self.validated
    }

    /// The schemas this mapping has stored or found (see `objects_api`).
    pub(super) fn schemas(&self) -> &super::objects_api::StoredSchemas {
        &self.schemas
    }

    /// The segment manager view, or `InUse` in a forked child that did not inherit the
    /// mapping (see [`ManagedSegment`]): every use of the segment's bytes goes through
    /// here or [`core`](Self::core).
    #[inline]
    pub(crate) fn mapped(&self) -> Result<&SegmentCore> {
        match self.backing.not_inherited_since() {
            Some(since) if since != fork::generation() => Err(self.not_mapped_here()),
            _ => Ok(&self.core),
        }
    }

    #[cold]
    fn not_mapped_here(&self) -> Error {
        Error::InUse {
            what: self.backing.describe(),
            reason: "this process is a forked child of the one that maps it exclusively; an \
                     exclusive mapping is not inherited, so the segment is not mapped here"
                .into(),
        }
    }

    /// The segment manager view, for code that works with any segment kind and cannot
    /// report an error: panics where [`mapped`](Self::mapped) fails.
    pub(crate) fn core(&self) -> &SegmentCore {
        match self.mapped() {
            Ok(core) => core,
            Err(e) => panic!("{e}"),
        }
    }

    /// Address of the first byte of the segment in this process.
    pub fn base_address(&self) -> NonNull<u8> {
        self.core.base()
    }

    /// Size of the segment in bytes. A device segment grows while mapped when it fills (see
    /// [`SegmentBuilder::growth`](crate::SegmentBuilder)), so this may be larger on the
    /// next call.
    pub fn size(&self) -> usize {
        self.core().size()
    }

    /// The size the segment may grow to while mapped: what every mapping of it reserved.
    /// Equal to [`size`](Self::size) for a segment that cannot grow while mapped (heap,
    /// buffer, XSI and anonymous segments, and device segments created with growth off).
    pub fn max_size(&self) -> usize {
        self.core().max_size()
    }

    /// Bytes not in use, block headers included (`size() - free_memory()` is what is used).
    pub fn free_memory(&self) -> usize {
        self.core().free_memory()
    }

    /// Bytes held in thread caches (of every process): free, but reusable only by the
    /// thread that cached them until it returns them. Included in `free_memory`.
    pub fn cached_memory(&self) -> usize {
        self.core().cached_memory()
    }

    /// True when every allocation has been freed. What the segment keeps for its own
    /// bookkeeping does not count: index tables, type records, and the type schemas that
    /// constructing an object stores for good (see
    /// [`inspect::type_schemas`](crate::inspect::type_schemas)). Telling them apart walks
    /// the blocks, which is done only when the allocator's counters alone say no.
    pub fn all_memory_deallocated(&self) -> bool {
        let core = self.core();
        core.all_memory_deallocated_but(0) || {
            let kept = self
                .indexed(|s| Ok(objects::ops::bookkeeping_bytes::<I>(s)))
                .unwrap_or(0);
            core.all_memory_deallocated_but(kept)
        }
    }

    /// True when every allocator invariant holds (Boost's `check_sanity`).
    pub fn check_sanity(&self) -> bool {
        self.check().is_ok()
    }

    /// Checks every allocator invariant and every object entry (each starts a used block
    /// and its elements end inside it) and says what is wrong if one fails.
    pub fn check(&self) -> Result<()> {
        self.mapped()?.check()?;
        self.indexed(objects::check::<I>)
    }

    /// Whether `ptr` points into this segment.
    pub fn contains(&self, ptr: *const u8) -> bool {
        self.handle_from_address(ptr).is_some()
    }

    /// Usable bytes of the live allocation at `ptr`; None if `ptr` is not one.
    pub fn usable_size(&self, ptr: NonNull<u8>) -> Option<usize> {
        self.mapped().ok()?.usable_size(ptr)
    }

    /// The position-independent handle (offset) of an address in this segment.
    pub fn handle_from_address(&self, ptr: *const u8) -> Option<Handle> {
        self.mapped().ok()?.handle_from_address(ptr)
    }

    /// The address of a handle in this mapping; None if it lies outside the segment.
    pub fn address_from_handle(&self, handle: Handle) -> Option<NonNull<u8>> {
        self.mapped().ok()?.address_from_handle(handle)
    }

    /// Writes the changes of the whole segment back to its file and waits until the device
    /// has them (`msync(MS_SYNC)`); a no-op where there is no file to write to. Other
    /// mappings of the file share these pages, so their changes are written too.
    ///
    /// It is not a transaction and orders nothing: the kernel may write any dirty page at
    /// any time before, and pages in any order. After a machine crash (power loss, kernel
    /// panic; a process crash loses nothing) the file holds, for every page changed since
    /// the last completed `flush`, the old or the new page. Opening such a file validates
    /// the segment's structures and reports damage as `Corrupted`; [`check`](Self::check)
    /// re-checks the allocator on demand. Data is not checksummed: to make an update
    /// durable as a whole, write it, `flush`, then publish it with one aligned word (an
    /// offset or a version) and `flush` again.
    pub fn flush(&self) -> Result<()> {
        self.mapped()?;
        self.backing.flush()
    }

    /// Replaces where the bytes live (a heap segment that moved while growing).
    pub(crate) fn relocated(&mut self, base: NonNull<u8>, len: usize) -> Result<()> {
        self.limits = Arc::new(Limits::fixed(len));
        // SAFETY: the caller moved the whole formatted segment to `base`, `len` bytes.
        self.core = unsafe {
            SegmentCore::new(
                base,
                self.core.mapping(),
                true,
                NonNull::from(&*self.owner),
                NonNull::from(&*self.limits),
                algorithm::ops::<A>(),
            )
        };
        if self.caches.0.is_some() {
            self.caches.0 = Some(self.core);
        }
        self.registration.relocate(self.core, len)
    }

    /// The same mapping in mode `N` (an exclusive mapping shared once built); the caller
    /// has changed what the backing holds to match `N`.
    pub(crate) fn into_mode<N: Mode>(self) -> ManagedSegment<B, N, I, A> {
        let mut caches = self.caches;
        caches.1 = self.backing.not_inherited_since();
        ManagedSegment {
            core: self.core,
            caches,
            registration: self.registration,
            validated: self.validated,
            schemas: self.schemas,
            owner: self.owner,
            limits: self.limits,
            backing: self.backing,
            _mode: PhantomData,
        }
    }

    /// Gives up the segment view and keeps only what maps the bytes (offline resizing).
    pub(crate) fn into_backing(self) -> B {
        self.backing
    }

    pub(crate) fn backing_mut(&mut self) -> &mut B {
        &mut self.backing
    }
}

/// Constants on the default parameters, so that `ManagedSharedMemory::MIN_ALIGN` names
/// them as written (an alias's defaults do not apply in expression position).
impl<B: Backing> ManagedSegment<B, B::DefaultMode> {
    /// Bytes of bookkeeping each allocation costs (Boost's `PayloadPerAllocation`).
    ///
    /// ```
    /// use shmkit_runtime::ManagedSharedMemory;
    /// // What 1,000 allocations of 24 bytes take at least.
    /// let need = 1_000 * (24 + ManagedSharedMemory::PAYLOAD_PER_ALLOCATION);
    /// assert!(need > 24_000);
    /// ```
    pub const PAYLOAD_PER_ALLOCATION: usize = crate::alloc::PAYLOAD_PER_ALLOCATION;
    /// Alignment of every block `allocate` returns.
    ///
    /// ```
    /// use shmkit_runtime::ManagedMappedFile;
    /// assert!(ManagedMappedFile::MIN_ALIGN.is_power_of_two());
    /// ```
    pub const MIN_ALIGN: usize = crate::alloc::MIN_ALIGN;
}

impl<B: Backing, M: Writable, I: IndexKind, A: MemoryAlgorithm> ManagedSegment<B, M, I, A> {
    /// Allocates `size` bytes aligned to [`MIN_ALIGN`](Self::MIN_ALIGN).
    #[inline]
    pub fn allocate(&self, size: usize) -> Result<NonNull<u8>> {
        // The thread cache needs no `mapped` check: it is reached only through a slot
        // recorded in this process (see `SegmentCore::allocate_cached`).
        match self.core.allocate_cached(size) {
            Some(p) => Ok(p),
            None => self.allocate_locked(size),
        }
    }

    #[cold]
    #[inline(never)]
    fn allocate_locked(&self, size: usize) -> Result<NonNull<u8>> {
        self.mapped()?.allocate_locked(size)
    }

    /// Like [`allocate`](Self::allocate), but `None` instead of an error (Boost's nothrow).
    #[inline]
    pub fn try_allocate(&self, size: usize) -> Option<NonNull<u8>> {
        self.allocate(size).ok()
    }

    /// Allocates `size` bytes at an address that is a multiple of `align` (a power of two,
    /// up to the segment size). Alignments above the page size hold in this mapping only:
    /// another process may map the segment at an address with fewer zero bits.
    pub fn allocate_aligned(&self, size: usize, align: usize) -> Result<NonNull<u8>> {
        self.mapped()?.allocate_aligned(size, align)
    }

    /// Frees an allocation. A pointer that is not a live allocation of this segment is
    /// reported as `NotAnAllocation` (as far as the header in front of it can tell).
    ///
    /// # Safety
    /// `ptr` came from this segment's allocator and is not used afterwards.
    #[inline]
    pub unsafe fn deallocate(&self, ptr: NonNull<u8>) -> Result<()> {
        // As in `allocate`, the cache needs no `mapped` check (see `SegmentCore::cache_push`).
        // SAFETY: forwarded contract.
        match unsafe { self.core.cache_push(ptr) } {
            CachePush::Done => Ok(()),
            // SAFETY: forwarded contract; `not_cached` is what `cache_push` said of `ptr`.
            not_cached => unsafe { self.free_uncached(ptr, not_cached) },
        }
    }

    /// # Safety
    /// As for `deallocate`; `not_cached` is what `cache_push(ptr)` returned.
    #[cold]
    #[inline(never)]
    unsafe fn free_uncached(&self, ptr: NonNull<u8>, not_cached: CachePush) -> Result<()> {
        // SAFETY: forwarded contract.
        unsafe { self.mapped()?.free_uncached(ptr, not_cached) }
    }

    /// Allocates `count` blocks of `elem_size` bytes at once (contiguous when possible);
    /// all or nothing. Each block is freed on its own later.
    pub fn allocate_many(&self, elem_size: usize, count: usize) -> Result<Vec<NonNull<u8>>> {
        self.allocate_many_aligned(elem_size, count, crate::alloc::MIN_ALIGN)
    }

    /// [`allocate_many`](Self::allocate_many) with every block's address a multiple of
    /// `align` (a power of two; Boost's aligned `allocate_many`).
    pub fn allocate_many_aligned(
        &self,
        elem_size: usize,
        count: usize,
        align: usize,
    ) -> Result<Vec<NonNull<u8>>> {
        self.mapped()?
            .allocate_many_aligned(elem_size, count, align)
    }

    /// Allocates one block per size in `sizes` at once; all or nothing.
    pub fn allocate_many_sizes(&self, sizes: &[usize]) -> Result<Vec<NonNull<u8>>> {
        self.allocate_many_sizes_aligned(sizes, crate::alloc::MIN_ALIGN)
    }

    /// [`allocate_many_sizes`](Self::allocate_many_sizes) with every block's address a
    /// multiple of `align` (a power of two).
    pub fn allocate_many_sizes_aligned(
        &self,
        sizes: &[usize],
        align: usize,
    ) -> Result<Vec<NonNull<u8>>> {
        self.mapped()?.allocate_many_sizes_aligned(sizes, align)
    }

    /// Frees many blocks under one lock acquisition.
    ///
    /// # Safety
    /// Every pointer came from this segment's allocator and is not used afterwards.
    pub unsafe fn deallocate_many(
        &self,
        ptrs: impl IntoIterator<Item = NonNull<u8>>,
    ) -> Result<()> {
        // SAFETY: forwarded contract.
        unsafe { self.mapped()?.deallocate_many(ptrs) }
    }

    /// Boost's `allocation_command` in bytes: allocate new, expand forward or backward, or
    /// shrink in place, with `limit` the least acceptable and `preferred` the wished size
    /// (for shrinking: `limit` the most acceptable). On success the received size obeys
    /// Boost's rules; on failure the error suggests a limit that might work.
    /// A backward expansion moves the start by a multiple of `object_size`; the caller then
    /// moves its data (the allocator does not). [`Command::aligned`] asks for an aligned
    /// start; [`allocate_new`](Self::allocate_new) is the safe allocate-new case.
    ///
    /// # Safety
    /// `reuse`, when given, is a live allocation of this segment that the caller owns: it
    /// is resized in place, so nobody else may use it (nor may it be a freed block).
    pub unsafe fn allocation_command(
        &self,
        cmd: Command,
        limit: usize,
        preferred: usize,
        reuse: Option<NonNull<u8>>,
        object_size: usize,
    ) -> Result<Allocation> {
        // SAFETY: forwarded contract.
        unsafe {
            self.mapped()?
                .allocation_command(cmd, limit, preferred, reuse, object_size)
        }
    }

    /// The allocate-new case of [`allocation_command`](Self::allocation_command), safe since
    /// no block is reused: a new block of at least `preferred` bytes, else of at least
    /// `limit` (`limit <= preferred`), whose address is a multiple of `align` (a power of
    /// two). `received` says how much is usable; on failure the error suggests a limit.
    pub fn allocate_new(&self, limit: usize, preferred: usize, align: usize) -> Result<Allocation> {
        self.mapped()?.allocate_new(limit, preferred, align)
    }

    /// Zeroes all free memory, so that later allocations read as zero.
    pub fn zero_free_memory(&self) -> Result<()> {
        self.mapped()?.zero_free_memory()
    }

    /// Runs `f` while holding the segment lock: allocation from any thread or process
    /// waits until it returns.
    pub fn with_lock<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        self.mapped()?.with_lock(f)
    }
}
