//! Managed external buffer: a segment in memory the caller owns (a static array, a
//! buffer received from elsewhere). The segment borrows it for its lifetime.

use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

use crate::error::{Error, Result};
use crate::manager::header::{DEFAULT_INIT_TIMEOUT, MIN_SEGMENT_SIZE, SEGMENT_ALIGN};
use crate::objects::{HashIndex, IndexKind};
use crate::segment::builder::SegmentBuilder;
use crate::segment::managed::{Backing, ManagedSegment};
use crate::segment::mode::{Exclusive, Mode, ReadOnly};

/// The caller's buffer, borrowed by a segment.
pub struct ExternalBuffer<'a> {
    addr: usize,
    _borrow: PhantomData<&'a mut [MaybeUninit<u8>]>,
}

impl Backing for ExternalBuffer<'_> {
    type DefaultMode = Exclusive;
    fn describe(&self) -> String {
        format!("external buffer at {:#x}", self.addr)
    }
    /// The buffer is lent exclusively: nobody is still writing its header.
    fn creator_at_work(&self, _creator: u32, _owner: &crate::sync::Owner) -> Option<bool> {
        Some(false)
    }
    /// The buffer is borrowed by this segment alone: no other mapping can hold its locks.
    fn private_copy(&self) -> bool {
        true
    }
}

/// A byte buffer on the heap, aligned as a segment needs (16 bytes): to create an
/// external-buffer segment, to receive a segment image for reopening, and to pass one on.
///
/// Its bytes are [`MaybeUninit<u8>`]: a segment in it stores typed values, whose padding
/// is uninitialised after the store, so once a writable segment has used the buffer it is
/// not a `[u8]` any more. Its bytes leave it straight to the kernel
/// ([`write_to`](Self::write_to)), which may read any bytes.
///
/// ```
/// use shmkit_runtime::{AlignedBuffer, ManagedExternalBuffer, ManagedHeapMemory};
/// let mut heap = ManagedHeapMemory::new(16 * 1024)?;
/// heap.construct("answer", 42u64)?;
/// let image = AlignedBuffer::from_image(heap.image()); // a copy, e.g. read from a file
/// let reader = ManagedExternalBuffer::options().read_only().open(&image)?;
/// assert_eq!(reader.find::<u64>("answer")?, Some(&42));
/// # Ok::<(), shmkit_runtime::Error>(())
/// ```
#[derive(Clone)]
pub struct AlignedBuffer {
    chunks: Vec<Chunk>,
    len: usize,
}

/// The buffer's storage unit: its alignment is the buffer's.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Chunk([MaybeUninit<u8>; SEGMENT_ALIGN]);

const _: () = assert!(std::mem::align_of::<Chunk>() == SEGMENT_ALIGN);

/// Bytes that hold a segment image: plain bytes (read from a file, a pipe), or a byte view
/// of a segment that may include uninitialised padding ([`image`](ManagedSegment::image),
/// an [`AlignedBuffer`]). Copying them and mapping them read-only never reads them as
/// initialised.
pub trait ImageBytes {
    /// The bytes, as possibly uninitialised bytes.
    fn image_bytes(&self) -> &[MaybeUninit<u8>];
}

impl ImageBytes for [MaybeUninit<u8>] {
    fn image_bytes(&self) -> &[MaybeUninit<u8>] {
        self
    }
}

impl ImageBytes for [u8] {
    fn image_bytes(&self) -> &[MaybeUninit<u8>] {
        // SAFETY: same layout; a shared borrow never writes (so never de-initialises) them.
        unsafe { std::slice::from_raw_parts(self.as_ptr().cast(), self.len()) }
    }
}

impl<const N: usize> ImageBytes for [u8; N] {
    fn image_bytes(&self) -> &[MaybeUninit<u8>] {
        self[..].image_bytes()
    }
}

impl ImageBytes for Vec<u8> {
    fn image_bytes(&self) -> &[MaybeUninit<u8>] {
        self[..].image_bytes()
    }
}

impl ImageBytes for AlignedBuffer {
    fn image_bytes(&self) -> &[MaybeUninit<u8>] {
        self
    }
}

impl AlignedBuffer {
    /// `len` zero bytes. Like `vec!`, panics on a length beyond the address space and
    /// aborts if the process runs out of memory; a length read from elsewhere goes through
    /// [`try_new`](Self::try_new).
    pub fn new(len: usize) -> Self {
        AlignedBuffer {
            chunks: vec![Chunk([MaybeUninit::new(0); SEGMENT_ALIGN]); len.div_ceil(SEGMENT_ALIGN)],
            len,
        }
    }

    /// `len` zero bytes, or `InvalidSize` when the process heap cannot provide them.
    pub fn try_new(len: usize) -> Result<Self> {
        let count = len.div_ceil(SEGMENT_ALIGN);
        let mut chunks = Vec::new();
        chunks
            .try_reserve_exact(count)
            .map_err(|_| Error::InvalidSize {
                size: len as u64,
                reason: "the process heap cannot provide a buffer this large".into(),
            })?;
        chunks.resize(count, Chunk([MaybeUninit::new(0); SEGMENT_ALIGN]));
        Ok(AlignedBuffer { chunks, len })
    }

    /// A copy of `image` (a segment's bytes from a file, a pipe or
    /// [`image`](ManagedSegment::image)).
    pub fn from_image(image: &(impl ImageBytes + ?Sized)) -> Self {
        let image = image.image_bytes();
        let mut buf = Self::new(image.len());
        buf.copy_from_slice(image);
        buf
    }

    /// Reads exactly `len` bytes of a segment image from `r` (a file, a socket, a pipe)
    /// into a new buffer, ready to be opened. A length the heap cannot provide is an error
    /// of kind `OutOfMemory`, not a panic.
    pub fn read_from(mut r: impl std::io::Read, len: usize) -> std::io::Result<Self> {
        let mut buf = Self::try_new(len)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::OutOfMemory, e))?;
        // SAFETY: `try_new` initialised every byte (zero) and nothing has written the buffer
        // since, so this `[u8]` view covers initialised bytes only; it ends with the call.
        let bytes = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast(), len) };
        r.read_exact(bytes)?;
        Ok(buf)
    }

    /// Writes the buffer's bytes to `fd` (a file, a socket, a pipe), straight from memory
    /// to the kernel.
    pub fn write_to(&self, fd: impl std::os::fd::AsFd) -> std::io::Result<()> {
        crate::os::write_all_uninit(fd.as_fd(), self)
    }
}

impl std::ops::Deref for AlignedBuffer {
    type Target = [MaybeUninit<u8>];
    fn deref(&self) -> &[MaybeUninit<u8>] {
        // SAFETY: the chunks are bytes without padding, and they hold at least `len`.
        unsafe { std::slice::from_raw_parts(self.chunks.as_ptr().cast(), self.len) }
    }
}

impl std::ops::DerefMut for AlignedBuffer {
    fn deref_mut(&mut self) -> &mut [MaybeUninit<u8>] {
        // SAFETY: as in `deref`, and `&mut self` makes the borrow exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.chunks.as_mut_ptr().cast(), self.len) }
    }
}

impl From<&[u8]> for AlignedBuffer {
    fn from(image: &[u8]) -> Self {
        Self::from_image(image)
    }
}

impl std::fmt::Debug for AlignedBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuffer")
            .field("len", &self.len)
            .finish()
    }
}

/// A segment in a caller-owned buffer: [`Exclusive`] when it borrows the buffer mutably
/// (nothing else can reach it), so it hands out `&mut`. Another access mode or index is
/// chosen on the builder: `ManagedExternalBuffer::options().read_only().open(&image)`.
///
/// A writable segment takes the buffer as `[MaybeUninit<u8>]` (an [`AlignedBuffer`] is
/// one): it stores typed values, whose padding bytes are uninitialised afterwards, so a
/// `[u8]` the caller reads back once the segment is gone would hold uninitialised bytes.
/// A read-only segment never writes, so it also maps plain bytes.
pub type ManagedExternalBuffer<'a, M = Exclusive, I = HashIndex> =
    ManagedSegment<ExternalBuffer<'a>, M, I>;

fn check_len(len: usize) -> Result<()> {
    if len < MIN_SEGMENT_SIZE {
        return Err(Error::BufferTooSmall {
            len,
            min: MIN_SEGMENT_SIZE,
        });
    }
    Ok(())
}

/// Attaches the segment in `[base, base+len)`.
///
/// # Safety
/// The range stays borrowed for 'a (writable unless `M` is read-only) and, when `created`,
/// nobody else uses it.
unsafe fn attach<'a, M: Mode, I: IndexKind>(
    base: NonNull<u8>,
    len: usize,
    created: bool,
) -> Result<ManagedExternalBuffer<'a, M, I>> {
    check_len(len)?;
    let backing = ExternalBuffer {
        addr: base.as_ptr().addr(),
        _borrow: PhantomData,
    };
    // SAFETY: forwarded contract.
    unsafe { ManagedSegment::attach(backing, base, len, created, DEFAULT_INIT_TIMEOUT) }
}

impl<'a, I: IndexKind> SegmentBuilder<ExternalBuffer<'a>, Exclusive, I> {
    /// Formats `buf` as a new, empty segment. It must be aligned to 16 bytes: an
    /// [`AlignedBuffer`] is.
    pub fn create(
        self,
        buf: &'a mut [MaybeUninit<u8>],
    ) -> Result<ManagedExternalBuffer<'a, Exclusive, I>> {
        let base = NonNull::from(&mut *buf).cast::<u8>();
        // SAFETY: `buf` is writable and exclusively borrowed for 'a, as long as the segment.
        unsafe { attach(base, buf.len(), true) }
    }

    /// Opens the segment already in `buf` (formatted here or elsewhere, then copied).
    pub fn open(
        self,
        buf: &'a mut [MaybeUninit<u8>],
    ) -> Result<ManagedExternalBuffer<'a, Exclusive, I>> {
        let base = NonNull::from(&mut *buf).cast::<u8>();
        // SAFETY: as in `create`.
        unsafe { attach(base, buf.len(), false) }
    }
}

impl<'a, I: IndexKind> SegmentBuilder<ExternalBuffer<'a>, ReadOnly, I> {
    /// Opens the segment in a shared, read-only buffer: it can be inspected, not changed.
    pub fn open(
        self,
        buf: &'a (impl ImageBytes + ?Sized),
    ) -> Result<ManagedExternalBuffer<'a, ReadOnly, I>> {
        let buf = buf.image_bytes();
        let base = NonNull::from(buf).cast::<u8>();
        // SAFETY: `buf` is readable for 'a; the read-only mode never writes through it.
        unsafe { attach(base, buf.len(), false) }
    }
}

/// The shorthands: the builder with its defaults.
impl<'a> ManagedExternalBuffer<'a> {
    /// Formats `buf` as a new, empty segment. It must be aligned to 16 bytes: an
    /// [`AlignedBuffer`] is.
    pub fn create(buf: &'a mut [MaybeUninit<u8>]) -> Result<Self> {
        Self::options().create(buf)
    }

    /// Opens the segment already in `buf` (formatted here or elsewhere, then copied).
    pub fn open(buf: &'a mut [MaybeUninit<u8>]) -> Result<Self> {
        Self::options().open(buf)
    }
}
