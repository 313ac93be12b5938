//! Segments in a named device that outlives the process: POSIX shared memory and files.
//! Both follow one protocol: exclusive creation picks the single creator, openers wait for
//! the header's READY state, and offline `grow` / `shrink_to_fit` resize the device.
//!
//! The creator claims the device before sizing it: an exclusive `flock` on its own open file
//! description, dropped once the header is READY (or by the kernel when the creator dies).
//! An opener that finds the device empty or its header not ready waits only while the claim
//! is held, so a slow `fallocate` is waited for and a dead creator is reported at once; and
//! `open_or_create` makes a segment its creator left half-made anew.
//!
//! Each mapping opens its own description of the device and holds the attachment locks of its
//! mode on it (see `attachment.rs`): an exclusive mapping excludes every other, read-only
//! and copy-on-write ones exclude shared read-write ones, and resizing needs the segment
//! alone.

use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::fs::FlockOperation;
use rustix::io::Errno;

use crate::alloc::{MemoryAlgorithm, Tlsf};
use crate::error::{Error, Result};
use crate::manager::header::{self, MIN_SEGMENT_SIZE};
use crate::manager::limits::{Growth, Limits};
use crate::objects::{HashIndex, IndexKind};
use crate::os::fork::Mapped;
use crate::os::{
    Access, MapMode, Mappable, MappableFile, MappedRegion, Permissions, SharedMemoryObject,
};
use crate::robust::Owner;
use crate::segment::backing::attachment::{Attachment, ProcessAttachment};
use crate::segment::builder::{SegmentBuilder, Settings};
use crate::segment::managed::{check_size, Backing, ManagedSegment};
use crate::segment::mode::{CreateMode, Exclusive, Mode, ReadWrite};

mod sealed {
    pub trait Sealed {}
}

/// A named device a segment can live in: shmkit's own only (sealed). A mapping's locks are
/// taken on the device's descriptor and its bytes mapped from it, so exclusivity and the
/// liveness of observers rest on `as_fd` naming one file throughout; an implementation that
/// locked a file of its own and mapped the shared one would open the same segment
/// exclusively twice (two `&mut` to one object).
///
/// ```compile_fail,E0277
/// use std::os::fd::{AsFd, BorrowedFd};
/// use std::path::Path;
/// use shmkit_runtime::os::{Access, Mappable, MappableFile, Permissions};
/// use shmkit_runtime::Result;
///
/// struct Mine(MappableFile);
/// impl AsFd for Mine {
///     fn as_fd(&self) -> BorrowedFd<'_> { self.0.as_fd() }
/// }
/// impl Mappable for Mine {
///     fn access(&self) -> Access { self.0.access() }
///     fn size(&self) -> Result<u64> { self.0.size() }
///     fn describe(&self) -> String { self.0.describe() }
/// }
/// impl shmkit_runtime::segment::Device for Mine {
///     type Name = Path;
///     fn create(_: &Path, _: Permissions) -> Result<Self> { unimplemented!() }
///     fn open(p: &Path, a: Access) -> Result<Self> { MappableFile::open(p, a).map(Mine) }
///     fn open_or_create(_: &Path, _: Permissions) -> Result<(Self, bool)> { unimplemented!() }
///     unsafe fn set_len(&self, _: u64) -> Result<()> { unimplemented!() }
///     fn reserve(&self, _: u64) -> Result<()> { unimplemented!() }
///     fn remove(_: &Path) -> Result<bool> { unimplemented!() }
/// }
/// ```
pub trait Device: Mappable + Sized + Send + Sync + sealed::Sealed {
    /// How the device is named: `str` for shared memory, `Path` for files.
    type Name: ?Sized + AsRef<Self::Name>;
    /// Creates the device exclusively (AlreadyExists if it is there).
    fn create(name: &Self::Name, permissions: Permissions) -> Result<Self>;
    /// Opens an existing device (NotFound if there is none).
    fn open(name: &Self::Name, access: Access) -> Result<Self>;
    /// Opens the device, or creates it if there is none; true when it was created.
    fn open_or_create(name: &Self::Name, permissions: Permissions) -> Result<(Self, bool)>;
    /// Sets the device's length (new bytes read as zero; storage comes on first write).
    ///
    /// # Safety
    /// As for [`SharedMemoryObject::truncate`]: when this shrinks, no mapping of the device
    /// uses the bytes cut off.
    unsafe fn set_len(&self, len: u64) -> Result<()>;
    /// Makes the device at least `len` bytes with storage allocated for all of them (never
    /// shrinks it).
    fn reserve(&self, len: u64) -> Result<()>;
    /// Sets the device's length; `reserve` asks for the storage of a growth to be allocated
    /// too, so that a full device is [`Error::OutOfSpace`] now rather than SIGBUS later.
    ///
    /// # Safety
    /// As for [`set_len`](Self::set_len).
    unsafe fn resize(&self, len: u64, reserve: bool) -> Result<()> {
        if reserve && len > self.size()? {
            self.reserve(len)
        } else {
            // SAFETY: forwarded contract.
            unsafe { self.set_len(len) }
        }
    }
    /// Removes the device's name; false if there was none.
    fn remove(name: &Self::Name) -> Result<bool>;
}

impl sealed::Sealed for SharedMemoryObject {}
impl sealed::Sealed for MappableFile {}

impl Device for SharedMemoryObject {
    type Name = str;
    fn create(name: &str, permissions: Permissions) -> Result<Self> {
        SharedMemoryObject::create(name, Access::ReadWrite, permissions)
    }
    fn open(name: &str, access: Access) -> Result<Self> {
        SharedMemoryObject::open(name, access)
    }
    fn open_or_create(name: &str, permissions: Permissions) -> Result<(Self, bool)> {
        SharedMemoryObject::open_or_create(name, Access::ReadWrite, permissions)
    }
    unsafe fn set_len(&self, len: u64) -> Result<()> {
        // SAFETY: forwarded contract.
        unsafe { self.truncate(len) }
    }
    fn reserve(&self, len: u64) -> Result<()> {
        self.allocate(len)
    }
    fn remove(name: &str) -> Result<bool> {
        SharedMemoryObject::remove(name)
    }
}

impl Device for MappableFile {
    type Name = std::path::Path;
    fn create(path: &std::path::Path, permissions: Permissions) -> Result<Self> {
        MappableFile::create(path, 0, permissions)
    }
    fn open(path: &std::path::Path, access: Access) -> Result<Self> {
        MappableFile::open(path, access)
    }
    fn open_or_create(path: &std::path::Path, permissions: Permissions) -> Result<(Self, bool)> {
        MappableFile::open_or_create(path, 0, permissions)
    }
    unsafe fn set_len(&self, len: u64) -> Result<()> {
        // SAFETY: forwarded contract.
        unsafe { self.truncate(len) }
    }
    fn reserve(&self, len: u64) -> Result<()> {
        self.allocate(len)
    }
    fn remove(path: &std::path::Path) -> Result<bool> {
        MappableFile::remove(path)
    }
}

/// A device, the region that maps it, and the attachment it holds.
pub struct DeviceBacking<D> {
    // Declared first: unmapped before the device is closed.
    region: Mapped,
    // Before the device: leaves the fork handler's list before the descriptor closes.
    attachment: Held,
    device: D,
}

/// The attachment a device mapping holds: its own, on the description its region maps (an
/// exclusive mapping, which must exclude every other mapping, this process's too), or the
/// one its process's shared mappings of the device in its mode hold together.
enum Held {
    Own(Attachment),
    Process(Arc<ProcessAttachment>),
}

impl Held {
    /// Takes the attachment of a mapping in mode `M` of `device`, whose `fstat` is `stat`.
    fn take<D: Device, M: Mode>(device: &D, stat: &rustix::fs::Stat) -> Result<Self> {
        if !M::EXCLUSIVE && !M::OBSERVES {
            if let Some(process) = ProcessAttachment::take::<M>(device, stat)? {
                return Ok(Held::Process(process));
            }
        }
        Ok(Held::Own(Attachment::take::<M>(device)?))
    }

    /// The device's size, read under this attachment's locks.
    fn size<D: Device>(&self, device: &D) -> Result<u64> {
        match self {
            Held::Own(_) => device.size(),
            Held::Process(process) => Ok(process.size()),
        }
    }

    /// Maps `len` bytes of `device` as mode `mode` wants, under this attachment, reserving
    /// `reserved` bytes of address space for the device to grow into.
    fn map<D: Device>(
        &self,
        device: &D,
        mode: MapMode,
        len: u64,
        reserved: u64,
        address: Option<NonNull<u8>>,
    ) -> Result<Mapped> {
        match self {
            Held::Own(own) => own.map(device, mode, len, reserved, address),
            // The region maps this mapping's description, which holds no locks (they are
            // on the attachment's own): a forked child that keeps it keeps nothing alive.
            Held::Process(_) => {
                MappedRegion::map_whole(device, mode, len, reserved, address).map(Mapped::inherited)
            }
        }
    }
}

/// Maps `len` bytes of `device` in mode `M` under `attachment`, reserving `reserved`: the
/// backing, where it maps the segment, and the mapping's bounds.
fn map_backing<D: Device, M: Mode>(
    attachment: Held,
    device: D,
    len: usize,
    reserved: u64,
    opts: &Settings,
) -> Result<(DeviceBacking<D>, NonNull<u8>, Limits)> {
    let region = attachment.map(&device, M::MAP, len as u64, reserved, opts.address)?;
    let base = region_base(&region)?;
    let limits = limits::<D, M>(&device, reserved, len, opts.growth);
    let backing = DeviceBacking {
        region,
        attachment,
        device,
    };
    Ok((backing, base, limits))
}

/// The bounds of a mapping in mode `M` of `device` that reserved `reserved` bytes, of
/// which the device backs `len`: a shared mapping follows the device as it grows (and a
/// writable one grows it by `growth`); a copy-on-write one keeps its private bytes.
fn limits<D: Device, M: Mode>(device: &D, reserved: u64, len: usize, growth: Growth) -> Limits {
    if M::MAP == MapMode::CopyOnWrite {
        return Limits::fixed(len);
    }
    let growth = if M::MAP == MapMode::ReadWrite {
        growth
    } else {
        Growth::Off
    };
    let fd = device.as_fd().as_raw_fd();
    // SAFETY: `device` becomes the backing of the segment these limits bound, which drops
    // them before it (field order of `ManagedSegment`).
    unsafe { Limits::growable(reserved as usize, len as u64, fd, device.describe(), growth) }
}

/// The address space a new segment of `size` bytes reserves: the `max_size` asked for
/// (at least the size), else a generous multiple of the size when it may grow; whole
/// pages, at most [`header::MAX_RESERVATION`].
fn reservation(size: usize, opts: &Settings) -> Result<u64> {
    let size = size as u64;
    let max = match opts.max_size {
        Some(max) if (max as u64) < size => {
            return Err(Error::InvalidSize {
                size: max as u64,
                reason: format!("the maximum size is below the segment's size {size}"),
            })
        }
        Some(max) => max as u64,
        None if opts.growth == Growth::Off => size,
        None => size
            .saturating_mul(DEFAULT_GROWTH_FACTOR)
            .max(DEFAULT_MIN_RESERVATION),
    };
    if max > header::MAX_RESERVATION && opts.max_size.is_some() {
        return Err(Error::InvalidSize {
            size: max,
            reason: format!(
                "a segment may reserve at most {} bytes of address space",
                header::MAX_RESERVATION
            ),
        });
    }
    let page = crate::os::page_size() as u64;
    Ok(max
        .min(header::MAX_RESERVATION)
        .max(size)
        .next_multiple_of(page))
}

/// How many times its size a new segment may grow to by default. Not more: a mapping of
/// 1 GiB or more makes every open and close about 3 µs (20 %) slower than a small one (it
/// needs page-table pages of its own, measured with 1,000 opens of a 64 MiB segment),
/// and most segments are small; a larger maximum is one `max_size` call away.
const DEFAULT_GROWTH_FACTOR: u64 = 8;
/// The least a growable segment reserves by default (address space only: the device holds
/// what the segment uses), so that a small segment may grow a long way.
const DEFAULT_MIN_RESERVATION: u64 = if usize::BITS >= 64 { 256 << 20 } else { 0 };

/// The size the segment in `device` may grow to, read from its header before it is
/// mapped so that the mapping reserves it in one go; `len` when the header does not say
/// more (not written yet, or a forged word: the mapping's validation reports those).
fn peek_max_size(device: &impl Device, len: u64) -> u64 {
    let at = std::mem::offset_of!(header::SegmentHeader, reserved)
        + header::words::MAX_SIZE * std::mem::size_of::<u64>();
    let mut word = [0u8; 8];
    match rustix::io::pread(device, &mut word, at as u64) {
        Ok(8) => {}
        _ => return len,
    }
    let max = u64::from_ne_bytes(word);
    if max <= header::MAX_RESERVATION {
        max.max(len)
    } else {
        len
    }
}

/// The device's `fstat`.
fn stat(device: &impl Device) -> Result<rustix::fs::Stat> {
    rustix::fs::fstat(device).map_err(|e| Error::from_os("fstat", device.describe(), e.into()))
}

impl<D: Device> DeviceBacking<D> {
    /// The device (to query its name, path or size).
    pub fn device(&self) -> &D {
        &self.device
    }
}

impl<D: Device> Backing for DeviceBacking<D> {
    type DefaultMode = ReadWrite;
    fn describe(&self) -> String {
        self.device.describe()
    }
    fn flush(&self) -> Result<()> {
        match self.region.mode() {
            MapMode::ReadWrite => self.region.flush(),
            // Private or read-only pages have nothing to write back.
            MapMode::ReadOnly | MapMode::CopyOnWrite => Ok(()),
        }
    }
    fn alone<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        match &self.attachment {
            Held::Own(own) => own.alone(&self.device, f),
            Held::Process(process) => ProcessAttachment::alone(process, f),
        }
    }
    fn cold(&self) -> bool {
        match &self.attachment {
            Held::Own(own) => own.cold(),
            Held::Process(process) => process.cold(),
        }
    }
    fn owner(&self) -> Result<Arc<Owner>> {
        match &self.attachment {
            Held::Process(process) => Ok(process.owner()),
            // Copy-on-write pages are private: their locks are this mapping's alone.
            Held::Own(_) if self.region.mode() == MapMode::CopyOnWrite => {
                Ok(Arc::new(Owner::private()))
            }
            Held::Own(_) => Owner::attached(self.device.as_fd()).map(Arc::new),
        }
    }
    fn opened(&self) {
        match &self.attachment {
            Held::Process(process) => process.trust(),
            Held::Own(own) => own.opened(&self.device),
        }
    }
    fn not_inherited_since(&self) -> Option<u32> {
        self.region.not_inherited_since()
    }

    /// The creator's claim says it (see the module docs); where the file system has no
    /// `flock`, the creator's owner id in the header does.
    fn creator_at_work(&self, creator: u32, owner: &Owner) -> Option<bool> {
        match claim_held(&self.device) {
            Some(held) => Some(held),
            None => (creator != 0).then(|| owner.alive(creator)),
        }
    }
}

/// Takes the creator's claim on `device` (waiting for an opener's brief look to end when
/// `wait`); false if someone else holds it. A file system without `flock` cannot hold
/// claims: then everybody proceeds as before claims, judging creators by owner id.
fn claim<D: Device>(device: &D, wait: bool) -> Result<bool> {
    let op = if wait {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::NonBlockingLockExclusive
    };
    match rustix::fs::flock(device, op) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(Errno::NOLCK | Errno::OPNOTSUPP | Errno::INVAL) => Ok(true),
        Err(e) => Err(Error::from_os("flock", device.describe(), e.into())),
    }
}

/// Drops this process's claim on `device` (if it has one).
fn release_claim<D: Device>(device: &D) {
    // Best effort: closing the device drops the claim too.
    let _ = rustix::fs::flock(device, FlockOperation::Unlock);
}

/// Whether a creator holds its claim on `device`; None where claims cannot be held.
fn claim_held<D: Device>(device: &D) -> Option<bool> {
    match rustix::fs::flock(device, FlockOperation::NonBlockingLockShared) {
        Ok(()) => {
            release_claim(device);
            Some(false)
        }
        Err(Errno::WOULDBLOCK) => Some(true),
        Err(_) => None,
    }
}

/// Whether `device` is what a creator that stopped half-way leaves: empty, or a header that
/// never became READY (see [`header::half_made`]).
fn half_made<D: Device>(device: &D) -> Result<bool> {
    let len = device.size()?;
    if len == 0 {
        return Ok(true);
    }
    if len < MIN_SEGMENT_SIZE as u64 {
        return Ok(false);
    }
    let region = MappedRegion::map(device, MapMode::ReadOnly, 0, Some(MIN_SEGMENT_SIZE))?;
    // SAFETY: the region maps a whole header, readable, while it lives.
    Ok(unsafe { header::half_made(region.as_ptr()) })
}

/// A segment in POSIX shared memory (`/dev/shm` on Linux). Another index or access mode is
/// chosen on the builder: `ManagedSharedMemory::options().index::<OrderedIndex>()`
/// (Boost's `basic_managed_shared_memory` with an `IndexType`).
pub type ManagedSharedMemory<M = ReadWrite, I = HashIndex, A = Tlsf> =
    ManagedSegment<DeviceBacking<SharedMemoryObject>, M, I, A>;
/// A segment in a memory-mapped file: persistent across runs and reboots.
pub type ManagedMappedFile<M = ReadWrite, I = HashIndex, A = Tlsf> =
    ManagedSegment<DeviceBacking<MappableFile>, M, I, A>;

/// How long an opener waits for an empty device that was not changed recently: a creator
/// sizes its device right after creating it, so an old empty device is simply empty.
const SIZING_WAIT: Duration = Duration::from_millis(200);

/// Whether `dev` changed (was created or resized) within the last `window`: an empty device
/// that did is probably still being sized by its creator (`fallocate` of a large segment
/// takes a while), so an opener keeps waiting for it, up to its init timeout.
fn changed_within(dev: &impl Device, window: Duration) -> bool {
    let Ok(stat) = rustix::fs::fstat(dev) else {
        return false;
    };
    let changed = std::time::UNIX_EPOCH
        + Duration::new(
            stat.st_ctime.max(0) as u64,
            stat.st_ctime_nsec.clamp(0, 999_999_999) as u32,
        );
    std::time::SystemTime::now()
        .duration_since(changed)
        .is_ok_and(|age| age < window)
}

/// Claims a device this process just created exclusively. False when someone made it a
/// segment meanwhile: an `open_or_create` that found it left half-made for longer than
/// [`SIZING_WAIT`] before this process could claim it.
fn claim_created<D: Device>(device: &D) -> Result<bool> {
    if !claim(device, true)? {
        return Ok(false);
    }
    if device.size()? != 0 {
        release_claim(device);
        return Ok(false);
    }
    Ok(true)
}

/// Sizes, maps and formats a device this process claimed; the claim is dropped once the
/// segment is READY. On failure the device is removed again, so a failed create leaves
/// nothing behind.
fn finish_create<D: Device, M: Mode, I: IndexKind, A: MemoryAlgorithm>(
    name: &D::Name,
    device: D,
    size: usize,
    opts: &Settings,
) -> Result<ManagedSegment<DeviceBacking<D>, M, I, A>> {
    let result = (|| {
        // Before the device has a size: openers wait for one before they lock, so they meet
        // this mapping's locks.
        let attachment = Held::take::<D, M>(&device, &stat(&device)?)?;
        // SAFETY: the device is empty (new, or cut to nothing by `remake` while nobody was
        // attached), so no mapping uses bytes this could cut off; openers map nothing
        // before it has a size.
        unsafe { device.resize(size as u64, opts.reserve)? };
        if let Held::Process(process) = &attachment {
            process.sized(size as u64);
        }
        let reserved = reservation(size, opts)?;
        let (backing, base, limits) =
            map_backing::<D, M>(attachment, device, size, reserved, opts)?;
        // SAFETY: the region maps `size` writable bytes of a device nobody else can use
        // until the header says READY, and reserves `reserved`; it lives as long as the
        // backing.
        unsafe {
            ManagedSegment::attach_within(backing, base, size, limits, true, opts.init_timeout)
        }
    })();
    match &result {
        Ok(seg) => release_claim(&seg.backing().device),
        // Best effort: the create failed already, that error is the one to report.
        Err(_) => drop(D::remove(name)),
    }
    result
}

/// `open_or_create` found a segment its creator left half-made: claims it and makes it anew
/// with `size` bytes, unless someone else got to it first (then opens what they make).
fn remake<D: Device, M: CreateMode, I: IndexKind, A: MemoryAlgorithm>(
    name: &D::Name,
    device: D,
    size: usize,
    opts: &Settings,
) -> Result<ManagedSegment<DeviceBacking<D>, M, I, A>> {
    if !claim(&device, false)? {
        return attach_existing(device, opts);
    }
    // Under the claim nobody else can be making it: is it still half-made?
    if !half_made(&device)? {
        release_claim(&device);
        return attach_existing(device, opts);
    }
    // What the dead creator wrote goes, but only while nobody maps it: an opener that is
    // looking at the half-made bytes holds its attachment until it gives up.
    let alone = match Attachment::take::<Exclusive>(&device) {
        Ok(alone) => alone,
        Err(e) => {
            release_claim(&device);
            return Err(e);
        }
    };
    // SAFETY: our description holds the attach lock exclusively, so no mapping of the
    // device exists; new openers wait for a size while our claim is held.
    unsafe { device.set_len(0)? };
    // Openers wait for a size while our claim is held, so none attaches before
    // `finish_create` takes the mode's attachment.
    alone.release(&device)?;
    finish_create(name, device, size, opts)
}

fn region_base(region: &MappedRegion) -> Result<NonNull<u8>> {
    NonNull::new(region.as_ptr()).ok_or_else(|| Error::InvalidAddress {
        addr: 0,
        reason: "the OS mapped the segment at address 0".into(),
    })
}

/// Waits while `device` is empty and a creator may be sizing it: while its claim is held
/// (up to the init timeout), or for [`SIZING_WAIT`] after a change (a creator between its
/// exclusive create and its claim). Returns the size, 0 if it stayed empty.
fn wait_for_size<D: Device>(device: &D, timeout: Duration) -> Result<rustix::fs::Stat> {
    // Read the clock only once there is something to wait for (opening is a hot path).
    let mut started = None;
    loop {
        let stat = stat(device)?;
        if stat.st_size != 0 {
            return Ok(stat);
        }
        let started = *started.get_or_insert_with(Instant::now);
        let held = claim_held(device);
        let at_work = held == Some(true)
            || changed_within(device, SIZING_WAIT)
            || (held.is_none() && changed_within(device, timeout));
        if !at_work {
            return Ok(stat);
        }
        if started.elapsed() >= timeout {
            return Err(Error::Timeout {
                what: device.describe(),
                reason: format!("its creator did not finish sizing it within {timeout:?}"),
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Maps an existing device and validates the segment in it: waits for its size (without
/// locks, which a creator takes before it sizes the device, so this opener then meets them),
/// takes this mode's attachment locks, and maps the size seen under them (stable from
/// there: resizing needs the segment alone).
fn attach_existing<D: Device, M: Mode, I: IndexKind, A: MemoryAlgorithm>(
    device: D,
    opts: &Settings,
) -> Result<ManagedSegment<DeviceBacking<D>, M, I, A>> {
    let stat = wait_for_size(&device, opts.init_timeout)?;
    if stat.st_size == 0 {
        return Err(Error::NotASegment {
            what: device.describe(),
            reason: "it is empty and no creator is making it (its creator died before sizing \
                     it, or another program made it)"
                .into(),
        });
    }
    let attachment = Held::take::<D, M>(&device, &stat)?;
    let len = attachment.size(&device)?;
    let len = usize::try_from(len).map_err(|_| Error::InvalidSize {
        size: len,
        reason: "larger than the address space".into(),
    })?;
    let mut reserved = match M::MAP {
        MapMode::CopyOnWrite => len as u64,
        _ => peek_max_size(&device, len as u64),
    };
    let mut held = (attachment, device);
    loop {
        let (attachment, device) = held;
        let (backing, base, limits) = map_backing::<D, M>(attachment, device, len, reserved, opts)?;
        // SAFETY: the region maps `len` bytes with the mode's protection, reserves
        // `reserved`, and lives as long as the backing.
        let seg = unsafe {
            ManagedSegment::attach_within(backing, base, len, limits, false, opts.init_timeout)?
        };
        // SAFETY: the header was just validated and stays mapped with `seg`.
        let max = unsafe { header::max_size(seg.core().base().as_ptr()) };
        if max <= reserved || M::MAP == MapMode::CopyOnWrite {
            return Ok(seg);
        }
        // The creator was still writing the header when it was peeked: map again, reserving
        // what it says now (validated: at most `MAX_RESERVATION`).
        reserved = max;
        let DeviceBacking {
            attachment, device, ..
        } = seg.into_backing();
        held = (attachment, device);
    }
}

impl<D: Device, M: CreateMode, I: IndexKind, A: MemoryAlgorithm>
    SegmentBuilder<DeviceBacking<D>, M, I, A>
{
    /// Whether creation reserves the device's storage (`fallocate`), so that a full
    /// `/dev/shm` or file system is [`Error::OutOfSpace`] now rather than a SIGBUS at the
    /// first write into a page without storage. On by default; `grow` always reserves.
    ///
    /// What cannot be reserved: opening an existing device maps it as it is, so a sparse
    /// file (made with `reserve(false)` or by another tool) gets storage page by page on
    /// first write, and a full file system is then SIGBUS; and on file systems without
    /// `fallocate` (`EOPNOTSUPP`) creation only sets the size.
    pub fn reserve(mut self, reserve: bool) -> Self {
        self.settings.reserve = reserve;
        self
    }

    /// The size a created segment may grow to while processes have it mapped (see
    /// [`growth`](Self::growth)): every mapping reserves this much address space, never
    /// memory; the device holds only what the segment uses. At least the segment's size
    /// (`InvalidSize` otherwise), at most 4 TiB. By default 8 times the size, at least
    /// 256 MiB (on 64-bit targets), or the size itself when growth is off.
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.settings.max_size = Some(max_size);
        self
    }

    /// Creates a new segment of `size` bytes; AlreadyExists if the name is taken, and
    /// `InvalidSize` below [`MIN_SEGMENT_SIZE`] (768) bytes.
    pub fn create(
        self,
        name: impl AsRef<D::Name>,
        size: usize,
    ) -> Result<ManagedSegment<DeviceBacking<D>, M, I, A>> {
        let name = name.as_ref();
        check_size(size as u64)?;
        let device = D::create(name, self.settings.permissions)?;
        if !claim_created(&device)? {
            return Err(Error::AlreadyExists {
                what: device.describe(),
            });
        }
        finish_create(name, device, size, &self.settings)
    }

    /// Opens the segment, or creates it with `size` bytes if it does not exist. Among
    /// processes racing on one name exactly one creates; the others wait until it is ready.
    pub fn open_or_create(
        self,
        name: impl AsRef<D::Name>,
        size: usize,
    ) -> Result<ManagedSegment<DeviceBacking<D>, M, I, A>> {
        let name = name.as_ref();
        check_size(size as u64)?;
        let opts = &self.settings;
        match D::open_or_create(name, opts.permissions)? {
            (device, true) if claim_created(&device)? => finish_create(name, device, size, opts),
            (device, _) => {
                // A creator at work is waited for; one that stopped half-way is replaced.
                wait_for_size(&device, opts.init_timeout)?;
                if claim_held(&device) != Some(true) && half_made(&device)? {
                    remake(name, device, size, opts)
                } else {
                    attach_existing(device, opts)
                }
            }
        }
    }
}

impl<D: Device, I: IndexKind, A: MemoryAlgorithm>
    SegmentBuilder<DeviceBacking<D>, ReadWrite, I, A>
{
    /// Grows the segment `name` by `extra` bytes. Offline: `InUse` while any mapping, in
    /// this or another process, maps it.
    pub fn grow(self, name: impl AsRef<D::Name>, extra: usize) -> Result<()> {
        let old = self.exclusive().open(name)?;
        let new_size = old
            .size()
            .checked_add(extra)
            .ok_or_else(|| Error::InvalidSize {
                size: extra as u64,
                reason: "the grown size overflows".into(),
            })?;
        let DeviceBacking {
            device, attachment, ..
        } = old.into_backing();
        // An exclusive open holds its own attachment.
        // SAFETY: growing cuts nothing off; the old region is unmapped.
        unsafe { device.resize(new_size as u64, true)? };
        let region = attachment.map(
            &device,
            MapMode::ReadWrite,
            new_size as u64,
            new_size as u64,
            None,
        )?;
        let base = region_base(&region)?;
        let grown = DeviceBacking {
            region,
            attachment,
            device,
        };
        // SAFETY: the device was a valid segment a moment ago; only its tail is new.
        let seg = unsafe {
            ManagedSegment::<_, Exclusive, I, A>::attach(
                grown,
                base,
                new_size,
                false,
                Duration::ZERO,
            )?
        };
        // SAFETY: the mapping covers `new_size` bytes and is the only one (exclusive).
        unsafe { seg.core().grow_to(new_size) }
    }

    /// Shrinks the segment `name` to end right after its last used block. Offline: `InUse`
    /// while any mapping, in this or another process, maps it. Returns the new size.
    pub fn shrink_to_fit(self, name: impl AsRef<D::Name>) -> Result<usize> {
        let seg = self.exclusive().open(name)?;
        let new_size = seg.core().trim_to_fit()?;
        let DeviceBacking { device, .. } = seg.into_backing();
        // SAFETY: our description holds the attach lock exclusively, so no other mapping
        // exists or can appear, and ours is unmapped.
        unsafe { device.resize(new_size as u64, false)? };
        Ok(new_size)
    }
}

impl<D: Device, M: Mode, I: IndexKind, A: MemoryAlgorithm>
    SegmentBuilder<DeviceBacking<D>, M, I, A>
{
    /// Map at `address` instead of where the OS chooses; an error, never a replaced
    /// mapping, if something is mapped there already. The mapping reserves the segment's
    /// [`max_size`](Self::max_size) from there, so that range must be free.
    pub fn address(mut self, address: NonNull<u8>) -> Self {
        self.settings.address = Some(address);
        self
    }

    /// How this mapping grows the segment when an allocation does not fit: by default it
    /// doubles the size (or more, for a large allocation) up to the segment's maximum size
    /// (see [`max_size`](Self::max_size)), with every other process still attached; with
    /// [`Growth::Off`] a full segment is `OutOfMemory`. Growing allocates the device's
    /// storage (`fallocate`), so a full `/dev/shm` or file system is
    /// [`Error::OutOfSpace`], never a `SIGBUS`. Read-only and copy-on-write mappings never
    /// grow a segment; read-only ones see it grow.
    pub fn growth(mut self, growth: Growth) -> Self {
        self.settings.growth = growth;
        self
    }

    /// Opens an existing segment in this builder's mode; NotFound if it is absent, `InUse`
    /// when the mappings there exclude this mode (see [`Exclusive`], [`ReadOnly`](crate::ReadOnly)).
    pub fn open(
        self,
        name: impl AsRef<D::Name>,
    ) -> Result<ManagedSegment<DeviceBacking<D>, M, I, A>> {
        let access = match M::MAP {
            MapMode::ReadWrite => Access::ReadWrite,
            MapMode::ReadOnly | MapMode::CopyOnWrite => Access::ReadOnly,
        };
        let device = D::open(name.as_ref(), access)?;
        attach_existing(device, &self.settings)
    }
}

/// The shorthands: the builder with its defaults.
impl<D: Device> ManagedSegment<DeviceBacking<D>> {
    /// Creates a new segment of `size` bytes; AlreadyExists if the name is taken.
    ///
    /// ```
    /// # fn main() -> shmkit_runtime::Result<()> {
    /// use shmkit_runtime::ManagedSharedMemory;
    /// # let name = format!("shmkit-doc-create-{}", std::process::id());
    /// # struct Remove<'a>(&'a str);
    /// # impl Drop for Remove<'_> {
    /// #     fn drop(&mut self) { let _ = shmkit_runtime::ManagedSharedMemory::remove(self.0); }
    /// # }
    /// # let _guard = Remove(&name);
    /// let segment = ManagedSharedMemory::create(&name, 64 * 1024)?;
    /// segment.construct("answer", 42u64)?;
    /// drop(segment); // a read-only mapping excludes writable ones (`Error::InUse`)
    /// let reader = ManagedSharedMemory::options().read_only().open(&name)?;
    /// assert_eq!(reader.find::<u64>("answer")?, Some(&42));
    /// # drop(reader);
    /// ManagedSharedMemory::remove(&name)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn create(name: impl AsRef<D::Name>, size: usize) -> Result<Self> {
        Self::options().create(name, size)
    }

    /// Opens an existing segment for reading and writing; NotFound if it is absent.
    pub fn open(name: impl AsRef<D::Name>) -> Result<Self> {
        Self::options().open(name)
    }

    /// Opens the segment, or creates it with `size` bytes if it does not exist. Among
    /// processes racing on one name exactly one creates; the others wait until it is ready.
    pub fn open_or_create(name: impl AsRef<D::Name>, size: usize) -> Result<Self> {
        Self::options().open_or_create(name, size)
    }

    /// Grows the segment `name` by `extra` bytes. Offline: `InUse` while anyone maps it.
    pub fn grow(name: impl AsRef<D::Name>, extra: usize) -> Result<()> {
        Self::options().grow(name, extra)
    }

    /// Shrinks the segment `name` to end right after its last used block. Offline: `InUse`
    /// while anyone maps it. Returns the new size.
    pub fn shrink_to_fit(name: impl AsRef<D::Name>) -> Result<usize> {
        Self::options().shrink_to_fit(name)
    }

    /// Removes the device. Processes that have it mapped keep using it; the name is free
    /// at once. Returns false if there was nothing to remove.
    pub fn remove(name: impl AsRef<D::Name>) -> Result<bool> {
        D::remove(name.as_ref())
    }
}

impl<D: Device, I: IndexKind, A: MemoryAlgorithm>
    ManagedSegment<DeviceBacking<D>, Exclusive, I, A>
{
    /// Shares this exclusive mapping without unmapping it (build a database alone, then
    /// serve it): atomically, so no other mapping attaches before the conversion, and every
    /// `&mut` borrow has ended (`self` is consumed). Forked children inherit it from now on.
    pub fn into_shared(mut self) -> Result<ManagedSegment<DeviceBacking<D>, ReadWrite, I, A>> {
        let backing = self.backing_mut();
        match &mut backing.attachment {
            Held::Own(own) => own.share(&backing.device, &backing.region)?,
            // An exclusive mapping holds its own attachment.
            Held::Process(_) => {
                return Err(Error::InUse {
                    what: backing.device.describe(),
                    reason: "this mapping is not exclusive".into(),
                })
            }
        }
        Ok(self.into_mode())
    }
}
