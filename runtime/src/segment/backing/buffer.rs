//! Managed external buffer: a segment in memory the caller owns (an [`AlignedBuffer`],
//! made here or received from elsewhere; read-only, any bytes). The segment borrows it for
//! its lifetime.

use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

use crate::alloc::{MemoryAlgorithm, Tlsf};
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
    fn creator_at_work(&self, _creator: u32, _owner: &crate::robust::Owner) -> Option<bool> {
        Some(false)
    }
    /// The buffer is borrowed by this segment alone: no other mapping can hold its locks.
    fn private_copy(&self) -> bool {
        true
    }
}

/// A byte buffer on the heap, aligned as a segment needs (16 bytes): the memory of an
/// external-buffer segment, to create one, to receive a segment image for reopening, and
/// to pass one on.
///
/// Only shmkit writes it: its bytes are zero when it is made and change only through a
/// segment in it, a copy of an image ([`from_image`](Self::from_image),
/// [`read_from`](Self::read_from)) or initialised bytes
/// ([`write_all_at`](Self::write_all_at)). So a segment opened in it never meets bytes
/// that nobody initialised where it reads its own words.
///
/// It reads as [`MaybeUninit<u8>`]: a segment in it stores typed values, whose padding
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
///
/// Safe code cannot leave bytes of it uninitialised by hand (the buffer is no `DerefMut`):
///
/// ```compile_fail,E0594
/// use std::mem::MaybeUninit;
/// let mut buf = shmkit_runtime::AlignedBuffer::new(4096);
/// buf[20] = MaybeUninit::uninit();
/// ```
#[derive(Clone)]
pub struct AlignedBuffer {
    chunks: Vec<Chunk>,
    len: usize,
    /// False once the bytes may include uninitialised ones (copied from a segment in
    /// place, or lent to a writable segment, which stores values with padding): such a
    /// buffer is not edited by [`write_all_at`](Self::write_all_at), since forged links
    /// next to uninitialised bytes could make a later open read them as integers.
    initialised: bool,
}

/// The buffer's storage unit: its alignment is the buffer's.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Chunk([MaybeUninit<u8>; SEGMENT_ALIGN]);

const _: () = assert!(std::mem::align_of::<Chunk>() == SEGMENT_ALIGN);

/// The bytes of a segment in place ([`image`](ManagedSegment::image) of a heap segment):
/// what its header and allocator words say is where they say it. Read as
/// [`MaybeUninit<u8>`], since the padding of stored values is uninitialised; a slice of it
/// is no image (its words would be read at other places).
#[repr(transparent)]
pub struct SegmentImage([MaybeUninit<u8>]);

impl SegmentImage {
    /// # Safety
    /// `bytes` are a segment's memory in place: initialised when it was made, and every
    /// byte initialised since except the padding of values that the segment (or the image
    /// it was copied from, at the same positions) stored.
    pub(crate) unsafe fn of_segment(bytes: &[MaybeUninit<u8>]) -> &Self {
        // SAFETY: `repr(transparent)` over `[MaybeUninit<u8>]`.
        unsafe { &*(std::ptr::from_ref(bytes) as *const Self) }
    }
}

impl std::ops::Deref for SegmentImage {
    type Target = [MaybeUninit<u8>];
    fn deref(&self) -> &[MaybeUninit<u8>] {
        &self.0
    }
}

impl std::fmt::Debug for SegmentImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentImage")
            .field("len", &self.0.len())
            .finish()
    }
}

mod sealed {
    pub trait Sealed {
        /// Whether every byte is initialised: plain bytes are, a segment's bytes in place
        /// need not be (the padding of the values it stored).
        fn initialised(&self) -> bool {
            true
        }
    }
}

/// Bytes that hold a segment image: plain bytes (read from a file, a pipe), a segment's
/// bytes in place ([`SegmentImage`]) or an [`AlignedBuffer`]. Copying them and mapping
/// them read-only never reads them as initialised.
///
/// Sealed, and not implemented for `[MaybeUninit<u8>]`: bytes safe code made could be
/// left uninitialised (or be an image's bytes shifted, padding where a header word is
/// read), and opening reads a segment's words as integers.
///
/// ```compile_fail,E0277
/// use std::mem::MaybeUninit;
/// let raw = [MaybeUninit::<u8>::uninit(); 4096];
/// let _ = shmkit_runtime::ManagedHeapMemory::from_image(&raw[..]);
/// ```
/// ```compile_fail,E0277
/// let mut heap = shmkit_runtime::ManagedHeapMemory::new(4096).unwrap();
/// let _ = shmkit_runtime::AlignedBuffer::from_image(&heap.image()[8..]);
/// ```
/// ```compile_fail,E0277
/// use std::mem::MaybeUninit;
/// struct Forged([MaybeUninit<u8>; 4096]);
/// impl shmkit_runtime::ImageBytes for Forged {
///     fn image_bytes(&self) -> &[MaybeUninit<u8>] {
///         &self.0
///     }
/// }
/// ```
pub trait ImageBytes: sealed::Sealed {
    /// The bytes, as possibly uninitialised bytes.
    fn image_bytes(&self) -> &[MaybeUninit<u8>];
}

impl sealed::Sealed for [u8] {}
impl ImageBytes for [u8] {
    fn image_bytes(&self) -> &[MaybeUninit<u8>] {
        // SAFETY: same layout; a shared borrow never writes (so never de-initialises) them.
        unsafe { std::slice::from_raw_parts(self.as_ptr().cast(), self.len()) }
    }
}

impl<const N: usize> sealed::Sealed for [u8; N] {}
impl<const N: usize> ImageBytes for [u8; N] {
    fn image_bytes(&self) -> &[MaybeUninit<u8>] {
        self[..].image_bytes()
    }
}

impl sealed::Sealed for Vec<u8> {}
impl ImageBytes for Vec<u8> {
    fn image_bytes(&self) -> &[MaybeUninit<u8>] {
        self[..].image_bytes()
    }
}

impl sealed::Sealed for SegmentImage {
    fn initialised(&self) -> bool {
        false
    }
}
impl ImageBytes for SegmentImage {
    fn image_bytes(&self) -> &[MaybeUninit<u8>] {
        self
    }
}

impl sealed::Sealed for AlignedBuffer {
    fn initialised(&self) -> bool {
        self.initialised
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
            initialised: true,
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
        Ok(AlignedBuffer {
            chunks,
            len,
            initialised: true,
        })
    }

    /// A copy of `image` (a segment's bytes from a file, a pipe or
    /// [`image`](ManagedSegment::image)).
    pub fn from_image(image: &(impl ImageBytes + ?Sized)) -> Self {
        let initialised = image.initialised();
        let image = image.image_bytes();
        let mut buf = Self::new(image.len());
        buf.bytes_mut().copy_from_slice(image);
        buf.initialised = initialised;
        buf
    }

    /// Reads exactly `len` bytes of a segment image from `r` (a file, a socket, a pipe)
    /// into a new buffer, ready to be opened. A length the heap cannot provide is an error
    /// of kind `OutOfMemory`, not a panic.
    pub fn read_from(mut r: impl std::io::Read, len: usize) -> std::io::Result<Self> {
        let mut buf = Self::try_new(len)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::OutOfMemory, e))?;
        let bytes = buf.bytes_mut();
        // SAFETY: `try_new` initialised every byte (zero) and nothing has written the buffer
        // since, so this `[u8]` view covers initialised bytes only; it ends with the call.
        let bytes = unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast(), len) };
        r.read_exact(bytes)?;
        Ok(buf)
    }

    /// Writes the buffer's bytes to `fd` (a file, a socket, a pipe), straight from memory
    /// to the kernel.
    pub fn write_to(&self, fd: impl std::os::fd::AsFd) -> std::io::Result<()> {
        crate::os::write_all_uninit(fd.as_fd(), self)
    }

    /// Writes `buf` at `offset`, as [`FileExt::write_all_at`](std::os::unix::fs::FileExt)
    /// does to a file (e.g. to patch a header word of a received image). An error of kind
    /// `InvalidInput` when it would reach past the end; the buffer is then unchanged.
    ///
    /// Only a buffer whose every byte is initialised is edited: one read from a file or a
    /// pipe, or made from plain bytes. A copy of a segment in place
    /// ([`image`](ManagedSegment::image)) or a buffer a writable segment used may hold the
    /// uninitialised padding of stored values, and edited links could make a later open
    /// read that padding as integers; such a buffer is refused (`InvalidInput`). To edit
    /// one, write it out ([`write_to`](Self::write_to)) and read it back
    /// ([`read_from`](Self::read_from)): the kernel's copy is initialised.
    pub fn write_all_at(&mut self, buf: &[u8], offset: usize) -> std::io::Result<()> {
        if !self.initialised {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "this buffer may hold uninitialised bytes (the padding of values a segment \
                 stored): write it out and read it back (`write_to`, `read_from`) to edit it",
            ));
        }
        let len = self.len;
        let dst = offset
            .checked_add(buf.len())
            .and_then(|end| self.bytes_mut().get_mut(offset..end))
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "{} bytes at offset {offset} reach past the end of a {len}-byte buffer",
                        buf.len()
                    ),
                )
            })?;
        dst.copy_from_slice(buf.image_bytes());
        Ok(())
    }

    /// Shortens the buffer to `len` bytes, as [`Vec::truncate`]: the bytes keep their
    /// positions (a truncated image opens as `Truncated`). No effect if it is not longer.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The bytes, writable: for shmkit's own writes only (see the type's contract).
    fn bytes_mut(&mut self) -> &mut [MaybeUninit<u8>] {
        // SAFETY: as in `deref`, and `&mut self` makes the borrow exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.chunks.as_mut_ptr().cast(), self.len) }
    }
}

impl std::ops::Deref for AlignedBuffer {
    type Target = [MaybeUninit<u8>];
    fn deref(&self) -> &[MaybeUninit<u8>] {
        // SAFETY: the chunks are bytes without padding, and they hold at least `len`.
        unsafe { std::slice::from_raw_parts(self.chunks.as_ptr().cast(), self.len) }
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
/// A writable segment takes an [`AlignedBuffer`]: a buffer only shmkit writes, so opening
/// never reads bytes nobody initialised, and the padding of the values the segment stores
/// (uninitialised after the store) stays inside a buffer that reads as `MaybeUninit`.
/// Neither holds for memory safe code lends as `[MaybeUninit<u8>]` (it may be
/// uninitialised) or as `[u8]` (the caller would read the padding as bytes afterwards), so
/// those do not compile. A read-only segment never writes, so it also maps plain bytes.
///
/// ```compile_fail,E0308
/// use std::mem::MaybeUninit;
/// let mut raw = [MaybeUninit::<u8>::uninit(); 4096];
/// let _ = shmkit_runtime::ManagedExternalBuffer::open(&mut raw[..]);
/// ```
/// ```compile_fail,E0308
/// let mut bytes = vec![0u8; 4096];
/// let _ = shmkit_runtime::ManagedExternalBuffer::create(&mut bytes[..]);
/// ```
pub type ManagedExternalBuffer<'a, M = Exclusive, I = HashIndex, A = Tlsf> =
    ManagedSegment<ExternalBuffer<'a>, M, I, A>;

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
unsafe fn attach<'a, M: Mode, I: IndexKind, A: MemoryAlgorithm>(
    base: NonNull<u8>,
    len: usize,
    created: bool,
) -> Result<ManagedExternalBuffer<'a, M, I, A>> {
    check_len(len)?;
    let backing = ExternalBuffer {
        addr: base.as_ptr().addr(),
        _borrow: PhantomData,
    };
    // SAFETY: forwarded contract.
    unsafe { ManagedSegment::attach(backing, base, len, created, DEFAULT_INIT_TIMEOUT) }
}

impl<'a, I: IndexKind, A: MemoryAlgorithm> SegmentBuilder<ExternalBuffer<'a>, Exclusive, I, A> {
    /// Formats `buf` as a new, empty segment.
    pub fn create(
        self,
        buf: &'a mut AlignedBuffer,
    ) -> Result<ManagedExternalBuffer<'a, Exclusive, I, A>> {
        buf.initialised = false;
        let buf = buf.bytes_mut();
        let base = NonNull::from(&mut *buf).cast::<u8>();
        // SAFETY: `buf` is writable and exclusively borrowed for 'a, as long as the segment.
        unsafe { attach(base, buf.len(), true) }
    }

    /// Opens the segment already in `buf` (formatted here or elsewhere, then copied).
    pub fn open(
        self,
        buf: &'a mut AlignedBuffer,
    ) -> Result<ManagedExternalBuffer<'a, Exclusive, I, A>> {
        buf.initialised = false;
        let buf = buf.bytes_mut();
        let base = NonNull::from(&mut *buf).cast::<u8>();
        // SAFETY: as in `create`.
        unsafe { attach(base, buf.len(), false) }
    }
}

impl<'a, I: IndexKind, A: MemoryAlgorithm> SegmentBuilder<ExternalBuffer<'a>, ReadOnly, I, A> {
    /// Opens the segment in a shared, read-only buffer: it can be inspected, not changed.
    pub fn open(
        self,
        buf: &'a (impl ImageBytes + ?Sized),
    ) -> Result<ManagedExternalBuffer<'a, ReadOnly, I, A>> {
        let buf = buf.image_bytes();
        let base = NonNull::from(buf).cast::<u8>();
        // SAFETY: `buf` is readable for 'a; the read-only mode never writes through it.
        unsafe { attach(base, buf.len(), false) }
    }
}

/// The shorthands: the builder with its defaults.
impl<'a> ManagedExternalBuffer<'a> {
    /// Formats `buf` as a new, empty segment.
    pub fn create(buf: &'a mut AlignedBuffer) -> Result<Self> {
        Self::options().create(buf)
    }

    /// Opens the segment already in `buf` (formatted here or elsewhere, then copied).
    pub fn open(buf: &'a mut AlignedBuffer) -> Result<Self> {
        Self::options().open(buf)
    }
}
