//! Boost's "serializing a database through the message queue": one process builds a
//! database (`Map<String, Vec<u64>>`: customers and their order numbers) in a heap segment,
//! a plain buffer of its own memory, and sends the segment's bytes through a message queue;
//! another process receives them into a buffer, opens it as a segment and queries the
//! database in place. Nothing is serialised: the bytes are the database.
//!
//! The image is sent as possibly uninitialised bytes (the padding of the values it
//! stores) and never read as `[u8]` by the process that built it; the receiver opens it
//! read-only, which validates everything it reads (a corrupt image is an error, not
//! undefined behaviour).
//!
//! Run: `cargo run --example database_through_queue`

use std::process::Command;
use std::time::Duration;

use shmkit::containers::{Map, MapExt, VecExt};
use shmkit::{ManagedExternalBuffer, ManagedHeapMemory, NamedMessageQueue};

type Db = Map<shmkit::containers::String, shmkit::containers::Vec<u64>>;

const CUSTOMERS: u64 = 1000;
const WAIT: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::args().nth(1) {
        Some(name) => receiver(&name),
        None => sender(),
    }
}

fn sender() -> Result<(), Box<dyn std::error::Error>> {
    let mut heap = ManagedHeapMemory::new(1 << 20)?;
    heap.construct("orders", Db::new())?;
    {
        let mut db = heap.find_mut::<Db>("orders")?.ok_or("just constructed")?;
        for c in 0..CUSTOMERS {
            let mut orders = db.entry(&*format!("customer-{c:04}"))?.or_default()?;
            for k in 0..c % 5 + 1 {
                orders.push(c * 100 + k)?;
            }
        }
        println!(
            "sender: {} customers in {} bytes of heap segment",
            db.len(),
            heap.size()
        );
    }
    let name = format!("shmkit_db_queue_{}", std::process::id());
    let _cleanup = Cleanup(vec![name.clone(), format!("{name}.reply")]);
    // Chunks of 64 KiB; a few messages in flight at a time.
    let queue = NamedMessageQueue::create(&name, 4, 64 * 1024)?;
    let reply = NamedMessageQueue::create(format!("{name}.reply"), 1, 256)?;
    let mut receiver = Command::new(std::env::current_exe()?).arg(&name).spawn()?;
    queue.send_image(heap.image(), 0)?;
    let mut buf = [0u8; 256];
    let got = reply.receive_timeout(&mut buf, WAIT)?.ok_or("no answer")?;
    println!(
        "sender: the receiver answers {:?}",
        std::str::from_utf8(&buf[..got.len])?
    );
    if !receiver.wait()?.success() {
        return Err("the receiver failed".into());
    }
    Ok(())
}

fn receiver(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let queue = NamedMessageQueue::open(name)?;
    let image = queue.receive_image(WAIT)?;
    let segment = ManagedExternalBuffer::options().read_only().open(&image)?;
    let db = segment
        .find::<Db>("orders")?
        .ok_or("no database in the image")?;
    let orders = &db["customer-0042"];
    let total: usize = db.values().map(|o| o.len()).sum();
    println!(
        "receiver: {} bytes received; customer-0042 has orders {:?}",
        image.len(),
        &orders[..]
    );
    let answer = format!("{} customers, {total} orders", db.len());
    NamedMessageQueue::open(format!("{name}.reply"))?.send(answer.as_bytes(), 0)?;
    Ok(())
}

/// Removes the queues when the sender ends.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = NamedMessageQueue::remove(name);
        }
    }
}
