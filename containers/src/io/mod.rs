//! Formatting and I/O straight into segment memory: Boost.Interprocess's `vectorstream`
//! and `bufferstream`, as std's `io` and `fmt` traits.
//!
//! - [`VecCursor`] ([`VecExt::cursor`](crate::VecExt::cursor)) reads, writes and seeks a
//!   segment `Vec<u8>` in place, as std's `Cursor<&mut Vec<u8>>` does a heap vector:
//!   writes overwrite, then extend the vector, and a write past the end fills the gap with
//!   zeros. The vector grows in its segment; a full segment is an
//!   [`io::ErrorKind::OutOfMemory`] error that changes nothing, as for
//!   [`VecWriter`](crate::VecWriter), which only appends.
//! - [`FixedBuf<N>`] is a buffer of `N` bytes and a length that lives in a segment (a named
//!   object, a field of a derived struct, behind a `Mutex`) and never allocates:
//!   `write!` into it, then read it back as bytes or text. A full buffer is an error,
//!   never a reallocation.
//!
//! Reading needs nothing new: a `&Vec<u8>` derefs to `&[u8]`, which is [`io::Read`] and
//! [`io::BufRead`] already, and `io::Cursor::new(v.as_slice())` seeks too (as
//! `io::Cursor::new(buf.as_bytes())` does over a [`FixedBuf`]). A segment [`String`]
//! takes `write!` through [`StringExt::writer`](crate::StringExt::writer).
//!
//! ```
//! use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
//! use shmkit_containers::{Vec, VecExt};
//! use shmkit_runtime::ManagedHeapMemory;
//!
//! let mut seg = ManagedHeapMemory::new(1 << 16)?;
//! seg.construct("log", Vec::<u8>::new())?;
//! let mut log = seg.find_mut::<Vec<u8>>("log")?.expect("constructed above");
//! let mut cursor = log.cursor();
//! writeln!(cursor, "first line")?;
//! writeln!(cursor, "second line")?;
//! cursor.seek(SeekFrom::Start(0))?;
//! cursor.write_all(b"FIRST")?; // overwrites in place
//! cursor.rewind()?;
//! let lines: io::Result<std::vec::Vec<_>> = cursor.lines().collect();
//! assert_eq!(lines?, ["FIRST line", "second line"]);
//!
//! // Reading without a cursor: the vector's bytes are a `&[u8]`.
//! let mut text = std::string::String::new();
//! log.as_slice().read_to_string(&mut text)?;
//! assert_eq!(text, "FIRST line\nsecond line\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`String`]: crate::String

mod cursor;
mod fixed;

pub use cursor::VecCursor;
pub use fixed::FixedBuf;

use std::io;

use shmkit_runtime::AllocError;

/// A full segment as an I/O error: [`io::ErrorKind::OutOfMemory`], with the
/// [`AllocError`] inside (`get_ref`/`downcast` give it back).
pub(crate) fn out_of_memory(e: AllocError) -> io::Error {
    io::Error::new(io::ErrorKind::OutOfMemory, e)
}
