//! Managed external buffer: a segment in memory the caller owns (a static array, a
//! buffer received from elsewhere). The segment borrows it for its lifetime.

use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::error::{Error, Result};
use crate::manager::header::{DEFAULT_INIT_TIMEOUT, MIN_SEGMENT_SIZE};
use crate::objects::{HashIndex, IndexKind};
use crate::segment::managed::{Backing, ManagedSegment};
use crate::segment::mode::{ReadOnly, ReadWrite};

/// The caller's buffer, borrowed by a segment.
pub struct ExternalBuffer<'a> {
    addr: usize,
    _borrow: PhantomData<&'a mut [u8]>,
}

impl Backing for ExternalBuffer<'_> {
    fn describe(&self) -> String {
        format!("external buffer at {:#x}", self.addr)
    }
}

/// A segment in a caller-owned buffer.
pub type ManagedExternalBuffer<'a> = BasicManagedExternalBuffer<'a, HashIndex>;
/// [`ManagedExternalBuffer`] with another name index.
pub type BasicManagedExternalBuffer<'a, I> = ManagedSegment<ExternalBuffer<'a>, ReadWrite, I>;

fn check_len(len: usize) -> Result<()> {
    if len < MIN_SEGMENT_SIZE {
        return Err(Error::BufferTooSmall {
            len,
            min: MIN_SEGMENT_SIZE,
        });
    }
    Ok(())
}

fn backing<'a>(base: NonNull<u8>) -> ExternalBuffer<'a> {
    ExternalBuffer {
        addr: base.as_ptr().addr(),
        _borrow: PhantomData,
    }
}

impl<'a, I: IndexKind> ManagedSegment<ExternalBuffer<'a>, ReadWrite, I> {
    /// Formats `buf` as a new, empty segment. It must be aligned to 16 bytes.
    pub fn create(buf: &'a mut [u8]) -> Result<Self> {
        check_len(buf.len())?;
        let base = NonNull::from(&mut *buf).cast::<u8>();
        // SAFETY: `buf` is writable and exclusively borrowed for 'a, as long as the segment.
        unsafe {
            ManagedSegment::attach(backing(base), base, buf.len(), true, DEFAULT_INIT_TIMEOUT)
        }
    }

    /// Opens the segment already in `buf` (formatted here or elsewhere, then copied).
    pub fn open(buf: &'a mut [u8]) -> Result<Self> {
        check_len(buf.len())?;
        let base = NonNull::from(&mut *buf).cast::<u8>();
        // SAFETY: as in `create`.
        unsafe {
            ManagedSegment::attach(backing(base), base, buf.len(), false, DEFAULT_INIT_TIMEOUT)
        }
    }

    /// Opens the segment in a shared, read-only buffer: it can be inspected, not changed.
    pub fn open_read_only(
        buf: &'a [u8],
    ) -> Result<ManagedSegment<ExternalBuffer<'a>, ReadOnly, I>> {
        check_len(buf.len())?;
        let base = NonNull::from(buf).cast::<u8>();
        // SAFETY: `buf` is readable for 'a; the read-only mode never writes through it.
        unsafe {
            ManagedSegment::attach(backing(base), base, buf.len(), false, DEFAULT_INIT_TIMEOUT)
        }
    }
}
