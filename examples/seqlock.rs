//! Telemetry through a `SeqLock`: one process publishes a reading every 20 µs, another
//! reads as often as it can without ever blocking the publisher, and every reading it gets
//! is whole (each field belongs to the same sample).
//!
//! The parent publishes; the child (this program started again) reads until it has seen
//! the last sample, checking each one. The child reads through a `SharedMemoryObserver`, a
//! read-only mapping that lets the writer in: it could not write a byte of the segment even
//! by mistake (opening it read-only would keep the publisher out instead).
//!
//! Run: `cargo run --example seqlock`

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use shmkit::sync::{SeqLock, SeqLockData};
use shmkit::{ManagedSharedMemory, SharedMemoryObserver, ShmSafe};

const SAMPLES: u64 = 5_000;

/// One sample: the fields are derived from `sample`, so a torn copy would show.
#[derive(ShmSafe, Clone, Copy, Debug, Default)]
#[repr(C)]
struct Telemetry {
    sample: u64,
    celsius: f64,
    pascal: f64,
}

// SAFETY: three 8-byte numbers, no padding, and every bit pattern is a value. (`SeqLock`
// also checks the derived layout for gaps at compile time.)
unsafe impl SeqLockData for Telemetry {}

impl Telemetry {
    fn at(sample: u64) -> Self {
        Telemetry {
            sample,
            celsius: 20.0 + (sample % 100) as f64 / 10.0,
            pascal: 101_325.0 + sample as f64,
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("reader") => reader(args.get(2).ok_or("usage: reader <segment name>")?),
        _ => publisher(),
    }
}

fn publisher() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("shmkit_seqlock_{}", std::process::id());
    let segment = ManagedSharedMemory::create(&name, 64 * 1024)?;
    let _remove = Remove(name.clone());
    let telemetry = segment.construct("telemetry", SeqLock::new(Telemetry::at(0)))?;
    let mut reader = Command::new(std::env::current_exe()?)
        .args(["reader", &name])
        .stdout(Stdio::piped())
        .spawn()?;
    // Publish once the reader reads (this would not wait for a reader in real use). It
    // says so on its standard output: an observer cannot write to the segment.
    let mut said = BufReader::new(reader.stdout.take().ok_or("the reader's output")?).lines();
    if said.next().transpose()?.as_deref() != Some("reading") {
        return Err("the reader did not start".into());
    }
    for sample in 1..=SAMPLES {
        telemetry.write(Telemetry::at(sample))?;
        std::thread::sleep(Duration::from_micros(20));
    }
    println!("publisher: wrote {SAMPLES} samples");
    for line in said {
        println!("{}", line?);
    }
    if !reader.wait()?.success() {
        return Err("the reader failed".into());
    }
    Ok(())
}

fn reader(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let observer = SharedMemoryObserver::open(name)?;
    let telemetry = observer
        .find::<SeqLock<Telemetry>>("telemetry")?
        .ok_or("no telemetry in the segment")?;
    println!("reading");
    let (mut reads, mut distinct, mut last) = (0u64, 0u64, 0u64);
    while last < SAMPLES {
        // Err only if the publisher died in the middle of a write.
        let t = telemetry.read()?;
        if t.celsius != Telemetry::at(t.sample).celsius
            || t.pascal != Telemetry::at(t.sample).pascal
        {
            return Err(format!("torn reading: {t:?}").into());
        }
        if t.sample < last {
            return Err(format!("went back from sample {last} to {}", t.sample).into());
        }
        distinct += u64::from(t.sample != last);
        last = t.sample;
        reads += 1;
    }
    println!("reader: {reads} reads, {distinct} distinct samples, all whole; last {last}");
    Ok(())
}

/// Removes the segment's name when the publisher ends.
struct Remove(String);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = ManagedSharedMemory::remove(&self.0);
    }
}
