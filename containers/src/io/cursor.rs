//! [`VecCursor`]: std's `Cursor<&mut Vec<u8>>` over a segment `Vec<u8>` in place.

use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::iter;

use shmkit_runtime::ShmMut;

use super::out_of_memory;
use crate::vec::{Vec, VecExt};

/// The bytes of a segment vector in place, as the `AsRef<[u8]>` std's `Cursor` reads and
/// seeks over: reading and seeking are std's own, writing is [`VecCursor`]'s.
struct InPlace<'a>(ShmMut<'a, Vec<u8>>);

impl AsRef<[u8]> for InPlace<'_> {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Reads, writes and seeks a segment `Vec<u8>` in place ([`VecExt::cursor`]), exactly as
/// std's `io::Cursor<&mut Vec<u8>>` does a heap vector: Boost's `vectorstream`.
///
/// The cursor starts at position 0. A read stops at the vector's end; a write overwrites
/// the bytes from the position on and appends what reaches past the end; a position past
/// the end is allowed (seek there freely), and a write there first fills the gap with
/// zeros. Where std's vector would panic (a full heap, a position beyond `usize`), this
/// one returns an error and changes nothing of that write: a full segment is
/// [`io::ErrorKind::OutOfMemory`] with the [`AllocError`](shmkit_runtime::AllocError)
/// inside, as from [`VecWriter`](crate::VecWriter); a position beyond `usize` is
/// [`io::ErrorKind::InvalidInput`]. What earlier writes wrote stays.
///
/// ```
/// use std::io::{Read, Seek, SeekFrom, Write};
/// use shmkit_containers::{Vec, VecExt};
/// use shmkit_runtime::ManagedHeapMemory;
///
/// let mut seg = ManagedHeapMemory::new(1 << 16)?;
/// seg.construct("bytes", Vec::<u8>::new())?;
/// let mut bytes = seg.find_mut::<Vec<u8>>("bytes")?.expect("constructed above");
/// let mut cursor = bytes.cursor();
/// cursor.write_all(b"hello")?;
/// cursor.seek(SeekFrom::Current(2))?; // past the end: the gap becomes zeros
/// cursor.write_all(b"!")?;
/// cursor.seek(SeekFrom::Start(1))?;
/// let mut two = [0; 2];
/// cursor.read_exact(&mut two)?;
/// assert_eq!((&two, cursor.position()), (b"el", 3));
/// assert_eq!(*bytes, *b"hello\0\0!");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct VecCursor<'a> {
    inner: io::Cursor<InPlace<'a>>,
}

impl<'a> VecCursor<'a> {
    /// A cursor at the start of `vec`.
    pub(crate) fn new(vec: ShmMut<'a, Vec<u8>>) -> Self {
        VecCursor {
            inner: io::Cursor::new(InPlace(vec)),
        }
    }

    /// The position, in bytes from the start (it may be past the end).
    pub fn position(&self) -> u64 {
        self.inner.position()
    }

    /// Moves to byte `pos` (past the end is allowed, as for [`Seek`]).
    pub fn set_position(&mut self, pos: u64) {
        self.inner.set_position(pos);
    }

    /// The vector.
    pub fn get_ref(&self) -> &Vec<u8> {
        &self.inner.get_ref().0
    }

    /// The vector's guard back, to use it as a vector again.
    pub fn into_inner(self) -> ShmMut<'a, Vec<u8>> {
        self.inner.into_inner().0
    }
}

impl Read for VecCursor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_exact(buf)
    }
}

impl BufRead for VecCursor<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.inner.consume(amt);
    }
}

impl Seek for VecCursor<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }

    fn stream_position(&mut self) -> io::Result<u64> {
        Ok(self.inner.position())
    }
}

impl Write for VecCursor<'_> {
    /// Writes all of `buf` at the position, or nothing: room for the whole write is made
    /// first, so a full segment changes no byte (not even those it would overwrite).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let at = usize::try_from(self.inner.position())
            .ok()
            .filter(|at| at.checked_add(buf.len()).is_some())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "cursor position exceeds maximum possible vector length",
                )
            })?;
        let vec = &mut self.inner.get_mut().0;
        let len = vec.len();
        vec.reserve((at + buf.len()).saturating_sub(len))
            .map_err(out_of_memory)?;
        // Reserved above, so neither append can fail; `?` keeps them honest all the same.
        if at > len {
            vec.extend(iter::repeat_n(0, at - len))
                .map_err(out_of_memory)?;
        }
        let (over, beyond) = buf.split_at(len.saturating_sub(at).min(buf.len()));
        vec.as_mut_slice()[at..at + over.len()].copy_from_slice(over);
        vec.extend_from_slice(beyond).map_err(out_of_memory)?;
        self.inner.set_position((at + buf.len()) as u64);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
