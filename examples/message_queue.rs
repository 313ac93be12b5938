//! Boost's `doc_message_queueA`/`B` example: one process sends 100 numbers through a
//! message queue found by name, another receives them. Here the receiver is this program
//! started again, and both sides go further than Boost's: the numbers go as typed values
//! (`send_value`/`receive_value`, checked against their type on arrival), with
//! priorities, and the sender gets a reply on a second queue.
//!
//! Unlike Boost's, the queue survives a peer that is killed inside `send` or `receive`:
//! the next caller repairs it, and no message is torn, lost from the queue or taken twice.
//!
//! Run: `cargo run --example message_queue`

use std::process::Command;
use std::time::Duration;

use shmkit::NamedMessageQueue;

const NUMBERS: u32 = 100;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::args().nth(1) {
        Some(name) => receiver(&name),
        None => sender(),
    }
}

fn sender() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("shmkit_message_queue_{}", std::process::id());
    let _cleanup = Cleanup(vec![name.clone(), format!("{name}.reply")]);
    // A queue of 100 messages of up to 64 bytes, and one for the reply.
    let queue = NamedMessageQueue::create(&name, 100, 64)?;
    let reply = NamedMessageQueue::create(format!("{name}.reply"), 1, 64)?;
    for i in 0..NUMBERS {
        // Even numbers first: a higher priority is received earlier.
        queue.send_value(&i, if i % 2 == 0 { 1 } else { 0 })?;
    }
    let mut receiver = Command::new(std::env::current_exe()?).arg(&name).spawn()?;
    let mut buf = [0u8; 64];
    let got = reply
        .receive_timeout(&mut buf, Duration::from_secs(10))?
        .ok_or("no reply from the receiver")?;
    println!(
        "the receiver says: {}",
        std::str::from_utf8(&buf[..got.len])?
    );
    if !receiver.wait()?.success() {
        return Err("the receiver failed".into());
    }
    Ok(())
}

fn receiver(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let queue = NamedMessageQueue::open(name)?;
    let mut order = Vec::new();
    for _ in 0..NUMBERS {
        let (number, _priority) = queue.receive_value::<u32>()?;
        order.push(number);
    }
    let evens_first = order.iter().take(50).all(|n| n % 2 == 0);
    let in_order = order[..50].is_sorted() && order[50..].is_sorted();
    println!("received {} numbers: {:?} ...", order.len(), &order[..8]);
    let reply = NamedMessageQueue::open(format!("{name}.reply"))?;
    let text = format!("{NUMBERS} numbers, even ones first: {evens_first}, in order: {in_order}");
    reply.send(text.as_bytes(), 0)?;
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
