//! The message queue between real processes: priorities across processes, round trips,
//! and peers SIGKILLed inside `send` and `receive` (every wait under a timeout).

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shmkit_ipc::NamedMessageQueue;
use shmkit_runtime::ManagedSharedMemory;
use shmkit_test_support::{spawn_child, within, ChildProc, Rng, ShmGuard};

#[path = "common/message.rs"]
mod message;

const CHILD: &str = env!("CARGO_BIN_EXE_shmkit-ipc-child");
const LIMIT: Duration = Duration::from_secs(20);
const MSG: usize = 64;

fn child(role: &str, name: &str, extra: &[(&str, String)]) -> ChildProc {
    let mut envs = vec![("SHMKIT_NAME", name.to_string())];
    envs.extend(extra.iter().cloned());
    let mut c = spawn_child(CHILD, role, &envs);
    assert_eq!(c.expect_message(LIMIT), "ready");
    c
}

/// Takes every message now queued, checking each; their sequence numbers and priorities.
fn drain(q: &NamedMessageQueue) -> Vec<(u64, u32)> {
    let mut buf = [0u8; MSG];
    let mut got = Vec::new();
    while let Some(r) = q.try_receive(&mut buf).unwrap() {
        let seq = message::check(&buf[..r.len], r.priority).unwrap();
        got.push((seq, r.priority));
    }
    got
}

/// The queue works after whatever happened: a message goes through and comes back out.
fn assert_usable(q: &NamedMessageQueue) {
    let mut buf = [0u8; MSG];
    let len = message::fill(&mut buf, 12345);
    assert!(
        q.send_timeout(&buf[..len], 1, LIMIT).unwrap(),
        "room for a message"
    );
    let r = q
        .receive_timeout(&mut buf, LIMIT)
        .unwrap()
        .expect("the message back");
    assert_eq!(message::check(&buf[..r.len], r.priority), Ok(12345));
    assert_eq!(q.num_msg(), 0);
}

#[test]
fn messages_of_another_process_come_by_priority_then_in_order() {
    let name = ShmGuard::new();
    let q = NamedMessageQueue::create(name.get(), 1024, MSG).unwrap();
    let mut producer = child("produce", name.get(), &[("SHMKIT_COUNT", "600".into())]);
    assert_eq!(producer.expect_message(LIMIT), "done");
    producer.assert_success(LIMIT);
    let got = drain(&q);
    let mut want: Vec<(u64, u32)> = (0..600).map(|s| (s, message::priority(s))).collect();
    want.sort_by_key(|&(s, p)| (std::cmp::Reverse(p), s));
    assert_eq!(got, want);
}

#[test]
fn a_producer_and_a_consumer_stream_through_a_small_queue() {
    let name = ShmGuard::new();
    let q = NamedMessageQueue::create(name.get(), 4, MSG).unwrap();
    let n = 20_000u64;
    let mut producer = child("produce", name.get(), &[("SHMKIT_COUNT", n.to_string())]);
    let mut last = [None::<u64>; 4];
    let mut count = 0;
    let mut buf = [0u8; MSG];
    while count < n {
        let r = q
            .receive_timeout(&mut buf, LIMIT)
            .unwrap()
            .expect("the next message");
        let seq = message::check(&buf[..r.len], r.priority).unwrap();
        let p = r.priority as usize;
        assert!(
            last[p] < Some(seq),
            "FIFO within priority {p}: {seq} after {:?}",
            last[p]
        );
        last[p] = Some(seq);
        count += 1;
    }
    producer.assert_success(LIMIT);
    assert_eq!(q.num_msg(), 0);
}

#[test]
fn round_trips_through_two_queues() {
    let name = ShmGuard::new();
    let back = ShmGuard(format!("{}.back", name.get()));
    let to = NamedMessageQueue::create(name.get(), 16, MSG).unwrap();
    let from = NamedMessageQueue::create(back.get(), 16, MSG).unwrap();
    let rounds = 2000;
    let mut echo = child("echo", name.get(), &[("SHMKIT_COUNT", rounds.to_string())]);
    let mut buf = [0u8; MSG];
    for seq in 0..rounds {
        let len = message::fill(&mut buf, seq);
        to.send(&buf[..len], message::priority(seq)).unwrap();
        let r = from
            .receive_timeout(&mut buf, LIMIT)
            .unwrap()
            .expect("the echo");
        assert_eq!(message::check(&buf[..r.len], r.priority), Ok(seq));
    }
    assert_eq!(echo.expect_message(LIMIT), "done");
    echo.assert_success(LIMIT);
}

/// Rounds of each kill test (`SHMKIT_KILL_ROUNDS` overrides, for long runs).
fn rounds() -> u64 {
    std::env::var("SHMKIT_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

#[test]
fn a_sender_killed_anywhere_leaves_whole_messages_once_and_a_working_queue() {
    let mut rng = Rng::new(Rng::time_seed());
    for round in 0..rounds() {
        let name = ShmGuard::new();
        let q = Arc::new(NamedMessageQueue::create(name.get(), 8, MSG).unwrap());
        let mut producer = child("produce", name.get(), &[]);
        // Receive while the producer sends; stop once it is dead and the queue drained.
        let dead = Arc::new(AtomicBool::new(false));
        let receiver = {
            let (q, dead) = (q.clone(), dead.clone());
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut buf = [0u8; MSG];
                loop {
                    let stop = dead.load(Ordering::SeqCst);
                    match q
                        .receive_timeout(&mut buf, Duration::from_millis(5))
                        .unwrap()
                    {
                        Some(r) => got.push(message::check(&buf[..r.len], r.priority).unwrap()),
                        None if stop => return got,
                        None => {}
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_micros(rng.range(0, 3000)));
        producer.kill();
        dead.store(true, Ordering::SeqCst);
        let mut got = within(LIMIT, "receiving after the kill", move || {
            receiver.join().unwrap()
        });
        got.extend(drain(&q).into_iter().map(|(s, _)| s));
        got.sort_unstable();
        let n = got.len() as u64;
        assert_eq!(
            got,
            (0..n).collect::<Vec<_>>(),
            "round {round}: every message sent arrives once, whole, none after a gap"
        );
        assert_usable(&q);
    }
}

#[test]
fn a_receiver_killed_anywhere_takes_each_message_at_most_once_and_leaves_a_working_queue() {
    let mut rng = Rng::new(Rng::time_seed());
    const MARKS: usize = 1 << 20;
    for round in 0..rounds() {
        let name = ShmGuard::new();
        let seen_name = ShmGuard::new();
        let seen_seg = ManagedSharedMemory::create(seen_name.get(), 2 * MARKS).unwrap();
        let seen = seen_seg
            .construct_array_with::<AtomicU8>("seen", MARKS, |_| AtomicU8::new(0))
            .unwrap();
        let q = Arc::new(NamedMessageQueue::create(name.get(), 8, MSG).unwrap());
        let mut consumer = child(
            "consume",
            name.get(),
            &[("SHMKIT_SEEN", seen_name.0.clone())],
        );
        let stop = Arc::new(AtomicBool::new(false));
        let sender = {
            let (q, stop) = (q.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; MSG];
                let mut seq = 0u64;
                while !stop.load(Ordering::SeqCst) && (seq as usize) < MARKS {
                    let len = message::fill(&mut buf, seq);
                    let p = message::priority(seq);
                    if q.send_timeout(&buf[..len], p, Duration::from_millis(5))
                        .unwrap()
                    {
                        seq += 1;
                    }
                }
                seq
            })
        };
        std::thread::sleep(Duration::from_micros(rng.range(0, 3000)));
        consumer.kill();
        stop.store(true, Ordering::SeqCst);
        let sent = within(LIMIT, "sending after the kill", move || {
            sender.join().unwrap()
        });
        let left = drain(&q);
        let mut lost = 0;
        for seq in 0..sent {
            let taken = seen[seq as usize].load(Ordering::Relaxed);
            let queued = left.iter().filter(|&&(s, _)| s == seq).count();
            assert!(
                taken as usize + queued <= 1,
                "round {round}: message {seq} taken {taken} times and still queued {queued} times"
            );
            lost += usize::from(taken == 0 && queued == 0);
        }
        assert!(
            lost <= 1,
            "round {round}: {lost} messages neither taken nor queued (at most the one the \
             consumer died holding)"
        );
        assert_usable(&q);
    }
}
