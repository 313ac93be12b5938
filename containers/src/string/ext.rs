//! [`StringExt`], the mutating methods of [`String`] on whatever gives in-place access to
//! one, and what they return: [`StringWriter`], [`NotCharBoundary`], [`StringInsertError`].

use core::fmt;

use shmkit_runtime::{AllocError, Error, ShmDerefMut, ShmMut};

use super::String;
use crate::vec::{Vec, VecExt};

/// The mutating methods of the segment [`String`], with std's names and semantics, on
/// anything that gives in-place access to one: a [`ShmMut`] (from `root_mut`, `find_mut`
/// or a derived accessor) and the guards of shmkit's locks. Brought in by
/// `use shmkit::prelude::*`.
///
/// Where std panics, these return an error or `None`: allocation failure is an
/// [`AllocError`] that leaves the string exactly as it was; a byte index that is not on a
/// character boundary (inside a character, or past the end) is [`NotCharBoundary`] or
/// `None`, and nothing changes.
///
/// ```
/// use core::fmt::Write;
/// use shmkit_containers::{String, StringExt};
/// use shmkit_runtime::ManagedHeapMemory;
///
/// let mut seg = ManagedHeapMemory::new(1 << 16)?;
/// seg.construct("s", String::new())?;
/// let mut s = seg.find_mut::<String>("s")?.expect("constructed above");
/// write!(s.writer(), "{} + {} = {}", 1, 2, 3).expect("the segment has room");
/// s.insert_str(0, "→ ")?;
/// assert_eq!(*s, "→ 1 + 2 = 3");
/// assert!(s.truncate(1).is_err()); // inside the arrow, which takes 3 bytes
/// assert_eq!(s.remove(0), Some('→'));
/// s.retain(|c| c.is_ascii_digit());
/// assert_eq!(*s, "123");
/// # Ok::<(), shmkit_runtime::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` gives no in-place access to a segment `String`",
    label = "not a guard of a `String` in place",
    note = "lock the string's Mutex (`db.name.lock()?.push_str(s)?`), or reach it through `root_mut`/`find_mut` of an exclusive mapping and the accessors #[derive(ShmSafe)] generates (`db.name_mut().push_str(s)?`)"
)]
pub trait StringExt: ShmDerefMut<Target = String> {
    /// Appends `s`.
    fn push_str(&mut self, s: &str) -> Result<(), AllocError>;

    /// Appends `c`.
    fn push(&mut self, c: char) -> Result<(), AllocError>;

    /// Removes and returns the last character; None when empty.
    fn pop(&mut self) -> Option<char>;

    /// Inserts `c` at byte `index`, which must be a character boundary (`len` appends).
    fn insert(&mut self, index: usize, c: char) -> Result<(), StringInsertError>;

    /// Inserts `s` at byte `index`, which must be a character boundary (`len` appends).
    fn insert_str(&mut self, index: usize, s: &str) -> Result<(), StringInsertError>;

    /// Removes and returns the character that starts at byte `index`; None (and nothing
    /// removed) when `index` is not the start of a character, where std panics.
    fn remove(&mut self, index: usize) -> Option<char>;

    /// Shortens the string to `new_len` bytes (nothing when it is not longer). Where std
    /// panics, a `new_len` inside a character is [`NotCharBoundary`] and changes nothing.
    fn truncate(&mut self, new_len: usize) -> Result<(), NotCharBoundary>;

    /// Empties the string; the capacity stays.
    fn clear(&mut self);

    /// Makes room for at least `additional` more bytes.
    fn reserve(&mut self, additional: usize) -> Result<(), AllocError>;

    /// Gives the capacity beyond the length back to the segment (in place).
    fn shrink_to_fit(&mut self) -> Result<(), AllocError>;

    /// Keeps only the characters `f` says yes to, in order (`f` sees each once).
    fn retain(&mut self, f: impl FnMut(char) -> bool);

    /// A [`fmt::Write`] that appends to the string: `write!(s.writer(), "{x}")`.
    fn writer(&mut self) -> StringWriter<'_>;
}

/// The bytes of the string, for the vector's operations. Private: every caller here keeps
/// them UTF-8.
///
/// It takes the string's own guard, not the caller's `P`: a `ShmDerefMut` is safe to
/// implement, so its `deref` may show another string than `as_shm_mut` hands out (or each
/// call another one). Every method takes `as_shm_mut` once and decides (where the
/// characters start, how long the text is) on that guard, which is the string it changes.
#[inline(always)]
fn bytes(s: ShmMut<'_, String>) -> ShmMut<'_, Vec<u8>> {
    // SAFETY: the projection returns the one field of the string, in place, and moves
    // nothing.
    unsafe { s.map_unchecked(|s| &mut s.bytes) }
}

/// Appends bytes that the capacity already has room for, which cannot fail.
fn append_reserved(bytes: &mut ShmMut<'_, Vec<u8>>, more: &[u8]) {
    let appended = bytes.extend_from_slice(more);
    debug_assert!(
        appended.is_ok(),
        "appending into reserved room: {appended:?}"
    );
}

/// Replaces the `remove` bytes at `at` (a character boundary, as is `at + remove`) by
/// `insert` (UTF-8): room first (an error changes nothing), then the length is lowered
/// to `at` and the new text and the rest are appended again (see the module docs).
fn splice(
    mut bytes: ShmMut<'_, Vec<u8>>,
    at: usize,
    remove: usize,
    insert: &[u8],
) -> Result<(), AllocError> {
    if at == bytes.len() {
        return bytes.extend_from_slice(insert);
    }
    bytes.reserve(insert.len().saturating_sub(remove))?;
    let rest = bytes[at + remove..].to_vec();
    bytes.truncate(at);
    append_reserved(&mut bytes, insert);
    append_reserved(&mut bytes, &rest);
    Ok(())
}

impl<P: ShmDerefMut<Target = String> + ?Sized> StringExt for P {
    #[inline]
    fn push_str(&mut self, s: &str) -> Result<(), AllocError> {
        bytes(self.as_shm_mut()).extend_from_slice(s.as_bytes())
    }

    #[inline]
    fn push(&mut self, c: char) -> Result<(), AllocError> {
        self.push_str(c.encode_utf8(&mut [0; 4]))
    }

    fn pop(&mut self) -> Option<char> {
        let this = self.as_shm_mut();
        let c = this.chars().next_back()?;
        let len = this.len() - c.len_utf8();
        bytes(this).truncate(len);
        Some(c)
    }

    fn insert(&mut self, index: usize, c: char) -> Result<(), StringInsertError> {
        self.insert_str(index, c.encode_utf8(&mut [0; 4]))
    }

    fn insert_str(&mut self, index: usize, s: &str) -> Result<(), StringInsertError> {
        let this = self.as_shm_mut();
        if !this.is_char_boundary(index) {
            return Err(NotCharBoundary::at(index, &this).into());
        }
        Ok(splice(bytes(this), index, 0, s.as_bytes())?)
    }

    fn remove(&mut self, index: usize) -> Option<char> {
        let this = self.as_shm_mut();
        let c = this.get(index..)?.chars().next()?;
        // Removing shrinks: the room is there already.
        splice(bytes(this), index, c.len_utf8(), &[]).ok()?;
        Some(c)
    }

    fn truncate(&mut self, new_len: usize) -> Result<(), NotCharBoundary> {
        let this = self.as_shm_mut();
        if new_len >= this.len() {
            return Ok(());
        }
        if !this.is_char_boundary(new_len) {
            return Err(NotCharBoundary::at(new_len, &this));
        }
        bytes(this).truncate(new_len);
        Ok(())
    }

    fn clear(&mut self) {
        bytes(self.as_shm_mut()).clear();
    }

    fn reserve(&mut self, additional: usize) -> Result<(), AllocError> {
        bytes(self.as_shm_mut()).reserve(additional)
    }

    fn shrink_to_fit(&mut self) -> Result<(), AllocError> {
        bytes(self.as_shm_mut()).shrink_to_fit()
    }

    fn retain(&mut self, mut f: impl FnMut(char) -> bool) {
        let this = self.as_shm_mut();
        // Where the first character to drop starts, and what is kept after it.
        let mut first_dropped = None;
        let mut kept_after = std::string::String::new();
        for (i, c) in this.char_indices() {
            match (f(c), first_dropped) {
                (false, None) => first_dropped = Some(i),
                (true, Some(_)) => kept_after.push(c),
                _ => {}
            }
        }
        if let Some(at) = first_dropped {
            let mut bytes = bytes(this);
            bytes.truncate(at);
            append_reserved(&mut bytes, kept_after.as_bytes());
        }
    }

    fn writer(&mut self) -> StringWriter<'_> {
        StringWriter {
            string: self.as_shm_mut(),
        }
    }
}

/// Appends what is written to a segment [`String`] ([`StringExt::writer`]). A full segment
/// is [`fmt::Error`], and a `write!` that fails leaves the string as it was before it
/// (the pieces it appended are taken back).
///
/// The guard itself is no [`fmt::Write`] (it is the string's guard, whose methods are
/// [`StringExt`]'s): `write!` takes the writer, made anew for each call or kept for
/// several. For a fixed-size text buffer that never allocates, see
/// [`FixedBuf`](crate::FixedBuf).
///
/// ```
/// use core::fmt::Write;
/// use shmkit_containers::{String, StringExt};
/// use shmkit_runtime::ManagedHeapMemory;
///
/// let mut seg = ManagedHeapMemory::new(1 << 16)?;
/// seg.construct("s", String::new())?;
/// let mut s = seg.find_mut::<String>("s")?.expect("constructed above");
/// let mut w = s.writer();
/// for i in 1..=3 {
///     writeln!(w, "line {i}").expect("the segment has room");
/// }
/// // Larger than the segment: nothing of this `write!` stays.
/// let large = "x".repeat(1 << 17);
/// assert!(write!(w, "more, then {large}").is_err());
/// assert_eq!(*s, "line 1\nline 2\nline 3\n");
/// # Ok::<(), shmkit_runtime::Error>(())
/// ```
pub struct StringWriter<'a> {
    string: ShmMut<'a, String>,
}

impl fmt::Write for StringWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.string.push_str(s).map_err(|_| fmt::Error)
    }

    fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> fmt::Result {
        let before = self.string.len();
        let written = fmt::write(self, args);
        if written.is_err() {
            // What was there before ends on a character boundary.
            bytes(self.string.as_mut()).truncate(before);
        }
        written
    }
}

/// A byte index of a [`String`] that is not a character boundary: inside a character, or
/// past the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotCharBoundary {
    /// The index asked for.
    pub index: usize,
    /// The string's length in bytes.
    pub len: usize,
}

impl NotCharBoundary {
    fn at(index: usize, s: &str) -> Self {
        NotCharBoundary {
            index,
            len: s.len(),
        }
    }
}

impl fmt::Display for NotCharBoundary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let NotCharBoundary { index, len } = self;
        if index > len {
            write!(
                f,
                "byte index {index} is past the end of a string of {len} bytes"
            )
        } else {
            write!(
                f,
                "byte index {index} is inside a character of a string of {len} bytes"
            )
        }
    }
}

impl std::error::Error for NotCharBoundary {}

impl From<NotCharBoundary> for Error {
    /// [`Error::IndexOutOfBounds`]: the index is out of the string's character boundaries.
    fn from(e: NotCharBoundary) -> Error {
        Error::IndexOutOfBounds {
            index: e.index,
            len: e.len,
        }
    }
}

/// Why [`StringExt::insert`] or [`StringExt::insert_str`] inserted nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StringInsertError {
    /// The index is not a character boundary.
    NotCharBoundary(NotCharBoundary),
    /// The segment has no room for a larger buffer.
    Alloc(AllocError),
}

impl From<NotCharBoundary> for StringInsertError {
    fn from(e: NotCharBoundary) -> Self {
        StringInsertError::NotCharBoundary(e)
    }
}

impl From<AllocError> for StringInsertError {
    fn from(e: AllocError) -> Self {
        StringInsertError::Alloc(e)
    }
}

impl fmt::Display for StringInsertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StringInsertError::NotCharBoundary(e) => e.fmt(f),
            StringInsertError::Alloc(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StringInsertError {}

impl From<StringInsertError> for Error {
    fn from(e: StringInsertError) -> Error {
        match e {
            StringInsertError::NotCharBoundary(e) => e.into(),
            StringInsertError::Alloc(e) => e.into(),
        }
    }
}
