//! A protocol of one's own on `atomic_wait` / `atomic_notify_one`: a frame counter in shared
//! memory that a renderer process bumps, and a display process that sleeps until the next
//! frame (no polling, no lock), then acknowledges it on a second counter.
//!
//! The parent renders; the child (this program started again) displays.
//!
//! Run: `cargo run --example atomic_wait`

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use shmkit::sync::{atomic_notify_one, atomic_wait, WaitOutcome};
use shmkit::ManagedSharedMemory;

const FRAMES: u32 = 50;
/// How long either side waits for the other before giving up.
const PATIENCE: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("display") => display(args.get(2).ok_or("usage: display <segment name>")?),
        _ => render(),
    }
}

/// Sleeps until `counter` is at least `target`: wake-ups can be spurious, so the condition
/// is checked in a loop.
fn wait_for(counter: &AtomicU32, target: u32) -> Result<(), String> {
    loop {
        let now = counter.load(Ordering::Acquire);
        if now >= target {
            return Ok(());
        }
        if atomic_wait(counter, now, Some(PATIENCE)) == WaitOutcome::TimedOut {
            return Err(format!("waited {PATIENCE:?} for {target}, still at {now}"));
        }
    }
}

fn render() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("shmkit_atomic_wait_{}", std::process::id());
    let segment = ManagedSharedMemory::create(&name, 64 * 1024)?;
    let _remove = Remove(name.clone());
    let frame = segment.construct("frame", AtomicU32::new(0))?;
    let shown = segment.construct("shown", AtomicU32::new(0))?;
    let mut display = Command::new(std::env::current_exe()?)
        .args(["display", &name])
        .spawn()?;
    for f in 1..=FRAMES {
        // Render the frame... then publish it and wake the display.
        frame.store(f, Ordering::Release);
        atomic_notify_one(frame);
        wait_for(shown, f)?;
    }
    println!("render: {FRAMES} frames shown");
    if !display.wait()?.success() {
        return Err("the display failed".into());
    }
    Ok(())
}

fn display(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let segment = ManagedSharedMemory::open(name)?;
    let frame = segment
        .find::<AtomicU32>("frame")?
        .ok_or("no frame counter")?;
    let shown = segment
        .find::<AtomicU32>("shown")?
        .ok_or("no shown counter")?;
    for f in 1..=FRAMES {
        wait_for(frame, f)?;
        // Show the frame... then acknowledge it.
        shown.store(f, Ordering::Release);
        atomic_notify_one(shown);
    }
    println!("display: showed {FRAMES} frames");
    Ok(())
}

/// Removes the segment's name when the renderer ends.
struct Remove(String);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = ManagedSharedMemory::remove(&self.0);
    }
}
