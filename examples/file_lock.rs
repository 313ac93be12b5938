//! Boost.Interprocess's file lock example, ported: writers append to a file under its
//! exclusive lock and flush what they buffered before they let go; a reader reads the file
//! under the shared lock and never sees a half-written record. The writers are child
//! processes (this program started again), the reader is the parent. The file is removed
//! when the parent ends.
//!
//! Run: `cargo run --example file_lock`

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use shmkit::FileLock;

const WRITERS: usize = 3;
const RECORDS: usize = 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2), args.get(3)) {
        (Some("writer"), Some(path), Some(id)) => writer(Path::new(path), id),
        _ => reader(),
    }
}

/// Starts the writers and reads the file under the shared lock until they are done.
fn reader() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join(format!("shmkit_file_lock_{}.txt", std::process::id()));
    // The lock needs an existing file (as Boost's does).
    std::fs::write(&path, b"")?;
    let _cleanup = RemoveOnDrop(path.clone());
    let mut lock = FileLock::open(&path)?;

    let mut writers = (0..WRITERS)
        .map(|id| {
            Command::new(std::env::current_exe()?)
                .args(["writer", path.to_str().expect("a UTF-8 temp path")])
                .arg(id.to_string())
                .spawn()
        })
        .collect::<Result<Vec<Child>, _>>()?;

    let mut reads = 0;
    while writers.iter_mut().any(|w| matches!(w.try_wait(), Ok(None))) {
        // Waits while a writer holds the file.
        let shared = lock.lock_shared()?;
        check_whole(&std::fs::read_to_string(&path)?)?;
        reads += 1;
        drop(shared);
        // Locks are not fair: a reader that locks again at once could keep writers out.
        std::thread::sleep(Duration::from_millis(2));
    }
    for mut w in writers {
        if !w.wait()?.success() {
            return Err("a writer failed".into());
        }
    }
    let _shared = lock.lock_shared()?;
    let records = check_whole(&std::fs::read_to_string(&path)?)?;
    if records != WRITERS * RECORDS {
        return Err(format!("{records} records, expected {}", WRITERS * RECORDS).into());
    }
    println!("{WRITERS} writers appended {records} whole records; read {reads} times meanwhile");
    Ok(())
}

/// Appends `RECORDS` records to the file, each under the exclusive lock.
fn writer(path: &Path, id: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut lock = FileLock::open(path)?;
    let file = std::fs::OpenOptions::new().append(true).open(path)?;
    let mut out = BufWriter::new(&file);
    for n in 0..RECORDS {
        let _exclusive = lock.lock()?;
        // A record written in two parts: without the lock, a reader could see the first
        // part alone.
        write!(out, "writer {id} record {n}")?;
        out.flush()?;
        std::thread::sleep(Duration::from_millis(1));
        writeln!(out, " done")?;
        // Flush before the lock goes: what stays buffered reaches the file only after
        // another process may have read it.
        out.flush()?;
    }
    Ok(())
}

/// The number of records in `text`, all of them whole; an error on a half-written one.
fn check_whole(text: &str) -> Result<usize, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(format!(
            "read a half-written record: {:?}",
            text.lines().last()
        ));
    }
    for line in text.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        if !matches!(words.as_slice(), ["writer", _, "record", _, "done"]) {
            return Err(format!("read a half-written record: {line:?}"));
        }
    }
    Ok(text.lines().count())
}

/// Removes the file when the reader ends, also on an error.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
