//! Boost's `doc_anonymous_semaphore_shared_data` example: a ring buffer of 10 items in
//! shared memory between a producer and a consumer process, with three semaphores in the
//! segment: one used as a mutex, one counting empty slots, one counting stored items.
//!
//! The parent creates the segment and produces 100 numbers; the child (this program started
//! again) consumes them and checks that it got 0, 1, 2, … in order.
//!
//! Run: `cargo run --example anonymous_semaphore`

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use shmkit::sync::Semaphore;
use shmkit::{ManagedSharedMemory, ShmSafe};

const NUM_ITEMS: usize = 10;
const NUM_MSG: u32 = 100;

/// The shared data, as Boost's `shared_memory_buffer`. The items are atomics: on a shared
/// mapping data changes only through atomics and locks, and a semaphore used as a mutex
/// hands out no guard.
#[derive(ShmSafe)]
#[repr(C)]
struct SharedBuffer {
    /// A binary semaphore guarding the items.
    mutex: Semaphore,
    /// Free slots.
    nempty: Semaphore,
    /// Stored items.
    nstored: Semaphore,
    items: [AtomicU32; NUM_ITEMS],
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("consumer") => consumer(args.get(2).ok_or("usage: consumer <segment name>")?),
        _ => producer(),
    }
}

fn producer() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("shmkit_anonymous_semaphore_{}", std::process::id());
    let segment = ManagedSharedMemory::create(&name, 64 * 1024)?;
    let _remove = Remove(name.clone());
    let data = segment.construct(
        "buffer",
        SharedBuffer {
            mutex: Semaphore::new(1),
            nempty: Semaphore::new(NUM_ITEMS as u32),
            nstored: Semaphore::new(0),
            items: Default::default(),
        },
    )?;
    let mut consumer = Command::new(std::env::current_exe()?)
        .args(["consumer", &name])
        .spawn()?;
    for i in 0..NUM_MSG {
        data.nempty.wait();
        data.mutex.wait();
        data.items[i as usize % NUM_ITEMS].store(i, Ordering::Relaxed);
        data.mutex.post()?;
        data.nstored.post()?;
    }
    println!("producer: stored {NUM_MSG} items");
    let status = consumer.wait()?;
    if !status.success() {
        return Err(format!("the consumer failed: {status}").into());
    }
    Ok(())
}

fn consumer(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let segment = ManagedSharedMemory::open(name)?;
    let data = segment
        .find::<SharedBuffer>("buffer")?
        .ok_or("no buffer in the segment")?;
    for i in 0..NUM_MSG {
        data.nstored.wait();
        data.mutex.wait();
        let item = data.items[i as usize % NUM_ITEMS].load(Ordering::Relaxed);
        data.mutex.post()?;
        data.nempty.post()?;
        if item != i {
            return Err(format!("item {i} read as {item}").into());
        }
    }
    println!("consumer: extracted {NUM_MSG} items in order");
    Ok(())
}

/// Removes the segment's name when the producer ends.
struct Remove(String);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = ManagedSharedMemory::remove(&self.0);
    }
}
