//! Boost's `doc_anonymous_condition_shared_data` example: a one-slot message queue in
//! shared memory between two processes, a `Mutex` around the slot and two `Condvar`s
//! ("a message is in", "the slot is free"). The writer sends numbered traces and then
//! "last message"; the reader prints them until it sees that.
//!
//! Unlike Boost's `interprocess_condition`, a waiter that dies never blocks the others'
//! notifications, and a holder that dies leaves the mutex poisoned, not locked.
//!
//! Run: `cargo run --example condvar`

use std::process::Command;

use shmkit::sync::{Condvar, Mutex};
use shmkit::{shm_segment, ManagedSharedMemory, ShmSafe};

const MESSAGES: usize = 100;
const LINE: usize = 100;
const LAST: &str = "last message";

/// The slot: one line of text, and whether it holds a message not yet read.
#[derive(ShmSafe)]
#[repr(C)]
struct Slot {
    text: [u8; LINE],
    message_in: bool,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            text: [0; LINE],
            message_in: false,
        }
    }
}

#[shm_segment]
#[derive(Default)]
struct TraceQueue {
    slot: Mutex<Slot>,
    /// Notified when a message is put in.
    message_in: Condvar,
    /// Notified when the slot is emptied.
    slot_free: Condvar,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::args().nth(1) {
        Some(name) => Ok(read(&name)?),
        None => write(),
    }
}

/// Creates the queue, starts the reader, and sends the messages.
fn write() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("shmkit_condvar_example_{}", std::process::id());
    let _remove = Remove(name.clone());
    let segment = ManagedSharedMemory::create(&name, 1 << 16)?;
    segment.root::<TraceQueue>()?;
    let mut reader = Command::new(std::env::current_exe()?).arg(&name).spawn()?;
    send_all(&segment)?;
    if !reader.wait()?.success() {
        return Err("the reader failed".into());
    }
    Ok(())
}

fn send_all(segment: &ManagedSharedMemory) -> shmkit::Result<()> {
    let queue = segment.root::<TraceQueue>()?;
    for i in 0..MESSAGES {
        let slot = queue.slot.lock()?;
        // Wait until the reader has taken the previous message.
        let mut slot = queue.slot_free.wait_while(slot, |s| s.message_in)?;
        let text = if i == MESSAGES - 1 {
            LAST.to_owned()
        } else {
            format!("my_trace {i}")
        };
        slot.text = [0; LINE];
        slot.text[..text.len()].copy_from_slice(text.as_bytes());
        slot.message_in = true;
        drop(slot);
        queue.message_in.notify_one();
    }
    Ok(())
}

/// The reader process: prints messages until the last one.
fn read(name: &str) -> shmkit::Result<()> {
    let segment = ManagedSharedMemory::open(name)?;
    let queue = segment.root::<TraceQueue>()?;
    let mut count = 0;
    loop {
        let slot = queue.slot.lock()?;
        let mut slot = queue.message_in.wait_while(slot, |s| !s.message_in)?;
        let len = slot.text.iter().position(|&b| b == 0).unwrap_or(LINE);
        let text = String::from_utf8_lossy(&slot.text[..len]).into_owned();
        slot.message_in = false;
        drop(slot);
        queue.slot_free.notify_one();
        count += 1;
        if text == LAST {
            println!("reader: {count} messages, the last: {text:?}");
            return Ok(());
        }
        if count % 25 == 0 {
            println!("reader: {text}");
        }
    }
}

/// Removes the segment when the writer ends.
struct Remove(String);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = ManagedSharedMemory::remove(&self.0);
    }
}
