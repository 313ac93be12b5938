//! `shmkit-ipc-child`: the other process of the message queue's multi-process tests. The
//! first argument names the role, `SHMKIT_NAME` the queue; every line printed on stdout is
//! a message for the parent test.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

use shmkit_ipc::NamedMessageQueue;
use shmkit_runtime::{ManagedSharedMemory, Result};

#[path = "../common/message.rs"]
mod message;

fn main() -> Result<()> {
    let role = std::env::args()
        .nth(1)
        .expect("usage: shmkit-ipc-child ROLE");
    let name = std::env::var("SHMKIT_NAME").expect("SHMKIT_NAME");
    let count = |var: &str| -> u64 {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    };
    match role.as_str() {
        "echo" => echo(&name, count("SHMKIT_COUNT")),
        "produce" => produce(&name, count("SHMKIT_COUNT")),
        "consume" => consume(&name, &std::env::var("SHMKIT_SEEN").expect("SHMKIT_SEEN")),
        other => panic!("unknown role {other}"),
    }
}

fn tell_parent(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("write to the parent");
    out.flush().expect("flush to the parent");
}

/// Sends every message it receives back on the queue `<name>.back`, `count` times.
fn echo(name: &str, count: u64) -> Result<()> {
    let input = NamedMessageQueue::open(name)?;
    let output = NamedMessageQueue::open(format!("{name}.back"))?;
    tell_parent("ready");
    let mut buf = vec![0u8; input.max_msg_size()];
    for _ in 0..count {
        let got = input.receive(&mut buf)?;
        output.send(&buf[..got.len], got.priority)?;
    }
    tell_parent("done");
    Ok(())
}

/// Sends messages 0, 1, … (`count` of them, or until killed) with priority `seq % 4`.
fn produce(name: &str, count: u64) -> Result<()> {
    let q = NamedMessageQueue::open(name)?;
    tell_parent("ready");
    let mut buf = vec![0u8; q.max_msg_size()];
    for seq in 0..count {
        let len = message::fill(&mut buf, seq);
        q.send(&buf[..len], message::priority(seq))?;
    }
    tell_parent("done");
    Ok(())
}

/// Receives messages until killed, checking each and marking its sequence number in the
/// array "seen" of the segment `seen`.
fn consume(name: &str, seen: &str) -> Result<()> {
    let q = NamedMessageQueue::open(name)?;
    let marks = ManagedSharedMemory::open(seen)?;
    let marks = marks
        .find_slice::<AtomicU8>("seen")?
        .expect("the parent made the marks");
    tell_parent("ready");
    let mut buf = vec![0u8; q.max_msg_size()];
    loop {
        let got = q.receive(&mut buf)?;
        let seq = message::check(&buf[..got.len], got.priority).expect("a whole message");
        marks[seq as usize].fetch_add(1, Ordering::Relaxed);
    }
}
