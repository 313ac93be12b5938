//! The message queue in one process: order, capacity, errors that lose nothing, typed
//! messages, placement. Heap segments only, so that Miri runs it too.

use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use shmkit_ipc::{MessageQueue, Received};
use shmkit_runtime::{Error, ManagedHeapMemory};

fn segment() -> ManagedHeapMemory {
    ManagedHeapMemory::new(64 * 1024).unwrap()
}

fn recv(q: &MessageQueue) -> (Vec<u8>, u32) {
    let mut buf = vec![0u8; q.max_msg_size()];
    let Received { len, priority } = q.receive(&mut buf).unwrap();
    buf.truncate(len);
    (buf, priority)
}

#[test]
fn higher_priority_first_then_in_sending_order() {
    let seg = segment();
    let q = seg
        .construct("q", MessageQueue::new(8, 16).unwrap())
        .unwrap();
    for (msg, prio) in [
        ("a1", 1),
        ("b0", 0),
        ("c5", 5),
        ("d1", 1),
        ("e5", 5),
        ("f0", 0),
    ] {
        q.send(msg.as_bytes(), prio).unwrap();
    }
    assert_eq!(q.num_msg(), 6);
    let order: Vec<(String, u32)> = (0..6)
        .map(|_| {
            let (b, p) = recv(q);
            (String::from_utf8(b).unwrap(), p)
        })
        .collect();
    let want = [
        ("c5", 5),
        ("e5", 5),
        ("a1", 1),
        ("d1", 1),
        ("b0", 0),
        ("f0", 0),
    ];
    assert_eq!(
        order,
        want.map(|(m, p)| (m.to_string(), p)).to_vec(),
        "priority order, FIFO within one"
    );
    assert_eq!(q.num_msg(), 0);
}

#[test]
fn order_holds_through_many_interleaved_operations() {
    // A model of the queue (a sorted list) against the real one, over a fixed random mix.
    let seg = segment();
    let q = seg
        .construct("q", MessageQueue::new(16, 8).unwrap())
        .unwrap();
    let mut model: Vec<(u32, u64)> = Vec::new();
    let (mut seq, mut x) = (0u64, 0x9E37_79B9_7F4A_7C15u64);
    let rounds = if cfg!(miri) { 200 } else { 5000 };
    for _ in 0..rounds {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x % 3 != 0 {
            let prio = (x >> 8) as u32 % 5;
            let sent = q.try_send(&seq.to_le_bytes(), prio).unwrap();
            assert_eq!(sent, model.len() < 16, "try_send fails exactly when full");
            if sent {
                model.push((prio, seq));
                seq += 1;
            }
        } else {
            let mut buf = [0u8; 8];
            let got = q.try_receive(&mut buf).unwrap();
            let best = model
                .iter()
                .enumerate()
                .max_by_key(|(_, (p, s))| (*p, std::cmp::Reverse(*s)))
                .map(|(i, _)| i);
            match (got, best) {
                (None, None) => {}
                (Some(r), Some(i)) => {
                    let (p, s) = model.remove(i);
                    assert_eq!((r.len, r.priority, u64::from_le_bytes(buf)), (8, p, s));
                }
                other => panic!("queue and model disagree: {other:?}"),
            }
        }
        assert_eq!(q.num_msg(), model.len());
    }
}

#[test]
fn a_full_queue_refuses_and_an_empty_one_has_nothing() {
    let seg = segment();
    let q = seg
        .construct("q", MessageQueue::new(2, 4).unwrap())
        .unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(q.try_receive(&mut buf).unwrap(), None);
    assert!(q.try_send(b"1", 0).unwrap());
    assert!(q.try_send(b"2", 0).unwrap());
    assert!(!q.try_send(b"3", 9).unwrap(), "full");
    let t = Instant::now();
    assert!(!q.send_timeout(b"3", 9, Duration::from_millis(20)).unwrap());
    assert!(t.elapsed() >= Duration::from_millis(20));
    assert_eq!(recv(q).0, b"1");
    assert_eq!(recv(q).0, b"2");
    let t = Instant::now();
    assert_eq!(
        q.receive_timeout(&mut buf, Duration::from_millis(20))
            .unwrap(),
        None
    );
    assert!(t.elapsed() >= Duration::from_millis(20));
}

#[test]
fn errors_lose_nothing() {
    let seg = segment();
    let q = seg
        .construct("q", MessageQueue::new(4, 8).unwrap())
        .unwrap();
    assert!(matches!(
        q.send(&[0; 9], 0),
        Err(Error::MessageTooLarge { size: 9, max: 8 })
    ));
    assert_eq!(q.num_msg(), 0, "nothing sent");
    q.send(b"12345678", 3).unwrap();
    let mut small = [0u8; 7];
    let err = q.try_receive(&mut small).unwrap_err();
    assert!(
        matches!(err, Error::ReceiveBufferTooSmall { len: 7, needed: 8 }),
        "{err}"
    );
    assert!(err.to_string().contains("nothing was taken"));
    assert_eq!(q.num_msg(), 1, "nothing taken");
    assert_eq!(recv(q), (b"12345678".to_vec(), 3));
    q.send(b"", 0).unwrap();
    assert_eq!(recv(q), (vec![], 0), "empty messages are messages");
}

#[test]
fn capacities_are_checked() {
    for (n, size) in [
        (0, 8),
        (8, 0),
        (usize::MAX, 8),
        (8, usize::MAX),
        ((1 << 24) + 1, 8),
    ] {
        let err = MessageQueue::new(n, size).unwrap_err();
        assert!(
            matches!(err, Error::InvalidSize { .. }),
            "{n} x {size}: {err}"
        );
        assert_eq!(MessageQueue::storage_bytes(n, size), None);
    }
    let q = MessageQueue::new(3, 5).unwrap();
    assert_eq!((q.max_msg(), q.max_msg_size(), q.num_msg()), (3, 5, 0));
}

#[test]
fn a_queue_too_large_for_its_segment_says_so_and_the_segment_stays_usable() {
    let seg = segment();
    let q = seg
        .construct("q", MessageQueue::new(1024, 1024).unwrap())
        .unwrap();
    assert!(matches!(q.prepare(), Err(Error::OutOfMemory { .. })));
    assert!(matches!(
        q.try_send(b"x", 0),
        Err(Error::OutOfMemory { .. })
    ));
    let small = seg
        .construct("small", MessageQueue::new(4, 4).unwrap())
        .unwrap();
    small.send(b"ok", 0).unwrap();
    assert_eq!(recv(small).0, b"ok");
}

#[test]
fn a_queue_outside_a_segment_reports_it() {
    let q = MessageQueue::new(4, 4).unwrap();
    let err = q.send(b"x", 0).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert!(
        err.to_string().contains("outside a writable segment"),
        "{err}"
    );
}

#[test]
fn destroying_a_queue_frees_its_slots() {
    let mut seg = segment();
    let before = seg.free_memory();
    {
        let q = seg
            .construct("q", MessageQueue::new(16, 256).unwrap())
            .unwrap();
        q.prepare().unwrap();
        q.send(b"left behind", 0).unwrap();
    }
    assert!(seg.free_memory() < before - 16 * 256);
    assert!(seg.destroy::<MessageQueue>("q").unwrap());
    assert_eq!(seg.free_memory(), before);
}

#[test]
fn typed_messages_check_their_type() {
    let seg = segment();
    let q = seg
        .construct("q", MessageQueue::new(4, 32).unwrap())
        .unwrap();
    q.send_value(&[1u32, 2, 3], 2).unwrap();
    q.send_value(&true, 1).unwrap();
    let err = q.try_receive_value::<[u32; 4]>().unwrap_err();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
    let err = q.try_receive_value::<[i32; 3]>().unwrap_err();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
    assert_eq!(q.num_msg(), 2, "a mismatch takes nothing");
    assert_eq!(q.receive_value::<[u32; 3]>().unwrap(), ([1, 2, 3], 2));
    assert_eq!(
        q.receive_value_timeout::<bool>(Duration::ZERO).unwrap(),
        Some((true, 1))
    );
    // Raw bytes are no typed value, even of the right length.
    q.send(&[1], 0).unwrap();
    assert!(matches!(
        q.try_receive_value::<u8>(),
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!(recv(q), (vec![1], 0));
}

#[test]
fn uninitialised_bytes_come_back_only_as_uninitialised_here() {
    let seg = segment();
    let q = seg
        .construct("q", MessageQueue::new(4, 32).unwrap())
        .unwrap();
    let mut bytes = [MaybeUninit::<u8>::uninit(); 8];
    bytes[0] = MaybeUninit::new(7);
    q.send_uninit(&bytes, 0).unwrap();
    let mut buf = [0u8; 32];
    let err = q.try_receive(&mut buf).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert_eq!(q.num_msg(), 1, "refused, not taken");
    let mut out = [MaybeUninit::<u8>::uninit(); 32];
    let got = q.receive_uninit(&mut out).unwrap();
    assert_eq!(got.len, 8);
    // SAFETY: byte 0 was sent initialised.
    assert_eq!(unsafe { out[0].assume_init() }, 7);
}

#[test]
fn threads_share_a_queue_and_every_message_arrives_once() {
    let seg = segment();
    let q = seg
        .construct("q", MessageQueue::new(4, 8).unwrap())
        .unwrap();
    let per = if cfg!(miri) { 20 } else { 20_000 };
    let got = std::thread::scope(|s| {
        for t in 0..2u64 {
            s.spawn(move || {
                for i in 0..per {
                    q.send(&(t << 32 | i).to_le_bytes(), (i % 3) as u32)
                        .unwrap();
                }
            });
        }
        let receivers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(move || {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 8];
                    while q
                        .receive_timeout(&mut buf, Duration::from_millis(500))
                        .unwrap()
                        .is_some()
                    {
                        seen.push(u64::from_le_bytes(buf));
                    }
                    seen
                })
            })
            .collect();
        receivers
            .into_iter()
            .flat_map(|r| r.join().unwrap())
            .collect::<Vec<_>>()
    });
    let mut got = got;
    got.sort_unstable();
    let mut want: Vec<u64> = (0..2u64)
        .flat_map(|t| (0..per).map(move |i| t << 32 | i))
        .collect();
    want.sort_unstable();
    assert_eq!(got, want);
}
