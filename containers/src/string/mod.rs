//! [`String`]: a UTF-8 string that lives in a segment, built on the segment
//! [`Vec<u8>`](crate::Vec).
//!
//! # Layout
//!
//! `#[repr(transparent)]` over a `Vec<u8>` (24 bytes, aligned to 8; see the
//! [`vec`](crate::vec) module): all-zero bytes are an empty string, and the bytes the
//! vector counts are UTF-8. [`validate`](ShmSafe::validate) checks the vector and then the
//! UTF-8 of bytes from elsewhere, so a forged string is an error, never a `&str` that is
//! not UTF-8.
//!
//! # Moves, and what is mutated how
//!
//! As a `Vec`: position-dependent, so mutated in place only, through [`StringExt`] on
//! anything that gives in-place access ([`ShmDerefMut`](shmkit_runtime::ShmDerefMut)).
//! Reading needs only `&String`, which derefs to `&str`.
//!
//! # Crash consistency
//!
//! Every change is one of the byte vector's own operations, so the vector's order holds
//! (its length lowered before bytes are given up, new bytes written before one Release
//! store counts them), and so does what `&str` asks on top: the bytes the length counts
//! are UTF-8 at every instruction, also for whoever reads the string after its writer
//! died under a lock. Appending writes whole characters before the length counts them;
//! removing lowers the length to a character boundary; an edit in the middle (`insert`,
//! `insert_str`, `remove`, `retain`) lowers the length to where the edit starts and then
//! appends the new text and the old rest again, from a copy on the process heap (that copy
//! is the price of changing the bytes through the vector's public operations only): a
//! process killed meanwhile leaves the text before the edit, whole characters.

mod ext;

pub use ext::{NotCharBoundary, StringExt, StringInsertError, StringWriter};

use core::borrow::Borrow;
use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::ops::Deref;

use shmkit_runtime::layout::compound_fingerprint;
use shmkit_runtime::{AllocError, Invalid, Schema, ShmImmutable, ShmSafe};

use crate::emplace::{Emplace, Filled, Slot};
use crate::vec::Vec;

/// A UTF-8 string in a segment: std's `String`, with allocation failure as an error and
/// mutation in place (see the [module docs](self)).
///
/// By value a `String` is only ever empty ([`String::new`], [`Default`]); it gets text once
/// it lives in a segment, through [`StringExt`] (`use shmkit::prelude::*`) or by being
/// built in place from a `&str` ([`Emplace`]): `names.push("ada")?` for a `Vec<String>`.
/// It borrows, hashes and compares as `str`, so maps keyed by `String` are searched with
/// a `&str`.
///
/// ```
/// use shmkit_containers::{String, StringExt, Vec, VecExt};
/// use shmkit_runtime::ManagedHeapMemory;
///
/// let mut seg = ManagedHeapMemory::new(1 << 16)?;
/// seg.construct("greeting", String::new())?;
/// let mut s = seg.find_mut::<String>("greeting")?.expect("constructed above");
/// s.push_str("hello")?;
/// s.push(' ')?;
/// s.push_str("wörld")?;
/// assert_eq!(*s, "hello wörld");
/// assert_eq!(s.pop(), Some('d'));
///
/// seg.construct("names", Vec::<String>::new())?;
/// let mut names = seg.find_mut::<Vec<String>>("names")?.expect("constructed above");
/// names.push("ada")?;
/// names.extend(["grace", "barbara"])?;
/// assert_eq!(*names, ["ada", "grace", "barbara"]);
/// # Ok::<(), shmkit_runtime::Error>(())
/// ```
#[repr(transparent)]
pub struct String {
    /// UTF-8, always: only this module's methods change it.
    bytes: Vec<u8>,
}

impl String {
    /// An empty string, allocating nothing (all-zero bytes are one too).
    pub const fn new() -> Self {
        String { bytes: Vec::new() }
    }

    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        // SAFETY: the bytes are UTF-8: every method keeps them so at every instruction,
        // and `validate` checks bytes from elsewhere.
        unsafe { core::str::from_utf8_unchecked(self.bytes.as_slice()) }
    }

    /// The text's bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the string is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// How many bytes fit without allocating.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }
}

impl Default for String {
    fn default() -> Self {
        String::new()
    }
}

impl Deref for String {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for String {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for String {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// What maps keyed by `String` look `&str` keys up with (`map.get("key")`).
impl Borrow<str> for String {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for String {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for String {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Implements `PartialEq` both ways between `String` and a type that derefs to `str`.
macro_rules! eq_str {
    ($($other:ty),*) => {$(
        impl PartialEq<$other> for String {
            #[inline]
            fn eq(&self, other: &$other) -> bool {
                self.as_str() == &other[..]
            }
        }

        impl PartialEq<String> for $other {
            #[inline]
            fn eq(&self, other: &String) -> bool {
                &self[..] == other.as_str()
            }
        }
    )*};
}

eq_str!(str, &str, std::string::String);

impl PartialEq for String {
    #[inline]
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for String {}

impl PartialOrd for String {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for String {
    /// As `str`: bytewise, which is by code point.
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for String {
    /// Exactly as `str` (and std's `String`), so that a `&str` finds a `String` key.
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

// SAFETY: the same bytes as a `Vec<u8>` (`repr(transparent)`), relocated by the vector;
// `validate` accepts exactly the vectors whose bytes are UTF-8. The drop glue is the
// vector's.
unsafe impl ShmSafe for String {
    const LAYOUT_FINGERPRINT: u64 =
        compound_fingerprint("String", &[<Vec<u8> as ShmSafe>::LAYOUT_FINGERPRINT]);

    /// Text: a `Vec<u8>`'s parts, read as UTF-8 (for the inspector's `dump`).
    const SCHEMA: Option<&'static Schema> = Some(&Schema::container(
        "String",
        "text",
        size_of::<Self>(),
        align_of::<Self>(),
        &[<Vec<u8> as ShmSafe>::LAYOUT_FINGERPRINT],
        match <Vec<u8> as ShmSafe>::SCHEMA {
            Some(bytes) => bytes.fields,
            None => &[],
        },
    ));

    /// Bytes that are not UTF-8, besides what a vector refuses.
    const ALL_BIT_PATTERNS_VALID: bool = false;

    unsafe fn validate(value: *const Self) -> Result<(), Invalid> {
        // SAFETY: a `String` is a `Vec<u8>` (`repr(transparent)`); the caller's contract
        // carries over.
        unsafe { <Vec<u8> as ShmSafe>::validate(value.cast()) }?;
        // SAFETY: as above; the vector was just found to count bytes in the segment.
        let bytes = unsafe { &*value }.as_bytes();
        match core::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) => Err(Invalid::new("a String of UTF-8 bytes")
                .within(&format!("[{}]", e.valid_up_to()), 0)),
        }
    }

    #[inline]
    unsafe fn relocate(&mut self, moved_from: usize) {
        // SAFETY: the vector is the whole string, moved from the same address.
        unsafe { self.bytes.relocate(moved_from) }
    }

    /// The layout fingerprint, the same in every program.
    fn type_fingerprint() -> u64 {
        Self::LAYOUT_FINGERPRINT
    }
}

// SAFETY: the bytes change only through `&mut` (`StringExt`), as a `Vec<u8>`'s.
unsafe impl ShmImmutable for String {}

/// Builds a string in place holding `text`.
fn emplace_str<'a>(slot: Slot<'a, String>, text: &str) -> Result<Filled<'a, String>, AllocError> {
    let mut s = slot.write(String::new());
    s.as_mut().push_str(text)?;
    Ok(s)
}

/// Implements `Emplace` for `String` from sources that deref to `str`.
macro_rules! emplace_from_str {
    ($($src:ty),*) => {$(
        impl<'s> Emplace<$src> for String {
            #[inline]
            fn emplace<'a>(slot: Slot<'a, Self>, src: $src) -> Result<Filled<'a, Self>, AllocError> {
                emplace_str(slot, &src)
            }
        }
    )*};
}

emplace_from_str!(
    &'s str,
    &'s String,
    std::string::String,
    &'s std::string::String
);

impl Emplace<char> for String {
    fn emplace<'a>(slot: Slot<'a, Self>, c: char) -> Result<Filled<'a, Self>, AllocError> {
        emplace_str(slot, c.encode_utf8(&mut [0; 4]))
    }
}
