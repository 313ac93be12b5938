//! The crash sweep: `send`, `receive` and the repair itself stopped at each of their steps
//! (as a SIGKILL would stop them), then the queue checked by the next caller: every message
//! whole, in order, queued once or not at all, and the queue usable.

use std::time::Duration;

use shmkit_ipc::MessageQueue;
use shmkit_runtime::__private::crash::crashes_at;
use shmkit_runtime::ManagedHeapMemory;
use shmkit_test_support::sweep::steps;

/// The messages queued before the operation: (bytes, priority).
const BEFORE: [(&[u8], u32); 4] = [(b"a2", 2), (b"b0", 0), (b"c2", 2), (b"d1", 1)];

fn queue(seg: &ManagedHeapMemory) -> &MessageQueue {
    let q = seg
        .construct("q", MessageQueue::new(6, 8).unwrap())
        .unwrap();
    for (msg, prio) in BEFORE {
        q.send(msg, prio).unwrap();
    }
    q
}

/// Takes everything queued (repairing first, as the next caller after a death does).
fn drain(q: &MessageQueue) -> Vec<(Vec<u8>, u32)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8];
    while let Some(r) = q.receive_timeout(&mut buf, Duration::ZERO).unwrap() {
        out.push((buf[..r.len].to_vec(), r.priority));
    }
    out
}

fn in_order(msgs: &[(&[u8], u32)]) -> Vec<(Vec<u8>, u32)> {
    let mut v: Vec<(usize, (Vec<u8>, u32))> = msgs
        .iter()
        .enumerate()
        .map(|(i, (m, p))| (i, (m.to_vec(), *p)))
        .collect();
    v.sort_by_key(|(i, (_, p))| (std::cmp::Reverse(*p), *i));
    v.into_iter().map(|(_, m)| m).collect()
}

/// Runs `op` on a queue holding [`BEFORE`], stopped at each step in turn, on a thread that
/// then ends (so a lock it held is a dead holder's); checks what the next caller finds
/// against the queue without the operation, with it, or (`late`) with it published by the
/// repair that found it (a send that died after its commit takes effect then).
fn sweep(
    salt: u32,
    op: impl Fn(&MessageQueue) + Sync,
    without: &[(Vec<u8>, u32)],
    with: &[(Vec<u8>, u32)],
    late: &[(Vec<u8>, u32)],
) {
    for n in steps(salt) {
        let seg = ManagedHeapMemory::new(16 * 1024).unwrap();
        let q = queue(&seg);
        let done =
            std::thread::scope(|s| s.spawn(|| crashes_at(n, || op(q)).is_ok()).join().unwrap());
        let left = drain(q);
        assert!(
            left == without || left == with || (!done && left == late),
            "stopped at step {n}: the queue holds {left:?}"
        );
        if done {
            assert_eq!(left, with, "the operation ran whole");
            return;
        }
        q.send(b"after", 7).unwrap();
        assert_eq!(drain(q), [(b"after".to_vec(), 7)], "usable after step {n}");
    }
}

#[test]
fn a_send_stopped_anywhere_queues_the_message_whole_or_not_at_all() {
    let mut with = BEFORE.to_vec();
    with.push((b"new", 1));
    let mut late = in_order(&BEFORE);
    late.push((b"new".to_vec(), 1));
    sweep(
        0,
        |q| q.send(b"new", 1).unwrap(),
        &in_order(&BEFORE),
        &in_order(&with),
        &late,
    );
}

#[test]
fn a_receive_stopped_anywhere_takes_the_message_once_or_not_at_all() {
    let all = in_order(&BEFORE);
    sweep(
        1,
        |q| {
            let mut buf = [0u8; 8];
            q.receive(&mut buf).unwrap();
        },
        &all,
        &all[1..],
        &all[1..],
    );
}

#[test]
fn a_repair_stopped_anywhere_is_done_again_by_the_next_caller() {
    // A receive stopped after its commit leaves a repair to do; the repair is stopped in
    // turn, and the caller after it repairs again. (The receive's steps: one per message
    // moved into its lane, four here, then "copied out", then the commit.)
    let all = in_order(&BEFORE);
    for n in steps(2) {
        let seg = ManagedHeapMemory::new(16 * 1024).unwrap();
        let q = queue(&seg);
        let mut buf = [0u8; 8];
        std::thread::scope(|s| {
            s.spawn(|| {
                let stopped = crashes_at(5, || q.receive(&mut [0u8; 8]).unwrap());
                assert!(stopped.is_err(), "the receive stops at its commit");
            });
        });
        let repaired = std::thread::scope(|s| {
            s.spawn(|| crashes_at(n, || q.try_receive(&mut buf).unwrap()).is_ok())
                .join()
                .unwrap()
        });
        let left = drain(q);
        assert!(
            left == all[1..] || left == all[2..],
            "repair stopped at {n}: {left:?}"
        );
        if repaired {
            return;
        }
    }
}
