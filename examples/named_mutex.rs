//! Boost's `doc_named_mutex` example: processes append lines to one file, each line written
//! whole under a mutex they find by name. Here three processes do it at once (this program
//! started twice more), and the parent checks that no line was interleaved.
//!
//! Unlike Boost's, the mutex survives a writer that dies holding it: the next locker gets
//! it poisoned, and a line half-written by the dead process is the only damage to repair.
//!
//! Run: `cargo run --example named_mutex`

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::Command;

use shmkit::sync::NamedMutex;

const WRITERS: u32 = 3;
const ITERATIONS: u32 = 10;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1), args.get(2), args.get(3)) {
        (Some(mutex), Some(file), Some(id)) => write_lines(mutex, Path::new(file), id),
        _ => parent(),
    }
}

fn parent() -> Result<(), Box<dyn std::error::Error>> {
    let mutex_name = format!("shmkit_named_mutex_{}", std::process::id());
    let file = std::env::temp_dir().join(&mutex_name);
    let _cleanup = Cleanup(mutex_name.clone(), file.clone());
    // Created here so that the writers only open it; `open_or_create` would do as well.
    let _mutex = NamedMutex::create(&mutex_name)?;
    File::create(&file)?;
    let writers = (0..WRITERS)
        .map(|id| {
            Command::new(std::env::current_exe()?)
                .arg(&mutex_name)
                .arg(&file)
                .arg(id.to_string())
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    for mut w in writers {
        if !w.wait()?.success() {
            return Err("a writer failed".into());
        }
    }
    let text = std::fs::read_to_string(&file)?;
    let whole = text
        .lines()
        .all(|l| l.starts_with("Process ") && l.ends_with(')'));
    println!("{text}");
    println!("{} lines, all whole: {whole}", text.lines().count());
    Ok(())
}

fn write_lines(mutex_name: &str, file: &Path, id: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mutex = NamedMutex::open(mutex_name)?;
    let mut out = OpenOptions::new().append(true).open(file)?;
    for i in 0..ITERATIONS {
        // Do some operations...

        // Write to the file atomically. A poisoned lock means a writer died holding it: its
        // line may be cut short, which a line-based reader skips, so carry on.
        let _guard = mutex.lock().or_else(|e| e.into_poisoned())?;
        // Three writes, which another writer would interleave without the lock.
        write!(out, "Process {id}, ")?;
        write!(out, "this is iteration #{i} ")?;
        writeln!(out, "(pid {})", std::process::id())?;
    }
    Ok(())
}

/// Removes the named mutex and the file when the parent ends.
struct Cleanup(String, std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = NamedMutex::remove(&self.0);
        let _ = std::fs::remove_file(&self.1);
    }
}
