//! [`FixedBuf`]: a fixed-size byte buffer that lives in a segment, Boost's `bufferstream`.

use core::fmt;
use core::mem::offset_of;
use core::str::Utf8Error;
use std::io;

use shmkit_runtime::layout::compound_fingerprint;
use shmkit_runtime::{Invalid, PositionIndependent, ShmImmutable, ShmSafe};

/// `N` bytes and a length, in place in a segment: what Boost's `bufferstream` formats into
/// and parses from, as std's [`io::Write`] and [`fmt::Write`]. It never allocates, so it
/// works in a full segment, and a full buffer is an error, never a reallocation.
///
/// # Layout and bytes from elsewhere
///
/// `#[repr(C)]`: the length as a `u64` (as a [`Vec`](crate::Vec)'s, the same to every
/// reader), then the `N` bytes; all-zero bytes, like [`FixedBuf::new`], are an empty
/// buffer. The first `len` bytes are the contents and every byte is initialised (writes
/// go through the buffer, which starts zeroed), so any bytes are valid contents; a
/// length above `N` is refused when the buffer is found in a mapping that did not write
/// it (`InvalidValue` naming `len`).
///
/// # Mutation
///
/// It is plain data ([`PositionIndependent`]), so every guard of it derefs mutably: the
/// `ShmMut` of `find_mut`, a derived accessor (`db.line_mut()`), a `Mutex` guard
/// (`write!(db.line.lock()?, "{x}")`). Its methods are its own; no extension trait is
/// needed.
///
/// # Writing bytes or text
///
/// - [`io::Write`] appends what fits, as std's `io::Cursor<&mut [u8]>` does: a `write`
///   that finds room for part of its bytes writes that part, and one that finds none is
///   an [`io::ErrorKind::WriteZero`] error saying the buffer is full. So a `write_all`
///   (or an `io::Write` `write!`) that does not fit writes what fits, then fails.
/// - [`fmt::Write`] is all or nothing, so that the contents stay UTF-8: a `write_str`
///   that does not fit writes nothing ([`fmt::Error`]), and a `write!` that fails leaves
///   the buffer as it was before it (what it appended is taken back).
///
/// Import the one you mean: with both `std::io::Write` and `std::fmt::Write` in scope,
/// `write!(buf, ..)` is ambiguous.
///
/// # Reading
///
/// [`as_bytes`](Self::as_bytes) is a `&[u8]`, which is [`io::Read`] and [`io::BufRead`];
/// `io::Cursor::new(buf.as_bytes())` seeks too. [`as_str`](Self::as_str) checks that the
/// bytes are UTF-8.
///
/// ```
/// use core::fmt::Write;
/// use shmkit_containers::FixedBuf;
/// use shmkit_runtime::ManagedHeapMemory;
///
/// let mut seg = ManagedHeapMemory::new(1 << 16)?;
/// seg.construct("line", FixedBuf::<16>::new())?;
/// let mut line = seg.find_mut::<FixedBuf<16>>("line")?.expect("constructed above");
/// write!(line, "{} {} {}", 1, 22, 333)?;
/// assert_eq!(line.as_str()?, "1 22 333");
/// assert!(write!(line, " and more than fits").is_err());
/// assert_eq!(line.as_str()?, "1 22 333"); // as before the failed write!
/// let sum: u32 = line.as_str()?.split(' ').map(|n| n.parse::<u32>()).sum::<Result<_, _>>()?;
/// assert_eq!(sum, 356);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[repr(C)]
pub struct FixedBuf<const N: usize> {
    /// How many of `bytes` are the contents; at most `N`.
    len: u64,
    bytes: [u8; N],
}

impl<const N: usize> FixedBuf<N> {
    /// An empty buffer (all zero bytes).
    pub const fn new() -> Self {
        FixedBuf {
            len: 0,
            bytes: [0; N],
        }
    }

    /// The number of bytes written.
    pub fn len(&self) -> usize {
        // At most `N`, a `usize`: the buffer's methods keep it so, `validate` checks it.
        self.len as usize
    }

    /// Whether nothing is written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `N`, the number of bytes the buffer holds when full.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The bytes written.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len()]
    }

    /// The bytes written as text; an error when they are not UTF-8 (bytes written through
    /// [`io::Write`] may be anything, or a character cut at the end of a full buffer).
    pub fn as_str(&self) -> Result<&str, Utf8Error> {
        core::str::from_utf8(self.as_bytes())
    }

    /// Keeps the first `len` bytes (all when there are not more).
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.len = len as u64;
        }
    }

    /// Empties the buffer.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends as many of `bytes` as fit and returns how many.
    fn append(&mut self, bytes: &[u8]) -> usize {
        let len = self.len();
        let n = bytes.len().min(N - len);
        self.bytes[len..len + n].copy_from_slice(&bytes[..n]);
        self.len += n as u64;
        n
    }
}

impl<const N: usize> Default for FixedBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Debug for FixedBuf<N> {
    /// The contents as a byte string: `FixedBuf<8>(b"1 2\n")`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FixedBuf<{N}>(b\"{}\")", self.as_bytes().escape_ascii())
    }
}

impl<const N: usize> io::Write for FixedBuf<N> {
    /// Appends what fits of `buf`; when nothing fits, an [`io::ErrorKind::WriteZero`]
    /// error saying the buffer is full.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.append(buf) {
            0 if !buf.is_empty() => Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("the FixedBuf of {N} bytes is full"),
            )),
            n => Ok(n),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<const N: usize> fmt::Write for FixedBuf<N> {
    /// Appends all of `s`, or nothing ([`fmt::Error`]) when it does not fit, so that no
    /// character is cut.
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s.len() > N - self.len() {
            return Err(fmt::Error);
        }
        self.append(s.as_bytes());
        Ok(())
    }

    /// A `write!` that fails leaves the buffer as it was before it.
    fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> fmt::Result {
        let before = self.len();
        let written = fmt::write(self, args);
        if written.is_err() {
            self.truncate(before);
        }
        written
    }
}

// SAFETY: plain data (a `u64` and bytes), with no pointer to relocate and no drop glue;
// `validate` reads the length field only and accepts exactly the lengths the methods rely
// on (at most `N`); any initialised bytes are valid contents.
unsafe impl<const N: usize> ShmSafe for FixedBuf<N> {
    const LAYOUT_FINGERPRINT: u64 = compound_fingerprint("FixedBuf", &[N as u64]);

    /// A length above `N` must be refused.
    const ALL_BIT_PATTERNS_VALID: bool = false;

    unsafe fn validate(value: *const Self) -> Result<(), Invalid> {
        // SAFETY: the caller's contract: `value` is aligned and readable for a `Self`
        // whose fields' bytes are initialised; this reads the `len` field alone.
        let len = unsafe { (&raw const (*value).len).read() };
        if len <= N as u64 {
            Ok(())
        } else {
            Err(Invalid::new("a FixedBuf length of at most its capacity N")
                .within("len", offset_of!(Self, len)))
        }
    }

    /// The layout fingerprint, the same in every program.
    fn type_fingerprint() -> u64 {
        Self::LAYOUT_FINGERPRINT
    }
}

// SAFETY: no pointer, so a byte copy anywhere is the same buffer.
unsafe impl<const N: usize> PositionIndependent for FixedBuf<N> {}
// SAFETY: no interior mutability: the bytes change only through `&mut`.
unsafe impl<const N: usize> ShmImmutable for FixedBuf<N> {}
