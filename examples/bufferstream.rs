//! Boost.Interprocess's `bufferstream` and `vectorstream` examples, ported: numbers are
//! formatted straight into shared memory and parsed back from it, with no copy through a
//! heap string.
//!
//! - `bufferstream` (`doc_bufferstream`): a fixed buffer of 500 bytes in the segment
//!   (`FixedBuf<500>`), written with `writeln!` and read back; a second mapping of the
//!   segment reads the same text; then writing five times as much fails once the buffer is
//!   full (Boost's `badbit`), as a `fmt::Error` that leaves the buffer as it was before that
//!   `writeln!`, or an `io::ErrorKind::WriteZero` after writing what fits.
//! - `vectorstream` (`doc_vectorstream`): a segment `Vec<u8>` that grows in the segment as
//!   it is written through a cursor (`VecExt::cursor`), read back line by line into another
//!   segment vector. Boost then swaps the stream's vector into a string; segment containers
//!   are not moved through guards, so here the text goes into a segment `String` directly,
//!   through `StringExt::writer`.
//!
//! The objects sit behind a process-shared `Mutex`, as anything changed in a shared
//! mapping does. Run: `cargo run --example bufferstream`

use std::io::{BufRead, Seek};

use shmkit::containers::{FixedBuf, String, Vec};
use shmkit::prelude::*;
use shmkit::sync::{Mutex, MutexGuard};
use shmkit::ManagedSharedMemory;

/// Boost's `BufferSize`: five bytes for each of 100 numbers.
const BUFFER_SIZE: usize = 100 * 5;

type Buffer = Mutex<FixedBuf<BUFFER_SIZE>>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("shmkit_bufferstream_{}", std::process::id());
    let mut segment = ManagedSharedMemory::create(&name, 65536)?;
    let _remove = Remove(name.clone());
    let data: std::vec::Vec<i32> = (0..100).collect();

    bufferstream(&segment, &name, &data)?;
    vectorstream(&segment, &data)?;

    // As Boost's examples destroy theirs.
    segment.destroy::<Buffer>("MyCString")?;
    for vector in ["MyVector", "MyVector2"] {
        segment.destroy::<Mutex<Vec<i32>>>(vector)?;
    }
    segment.destroy::<Mutex<Vec<u8>>>("MyVectorStream")?;
    segment.destroy::<Mutex<String>>("MyString")?;
    assert!(segment.all_memory_deallocated());
    println!("destroyed every object: all memory free again");
    Ok(())
}

fn bufferstream(
    segment: &ManagedSharedMemory,
    name: &str,
    data: &[i32],
) -> Result<(), Box<dyn std::error::Error>> {
    use std::fmt::Write;
    let buffer = segment.construct("MyCString", Buffer::default())?;
    let mut buf = lock(buffer)?;
    for i in data {
        writeln!(buf, "{i}")?;
    }
    println!(
        "bufferstream: {} of {} bytes used",
        buf.len(),
        buf.capacity()
    );
    // Extract every number straight from the segment's bytes.
    let back = buf
        .as_str()?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<std::vec::Vec<i32>, _>>()?;
    assert_eq!(back, data);
    drop(buf);

    // Another mapping of the segment, at another address, reads the same text.
    let other = ManagedSharedMemory::open(name)?;
    let seen = other
        .find::<Buffer>("MyCString")?
        .ok_or("MyCString is missing")?;
    let first_line = lock(seen)?.as_str()?.lines().next().map(str::to_owned);
    println!(
        "bufferstream: a second mapping at {:p} reads the first line {first_line:?}",
        other.base_address()
    );
    drop(other);

    // Clear and rewind, then try to write five times as much: the buffer fills up.
    let mut buf = lock(buffer)?;
    buf.clear();
    let mut lines = 0;
    let overflow = (0..data.len() * 5).try_for_each(|i| {
        writeln!(buf, "{}", data[i % 5])?;
        lines += 1;
        Ok::<(), std::fmt::Error>(())
    });
    assert!(overflow.is_err());
    println!(
        "bufferstream: full after {lines} lines ({} bytes): the next writeln! wrote nothing",
        buf.len()
    );
    // Bytes rather than text: `io::Write` writes what fits, then says the buffer is full.
    // With the last two lines (4 bytes) dropped, 4 of these 10 bytes fit.
    let two_lines_fewer = buf.len() - 4;
    buf.truncate(two_lines_fewer);
    let err = std::io::Write::write_all(&mut *buf, b"0123456789").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WriteZero);
    assert!(buf.as_bytes().ends_with(b"\n0123"));
    println!("bufferstream: write_all of 10 bytes where 4 fit: {err}, the 4 written");
    Ok(())
}

fn vectorstream(
    segment: &ManagedSharedMemory,
    data: &[i32],
) -> Result<(), Box<dyn std::error::Error>> {
    use std::fmt::Write as _;
    use std::io::Write;
    let myvector = segment.construct("MyVector", Mutex::new(Vec::<i32>::new()))?;
    lock(myvector)?.extend(data.iter().copied())?;
    let stream = segment.construct("MyVectorStream", Mutex::new(Vec::<u8>::new()))?;
    let mut bytes = lock(stream)?;
    // Boost's `reserve`: the stream then formats without growing.
    bytes.reserve(BUFFER_SIZE)?;
    let mut cursor = bytes.cursor();
    for i in lock(myvector)?.iter() {
        writeln!(cursor, "{i}")?;
    }
    // Extract every number from the segment's bytes into another segment vector.
    cursor.rewind()?;
    let myvector2 = segment.construct("MyVector2", Mutex::new(Vec::<i32>::new()))?;
    let mut numbers = lock(myvector2)?;
    numbers.reserve(data.len())?;
    for line in cursor.lines() {
        numbers.push(line?.parse::<i32>()?)?;
    }
    assert_eq!(*numbers, *lock(myvector)?);
    println!(
        "vectorstream: {} numbers through {} bytes of a segment Vec<u8>",
        numbers.len(),
        bytes.len()
    );

    // The same text formatted into a segment `String` directly.
    let mystring = segment.construct("MyString", Mutex::new(String::new()))?;
    let mut text = lock(mystring)?;
    for i in numbers.iter() {
        writeln!(text.writer(), "{i}")?;
    }
    assert_eq!(text.as_bytes(), bytes.as_slice());
    println!(
        "vectorstream: the segment String holds the same {} bytes",
        text.len()
    );
    Ok(())
}

/// Locks `m`, its error (a poisoned lock) as shmkit's `Error`: unlike the `LockError`,
/// that holds no guard, so `?` makes a `Box<dyn Error>` of it.
fn lock<T>(m: &Mutex<T>) -> shmkit::Result<MutexGuard<'_, T>> {
    Ok(m.lock()?)
}

/// Removes the segment's name when the example ends.
struct Remove(std::string::String);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = ManagedSharedMemory::remove(&self.0);
    }
}
