//! Boost's `doc_anonymous_mutex_shared_data` example: two processes write numbered lines
//! into one circular log in shared memory, each line under a `Mutex` that lives in the
//! segment's root, and each says when it is done.
//!
//! Unlike Boost's `interprocess_mutex`, the lock survives a process that dies holding it:
//! the other gets it poisoned (`PoisonCause::OwnerDied`) instead of waiting forever.
//!
//! Run: `cargo run --example mutex`

use std::process::Command;

use shmkit::sync::Mutex;
use shmkit::{shm_segment, ManagedSharedMemory, ShmSafe};

const ITEMS: usize = 100;
const LINE: usize = 100;
const LINES_PER_PROCESS: usize = 100;

/// The log: a ring of fixed-size lines, the next line to write, and who has finished.
#[derive(ShmSafe)]
#[repr(C)]
struct Log {
    lines: [[u8; LINE]; ITEMS],
    current_line: u32,
    end_a: bool,
    end_b: bool,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            lines: [[0; LINE]; ITEMS],
            current_line: 0,
            end_a: false,
            end_b: false,
        }
    }
}

#[shm_segment]
#[derive(Default)]
struct SharedLog {
    log: Mutex<Log>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::args().nth(1) {
        Some(name) => Ok(process_b(&name)?),
        None => process_a(),
    }
}

/// Creates the log, starts process B, writes its own lines, then waits for B to finish.
fn process_a() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("shmkit_mutex_example_{}", std::process::id());
    let _remove = Remove(name.clone());
    let segment = ManagedSharedMemory::create(&name, 1 << 16)?;
    segment.root::<SharedLog>()?;
    let mut b = Command::new(std::env::current_exe()?).arg(&name).spawn()?;
    write_lines(&segment, "process_a", |log| log.end_a = true)?;
    let done = b.wait()?.success();
    let log = segment
        .root::<SharedLog>()?
        .log
        .lock()
        .map_err(shmkit::Error::from)?;
    let last = log.current_line as usize % ITEMS;
    println!(
        "process_a: {} lines written, both done: {}, newest: {:?}",
        log.current_line,
        log.end_a && log.end_b,
        text(&log.lines[(last + ITEMS - 1) % ITEMS])
    );
    if !(done && log.end_a && log.end_b) || log.current_line as usize != 2 * LINES_PER_PROCESS {
        return Err("a line or an end mark went missing".into());
    }
    Ok(())
}

/// Process B: opens the log by name and writes its lines.
fn process_b(name: &str) -> shmkit::Result<()> {
    let segment = ManagedSharedMemory::open(name)?;
    write_lines(&segment, "process_b", |log| log.end_b = true)
}

/// Writes this process's lines, one per lock, then marks its end.
fn write_lines(
    segment: &ManagedSharedMemory,
    who: &str,
    end: impl FnOnce(&mut Log),
) -> shmkit::Result<()> {
    let shared = segment.root::<SharedLog>()?;
    for i in 0..LINES_PER_PROCESS {
        let mut log = shared.log.lock()?;
        let at = log.current_line as usize % ITEMS;
        let line = format!("{who}_{i}");
        log.lines[at] = [0; LINE];
        log.lines[at][..line.len()].copy_from_slice(line.as_bytes());
        log.current_line += 1;
    }
    end(&mut *shared.log.lock()?);
    Ok(())
}

fn text(line: &[u8]) -> &str {
    let len = line.iter().position(|&b| b == 0).unwrap_or(line.len());
    std::str::from_utf8(&line[..len]).unwrap_or("<not text>")
}

/// Removes the segment when process A ends.
struct Remove(String);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = ManagedSharedMemory::remove(&self.0);
    }
}
