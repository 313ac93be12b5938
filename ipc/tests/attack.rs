//! Attack on the message queue (safe code only), heap segments and buffers only, so that
//! Miri runs it: `MIRIFLAGS='-Zmiri-permissive-provenance -Zmiri-disable-weak-memory-emulation' cargo +nightly miri test -p
//! shmkit-ipc --test attack`. Every test here is a probe that PASSED (a regression test);
//! findings are `#[ignore]`d, each with an explanation. Under Miri (weak memory
//! emulation off, as `.ci/miri` runs it) all 8 passing tests pass with no UB reported, and
//! the ignored finding fails the same way as natively.

use std::mem::MaybeUninit;
use std::time::Duration;

use shmkit_containers::{Vec as ShmVec, VecExt};
use shmkit_ipc::MessageQueue;
use shmkit_runtime::{AlignedBuffer, Error, ManagedExternalBuffer, ManagedHeapMemory};

/// What `#[derive(ShmSafe)]` names the runtime by (the facade's layout).
mod shm {
    pub use shmkit_runtime::*;
}

fn recv(q: &MessageQueue) -> (Vec<u8>, u32) {
    let mut buf = vec![0u8; q.max_msg_size()];
    let got = q.try_receive(&mut buf).unwrap().expect("a message");
    buf.truncate(got.len);
    (buf, got.priority)
}

/// Queues in a segment `Vec` that grows (relocating them), shifts on insert and remove,
/// and is then copied through an image (a cold validation of every queue's storage tag):
/// each queue keeps its own messages, and both copies work independently.
#[test]
fn queues_in_a_vec_survive_relocation_and_image_copies() {
    let mut seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    seg.construct("v", ShmVec::<MessageQueue>::new()).unwrap();
    {
        let mut v = seg.find_mut::<ShmVec<MessageQueue>>("v").unwrap().unwrap();
        v.push(MessageQueue::new(2, 8).unwrap()).unwrap();
        v[0].send(b"q0", 1).unwrap();
        for i in 1..5u8 {
            v.push(MessageQueue::new(2, 8).unwrap()).unwrap(); // grows: relocates
            v[i as usize].send(&[b'q', b'0' + i], 1).unwrap();
        }
        // Shift everything up by one (memmove + relocate), then down again.
        v.insert(0, MessageQueue::new(2, 8).unwrap()).unwrap();
        v[0].send(b"new", 2).unwrap();
        let taken = v.remove_with(2, |q| recv(&q)).unwrap();
        assert_eq!(taken, (b"q1".to_vec(), 1));
        v.shrink_to_fit().unwrap();
        v.reserve(64).unwrap();
    }
    let v = seg.find::<ShmVec<MessageQueue>>("v").unwrap().unwrap();
    let want: [&[u8]; 5] = [b"new", b"q0", b"q2", b"q3", b"q4"];
    for (q, w) in v.iter().zip(want) {
        q.send(b"x", 0).unwrap();
        assert_eq!(recv(q).0, w);
    }
    // A copy through the image: every queue is validated cold (owner tags must match).
    let copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    {
        let cv = copy.find::<ShmVec<MessageQueue>>("v").unwrap().unwrap();
        for q in cv.iter() {
            assert_eq!(recv(q).0, b"x");
            q.send(b"copy", 3).unwrap();
        }
    }
    let v = seg.find::<ShmVec<MessageQueue>>("v").unwrap().unwrap();
    for q in v.iter() {
        assert_eq!(recv(q).0, b"x", "the original is independent of the copy");
        assert_eq!(q.num_msg(), 0);
    }
    let cv = copy.find::<ShmVec<MessageQueue>>("v").unwrap().unwrap();
    assert!(cv.iter().all(|q| q.num_msg() == 1));
    // Destroy both: every block freed, nothing double-freed.
    let mut copy = copy;
    assert!(copy.destroy::<ShmVec<MessageQueue>>("v").unwrap());
    assert!(seg.destroy::<ShmVec<MessageQueue>>("v").unwrap());
}

/// A heap segment grown (the whole segment moves in memory) keeps a working queue.
#[test]
fn a_heap_segment_that_moves_keeps_its_queue() {
    let mut seg = ManagedHeapMemory::new(16 * 1024).unwrap();
    seg.construct("q", MessageQueue::new(4, 16).unwrap())
        .unwrap()
        .send(b"before", 0)
        .unwrap();
    seg.grow(1 << 20).unwrap();
    let q = seg.find::<MessageQueue>("q").unwrap().unwrap();
    assert_eq!(recv(q).0, b"before");
    q.send(b"after", 0).unwrap();
    assert_eq!(recv(q).0, b"after");
}

/// Bytes sent as possibly uninitialised never come back as `[u8]` in this process: not
/// from the queue, not from a copy of its segment (image or buffer), not through
/// `receive_image`.
#[test]
fn uninitialised_bytes_stay_uninitialised_through_copies() {
    let mut seg = ManagedHeapMemory::new(16 * 1024).unwrap();
    let q = seg
        .construct("q", MessageQueue::new(4, 16).unwrap())
        .unwrap();
    let mut bytes = [MaybeUninit::<u8>::uninit(); 16];
    bytes[0] = MaybeUninit::new(1);
    q.send_uninit(&bytes, 0).unwrap();
    let mut buf = [0u8; 16];
    // A heap copy (bytes copied as MaybeUninit).
    let copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    let cq = copy.find::<MessageQueue>("q").unwrap().unwrap();
    assert!(matches!(
        cq.try_receive(&mut buf),
        Err(Error::Unsupported { .. })
    ));
    assert!(matches!(
        cq.receive_timeout(&mut buf, Duration::ZERO),
        Err(Error::Unsupported { .. })
    ));
    // A buffer copy, opened as an external buffer.
    let mut ab = AlignedBuffer::from_image(seg.image());
    assert!(
        ab.write_all_at(&[0], 0).is_err(),
        "a copy of a segment in place is not editable"
    );
    let ext = ManagedExternalBuffer::open(&mut ab).unwrap();
    let eq = ext.find::<MessageQueue>("q").unwrap().unwrap();
    assert!(matches!(
        eq.try_receive(&mut buf),
        Err(Error::Unsupported { .. })
    ));
    // A typed receive is no way around it either.
    assert!(matches!(
        eq.try_receive_value::<[u8; 16]>(),
        Err(Error::TypeMismatch { .. })
    ));
    let mut out = [MaybeUninit::<u8>::uninit(); 16];
    assert_eq!(eq.receive_uninit(&mut out).unwrap().len, 16);
}

/// `send_image` then `receive_image` in one process: a clear error (the chunks are
/// uninitialised here), no hang, no uninitialised read.
#[test]
fn receive_image_in_the_sending_process_is_refused() {
    let mut img = ManagedHeapMemory::new(4096).unwrap();
    img.construct("x", 5u32).unwrap();
    let seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    let q = seg
        .construct("q", MessageQueue::new(16, 512).unwrap())
        .unwrap();
    q.send_image(img.image(), 0).unwrap();
    let err = q.receive_image(Duration::from_millis(10)).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
}

const MARK: u64 = u64::from_le_bytes(*b"shmkimg1");

/// Forged image headers and chunks: errors, never a panic, an abort or a hang.
#[test]
fn receive_image_with_forged_lengths_and_chunks() {
    let seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    let q = seg
        .construct("q", MessageQueue::new(8, 64).unwrap())
        .unwrap();
    let t = Duration::from_millis(1);
    // A length the heap cannot give.
    // (Not under Miri: it reports exhaustion of its own memory instead of failing the
    // allocation.)
    if !cfg!(miri) {
        q.send_value(&[MARK, u64::MAX], 0).unwrap();
        assert!(q.receive_image(t).is_err());
        q.send_value(&[MARK, 1u64 << 50], 0).unwrap();
        assert!(q.receive_image(t).is_err());
    }
    // A chunk longer than what is left.
    q.send_value(&[MARK, 10], 0).unwrap();
    q.send(&[7; 20], 0).unwrap();
    let err = q.receive_image(t).unwrap_err();
    assert!(matches!(err, Error::ReceiveBufferTooSmall { .. }), "{err}");
    assert_eq!(recv(q).0, [7; 20]);
    // An empty chunk.
    q.send_value(&[MARK, 10], 0).unwrap();
    q.send(&[], 0).unwrap();
    assert!(matches!(q.receive_image(t), Err(Error::Corrupted { .. })));
    // A missing chunk: timeout.
    q.send_value(&[MARK, 10], 0).unwrap();
    q.send(&[1; 4], 0).unwrap();
    assert!(matches!(q.receive_image(t), Err(Error::Timeout { .. })));
    // Wrong mark: stays queued? (taken: InvalidValue)
    q.send_value(&[0u64, 10], 0).unwrap();
    assert!(matches!(
        q.receive_image(t),
        Err(Error::InvalidValue { .. })
    ));
    // A zero-length image and a garbage image are buffers that do not open.
    q.send_value(&[MARK, 0], 0).unwrap();
    let mut b = q.receive_image(t).unwrap();
    assert!(ManagedExternalBuffer::open(&mut b).is_err());
    q.send_value(&[MARK, 64], 0).unwrap();
    q.send(&[0xFF; 64], 0).unwrap();
    let mut b = q.receive_image(t).unwrap();
    assert!(ManagedExternalBuffer::open(&mut b).is_err());
    assert_eq!(q.num_msg(), 0);
}

/// Zero-length messages, the largest message, capacities at and past the limits.
#[test]
fn edges_of_length_and_capacity() {
    let seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    let q = seg
        .construct("q", MessageQueue::new(1, 1).unwrap())
        .unwrap();
    q.send(&[], 9).unwrap();
    assert!(!q.try_send(&[1], 0).unwrap(), "full");
    assert_eq!(recv(q), (vec![], 9));
    assert!(matches!(
        q.send(&[1, 2], 0),
        Err(Error::MessageTooLarge { .. })
    ));
    let mut empty: [u8; 0] = [];
    q.send(&[5], 0).unwrap();
    assert!(matches!(
        q.try_receive(&mut empty),
        Err(Error::ReceiveBufferTooSmall { .. })
    ));
    assert!(MessageQueue::new(0, 1).is_err());
    assert!(MessageQueue::new(1, 0).is_err());
    assert!(MessageQueue::new((1 << 24) + 1, 1).is_err());
    assert!(MessageQueue::new(usize::MAX, usize::MAX).is_err());
    // The largest accepted shape: its storage is refused by the segment, cleanly.
    let big = seg
        .construct(
            "big",
            MessageQueue::new(1 << 24, u32::MAX as usize).unwrap(),
        )
        .unwrap();
    assert!(big.prepare().is_err());
    assert!(big.try_send(b"x", 0).is_err());
    assert!(big.try_receive(&mut [0u8; 4]).unwrap().is_none());
    assert!(big.receive_timeout(&mut [0u8; 4], Duration::ZERO).is_err());
}

/// Typed values with invalid bit patterns cannot be produced by any safe sender: a
/// `send_value` of the raw bytes is another type (`TypeMismatch`).
#[test]
fn typed_values_of_another_type_are_refused() {
    #[derive(shmkit_macros::ShmSafe, shmkit_macros::NoPadding, Clone, Copy, Debug, PartialEq)]
    #[shm(crate = "crate::shm")]
    #[repr(u8)]
    enum E {
        A = 1,
        B = 3,
    }
    let seg = ManagedHeapMemory::new(16 * 1024).unwrap();
    let q = seg
        .construct("q", MessageQueue::new(4, 16).unwrap())
        .unwrap();
    q.send_value(&2u8, 0).unwrap();
    assert!(matches!(
        q.try_receive_value::<bool>(),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        q.try_receive_value::<E>(),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        q.try_receive_value::<[bool; 1]>(),
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!(q.try_receive_value::<u8>().unwrap(), Some((2, 0)));
    q.send_value(&0xD800u32, 0).unwrap();
    assert!(matches!(
        q.try_receive_value::<char>(),
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!(q.try_receive_value::<u32>().unwrap(), Some((0xD800, 0)));
    for e in [E::A, E::B] {
        q.send_value(&e, 0).unwrap();
        assert_eq!(q.try_receive_value::<E>().unwrap(), Some((e, 0)));
    }
    q.send_value(&'x', 0).unwrap();
    assert_eq!(q.try_receive_value::<char>().unwrap(), Some(('x', 0)));
}

/// Threads hammer one queue with zero timeouts and try_* calls: every message arrives once.
#[test]
fn threads_with_zero_timeouts() {
    let seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    let q = seg
        .construct("q", MessageQueue::new(2, 8).unwrap())
        .unwrap();
    let per = if cfg!(miri) { 5u64 } else { 2000 };
    let got = std::thread::scope(|s| {
        for t in 0..2u64 {
            s.spawn(move || {
                for i in 0..per {
                    let v = t * per + i;
                    loop {
                        let sent = if i % 2 == 0 {
                            q.try_send_value(&v, (v % 3) as u32).unwrap()
                        } else {
                            q.send_value_timeout(&v, (v % 3) as u32, Duration::ZERO)
                                .unwrap()
                        };
                        if sent {
                            break;
                        }
                        std::thread::yield_now();
                    }
                }
            });
        }
        let r: Vec<_> = (0..2)
            .map(|k| {
                s.spawn(move || {
                    let mut got = Vec::new();
                    let mut idle = 0;
                    while idle < (if cfg!(miri) { 50 } else { 20000 }) {
                        let r = if k == 0 {
                            q.try_receive_value::<u64>().unwrap()
                        } else {
                            q.receive_value_timeout::<u64>(Duration::ZERO).unwrap()
                        };
                        match r {
                            Some((v, _)) => {
                                got.push(v);
                                idle = 0
                            }
                            None => {
                                idle += 1;
                                std::thread::yield_now()
                            }
                        }
                    }
                    got
                })
            })
            .collect();
        r.into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    let mut got = got;
    while let Some((v, _)) = q.try_receive_value::<u64>().unwrap() {
        got.push(v);
    }
    got.sort();
    assert_eq!(got, (0..2 * per).collect::<Vec<_>>());
}

/// FINDING (liveness): a sender that dies after its commit (the slot's state stored) but
/// before it publishes the `queued` hint leaves a queued message that `try_receive` and
/// `try_receive_value` never see: they return `None` from the hint without taking the
/// lock, so they never find the poisoned lock and never repair. A consumer that polls
/// with `try_receive` (the documented non-blocking way) misses the message until someone
/// else happens to take the lock (a send, a blocking receive). `receive_timeout(ZERO)`
/// meanwhile finds it at once.
///
/// Fix: make the hint never lower than the truth while a send is in flight, e.g. raise
/// `queued` (fetch_add) before the commit store in `push`'s caller, or have the fast path
/// fall back to the lock when the mutex is poisoned/held by a dead owner.
#[test]
fn try_receive_sees_a_message_whose_sender_died_after_the_commit() {
    use shmkit_runtime::__private::crash::crashes_at;
    let mut missed = Vec::new();
    for n in 1..12 {
        let seg = ManagedHeapMemory::new(16 * 1024).unwrap();
        let q = seg
            .construct("q", MessageQueue::new(4, 8).unwrap())
            .unwrap();
        q.prepare().unwrap();
        let done = std::thread::scope(|s| {
            s.spawn(|| crashes_at(n, || q.send(b"m", 1).unwrap()).is_ok())
                .join()
                .unwrap()
        });
        let mut buf = [0u8; 8];
        let polled = q.try_receive(&mut buf).unwrap();
        let polled_value = q.try_receive_value::<u8>().map(|v| v.is_some());
        let locked = q.receive_timeout(&mut buf, Duration::ZERO).unwrap();
        if polled.is_none() && locked.is_some() {
            missed.push((n, polled_value));
        }
        if done {
            break;
        }
    }
    assert!(
        missed.is_empty(),
        "crash steps after which try_receive said 'empty' while a message was queued: {missed:?}"
    );
}
