//! Attack on the two-lock message queue (commit 61acaba), safe code only (plus the
//! crash-point hooks of `shmkit_runtime::__private::crash` and test-support's `corrupt`,
//! which stands in for a forged file). Each test here is a focused regression test for a
//! finding: it FAILS on 61acaba and says why, with a suggested fix. (Probes that held are
//! summed up in the report, not kept here.)
//!
//! Under Miri (`MIRIFLAGS='-Zmiri-permissive-provenance -Zmiri-disable-weak-memory-emulation'
//! cargo +nightly miri test -p shmkit-ipc --test attack2`) the three tests without mapped
//! files fail the same way as natively, with no UB reported; the two with a mapped file are
//! ignored there.

use std::time::{Duration, Instant};

use shmkit_ipc::MessageQueue;
use shmkit_runtime::__private::crash::crashes_at;
use shmkit_runtime::ManagedHeapMemory;

/// Runs `op` on a thread of its own, stopped at its `n`-th crash point; the thread then
/// ends, so a lock it held is a dead owner's (as after a SIGKILL). Whether `op` completed.
fn dies_at(n: u32, op: impl FnOnce() + Send) -> bool {
    std::thread::scope(|s| s.spawn(|| crashes_at(n, op).is_ok()).join().unwrap())
}

/// A queue "q" of `max_msg` messages of 8 bytes in `seg`, holding `msgs` (bytes, priority).
fn queue_holding<'s>(
    seg: &'s ManagedHeapMemory,
    max_msg: usize,
    msgs: &[(&[u8], u32)],
) -> &'s MessageQueue {
    let q = seg
        .construct("q", MessageQueue::new(max_msg, 8).unwrap())
        .unwrap();
    for &(m, p) in msgs {
        q.send(m, p).unwrap();
    }
    q
}

/// FINDING (liveness, low): `try_send` reports "full" for good after a receiver died
/// between its commit (the slot's state stored 0) and counting the slot freed, when the
/// slot it took is neither the senders' cursor nor the `last_freed` hint (which the dying
/// receiver had not written yet) -- i.e. whenever priorities made it take a message other
/// than the oldest. `claim` then trusts the counts (`taken - freed == max_msg`), answers
/// `Ok(None)`, and `send_bytes` with `Wait::No` returns `false` without ever looking at
/// the receive lock, so the poisoned lock is never found and never repaired: a producer
/// that only polls with `try_send` (the documented non-blocking way) is told "full" while
/// a slot is free, until some other caller happens to repair. `send_timeout(ZERO)` finds
/// the dead receiver at once (its `wait_for` calls `peer_died`) and sends. The same shape
/// as the old `try_receive` finding in attack.rs, on the other side.
///
/// Suggested fix: in `send_bytes`, on `Ok(None)` with `Wait::No`, call
/// `self.peer_died(Side::Sender, block)?` once and retry when it repaired (it takes the
/// receive lock only if free or its holder dead, for a moment); or have `claim` scan the
/// states when the counts say full and the receive lock is poisoned.
#[test]
fn try_send_sees_a_slot_freed_by_a_receiver_that_died_before_counting_it() {
    let mut refused = Vec::new();
    for n in 0.. {
        let seg = ManagedHeapMemory::new(16 * 1024).unwrap();
        // Slots 0..3; the highest priority sits in slot 2, not at the cursor (slot 0).
        let q = queue_holding(&seg, 4, &[(b"x0", 0), (b"y1", 1), (b"top9", 9), (b"z0", 0)]);
        let mut got = [0u8; 8];
        let done = dies_at(n, || {
            q.receive(&mut got).unwrap();
        });
        // What a receiver finds now (after a repair): how many messages are left.
        let polled = q.try_send(b"new", 0).unwrap();
        let timed = !polled && q.send_timeout(b"new", 0, Duration::ZERO).unwrap();
        if timed {
            // try_send said "full", yet a zero-timeout send found room at once.
            refused.push(n);
        }
        if done {
            break;
        }
    }
    assert!(
        refused.is_empty(),
        "receive stopped at these steps: try_send then said 'full' while a slot was free \
         (send_timeout(ZERO) sent at once): {refused:?}"
    );
}

// ---- words checked, then read again unchecked ---------------------------------------------

use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU32, Ordering};

use shmkit_runtime::ManagedMappedFile;
use shmkit_test_support::TempPath;

/// Capacity of the queues below: few, large messages (a long payload copy between the
/// check and the second read).
const N: usize = 2;
const BIG: usize = 4 << 20;
/// Offsets in the queue value (see the layout asserts of `MessageQueue`, `SendSide`,
/// `RecvSide`): the storage offset word, the senders' `tail` copy, the receivers'
/// `lanes_len`.
const STORAGE_AT: usize = 8;
const SEND_TAIL_AT: usize = 64 + 8 + 24;
const LANES_LEN_AT: usize = 256 + 8 + 4;
/// The canary's length in words: 128 KiB, more than a new segment keeps free near its
/// header for small first objects, so that it is placed after the queue's storage.
const CANARY_WORDS: usize = 32 << 10;

/// A mapped file holding a queue of `N` messages of `BIG` bytes with its slots, and after
/// them a canary object: (segment, queue, canary, offset of the queue, of its block, of the
/// canary), all offsets from the segment's start (= in the file).
fn file_with_canary(
    path: &TempPath,
) -> (
    &'static ManagedMappedFile,
    &'static MessageQueue,
    &'static [u32; CANARY_WORDS],
    usize,
    usize,
    usize,
) {
    let seg: &'static ManagedMappedFile = Box::leak(Box::new(
        ManagedMappedFile::create(path.get(), 16 << 20).unwrap(),
    ));
    let q = seg
        .construct("q", MessageQueue::new(N, BIG).unwrap())
        .unwrap();
    q.prepare().unwrap();
    let canary = seg
        .construct("canary", [0xC0DE_CAFEu32; CANARY_WORDS])
        .unwrap();
    let base = seg.base_address().as_ptr().addr();
    let qoff = std::ptr::from_ref(q).addr() - base;
    let coff = std::ptr::from_ref(canary).addr() - base;
    let img = std::fs::read(path.get()).unwrap();
    let rel = u64::from_le_bytes(
        img[qoff + STORAGE_AT..qoff + STORAGE_AT + 8]
            .try_into()
            .unwrap(),
    );
    let block = ((qoff + STORAGE_AT) as u64).wrapping_add(rel) as usize;
    assert!(coff > block + MessageQueue::storage_bytes(N, BIG).unwrap() - 1);
    (seg, q, canary, qoff, block, coff)
}

/// Runs `op` on one thread while another writes `value` at `at` of the file (through
/// `std::fs`, as another program writing the shared segment would) after `delay`: whether
/// `op` panicked.
fn with_a_writer(
    file: &std::fs::File,
    at: usize,
    value: u32,
    delay: Duration,
    op: impl FnOnce() + Send,
) -> bool {
    let go = AtomicU32::new(0);
    std::thread::scope(|s| {
        let w = s.spawn(|| {
            while go.load(Ordering::Acquire) == 0 {
                std::hint::spin_loop();
            }
            let t0 = Instant::now();
            while t0.elapsed() < delay {
                std::hint::spin_loop();
            }
            file.write_all_at(&value.to_le_bytes(), at as u64).unwrap();
        });
        let o = s.spawn(|| {
            go.store(1, Ordering::Release);
            op();
        });
        let panicked = o.join().is_err();
        w.join().unwrap();
        panicked
    })
}

/// FINDING (memory safety against a writer of the segment, medium): `Producer::claim`
/// checks the senders' `tail` (`b.position(tail)`), but `Producer::send` loads
/// `send.tail` again after copying the payload and uses that second value unchecked:
/// `b.put(b.arrived(tail), slot)` (`entry(tail)` is then up to `u32::MAX - max_msg`) and
/// `b.shape.advance(tail)`. A word changed between the two loads -- by anything that writes
/// the segment outside shmkit's API: another program, or as here `std::fs` writes to the
/// mapped file, safe code -- makes the send write a slot number up to 16 GiB past the
/// arrival ring: here into the next object of the segment (release build: the canary is
/// overwritten; debug build: `u32_at`'s `debug_assert!` panics inside `send`). The
/// module's own promise is "every index and position read from the block or the counters
/// is checked before it is used, so no bytes make an access leave the block"; a peer
/// process running safe code can instead make this process write anywhere in the 16 GiB
/// after the ring (its private memory included) with a chosen offset.
///
/// Suggested fix: load `tail` once, under the lock, in `claim` (it is checked there) and
/// pass that value to `send` (e.g. return it with the slot); never re-read a checked word.
#[test]
#[cfg_attr(miri, ignore = "mapped files")]
fn send_uses_the_tail_it_checked_not_a_second_read() {
    let path = TempPath::new();
    let (_seg, q, canary, qoff, block, coff) = file_with_canary(&path);
    // A tail whose ring entry is the canary's first word.
    let arrived_at = 8 + 16 * N;
    let forged = (N + (coff - block - arrived_at) / 4) as u32;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path.get())
        .unwrap();
    let msg = vec![0x5Au8; BIG];
    let (mut attempts, mut panics) = (0u64, 0);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) && canary[0] == 0xC0DE_CAFE && panics == 0 {
        attempts += 1;
        // The writer lands anywhere from the claim to after the copy of the payload.
        let delay = Duration::from_micros(attempts * 37 % 1500);
        if with_a_writer(&file, qoff + SEND_TAIL_AT, forged, delay, || {
            let _ = q.send_timeout(&msg, 0, Duration::from_secs(2));
        }) {
            panics += 1;
        }
        let mut buf = vec![0u8; BIG];
        for _ in 0..4 {
            let _ = q.receive_timeout(&mut buf, Duration::ZERO);
        }
    }
    assert!(
        canary[0] == 0xC0DE_CAFE && panics == 0,
        "after {attempts} sends with the tail changed under them: the canary object after the \
         queue's block now holds {:#x} (a send wrote outside its block), or a send panicked \
         ({panics}: u32_at's debug_assert, an access outside the block)",
        canary[0]
    );
}

/// FINDING (memory safety against a writer of the segment, medium; same shape as above):
/// `Consumer::head` checks `lanes_len` (`lanes > max_msg` is `Broken`), but
/// `Consumer::take` loads it again after the payload was copied out and uses it unchecked:
/// `lane = lanes_len - 1` (an overflow panic in debug builds for 0), then
/// `b.get(b.lane(lane, LANE_TAIL))` and `b.put(b.lane(lane, LANE_HEAD), next)`: a write
/// of the head's `next` word up to 64 GiB past the lanes. Here it lands in the next object
/// of the segment (release: the canary changes; debug: `u32_at`'s `debug_assert!`
/// panics inside `receive`).
///
/// Suggested fix: carry the lane index that `head` checked in `Head` (or re-check
/// `lanes_len` against `max_msg` and against the value `head` saw) and use only that in
/// `take`.
#[test]
#[cfg_attr(miri, ignore = "mapped files")]
fn take_uses_the_lane_count_it_checked_not_a_second_read() {
    let path = TempPath::new();
    let (_seg, q, canary, qoff, block, coff) = file_with_canary(&path);
    // lane(i, LANE_HEAD) = block + 8 + 16 i + 4: a lane count whose last lane's head is a
    // canary word (and whose tail word, the next canary word, is no slot).
    let k = ((16 + 12 - (coff - block) % 16) % 16) / 4;
    let forged = ((coff + 4 * k - block - 12) / 16 + 1) as u32;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path.get())
        .unwrap();
    let msg = vec![0x5Au8; BIG];
    let (mut attempts, mut panics) = (0u64, 0);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) && canary[k] == 0xC0DE_CAFE && panics == 0 {
        attempts += 1;
        // Two messages of one priority: the lane's tail is not its head.
        let _ = q.send_timeout(&msg, 0, Duration::from_millis(100));
        let _ = q.send_timeout(&msg, 0, Duration::from_millis(100));
        let delay = Duration::from_micros(attempts * 37 % 1500);
        if with_a_writer(&file, qoff + LANES_LEN_AT, forged, delay, || {
            let mut b = vec![0u8; BIG];
            let _ = q.receive_timeout(&mut b, Duration::from_secs(2));
        }) {
            panics += 1;
        }
        let mut buf = vec![0u8; BIG];
        for _ in 0..4 {
            let _ = q.receive_timeout(&mut buf, Duration::ZERO);
        }
    }
    assert!(
        canary[k] == 0xC0DE_CAFE && panics == 0,
        "after {attempts} receives with lanes_len changed under them: the canary object after \
         the queue's block now holds {:#x} (a receive wrote outside its block), or a receive \
         panicked ({panics}: an overflow or u32_at's debug_assert)",
        canary[k]
    );
}

// ---- forged bytes: a state no repair ever finds -------------------------------------------

use shmkit_test_support::{corrupt, image_bytes};

/// FINDING (forged bytes, robustness, low): a queue whose senders' `tail` copy (one word,
/// `SendSide::tail`) was set back to 0 opens fine and then swallows the next `max_msg`
/// messages: senders publish them at ring positions 0..max_msg, which brings the
/// published tail back to exactly the receivers' `arrived_head` (4 here), so receivers see
/// an empty ring (`distance == 0`), while the counts say full. Nothing is ever `Broken`:
/// `try_receive` says None and `try_send` says full for good, `num_msg` says 4, a blocking
/// `send` or `receive` waits forever, and no caller ever repairs (a single send would
/// have been caught: distance 5 > 4 is `Broken`). The module promises that words that do
/// not add up are rebuilt from the states; these do not add up (4 slots queued by their
/// states, none reachable) and are never rebuilt.
///
/// Suggested fix: check under the send lock, in `claim`, that `send.tail` equals the
/// published tail (both are the senders' own words); and have a receiver that finds the
/// ring and lanes empty with no claim but `taken - freed > 1` (one is a receiver's
/// transient) treat it as `Broken` (e.g. in `peer_died` while it holds the free send
/// lock, or under both locks taken with `try_lock`).
#[test]
fn forged_sender_tail_does_not_swallow_the_next_messages_for_good() {
    const N: usize = 4;
    let mut seg = ManagedHeapMemory::new(16 * 1024).unwrap();
    let qoff = {
        let q = seg
            .construct("q", MessageQueue::new(N, 24).unwrap())
            .unwrap();
        for i in 0..N as u8 {
            q.send(&[i], 0).unwrap();
        }
        let mut b = [0u8; 24];
        while q.try_receive(&mut b).unwrap().is_some() {}
        std::ptr::from_ref(q).addr() - seg.base_address().as_ptr().addr()
    };
    // The senders' tail copy, published tail and receivers' head all say 4 (= N sends);
    // the tail copy set to 0, then the segment copied (a cold open validates the copy).
    let at = qoff + SEND_TAIL_AT;
    if !cfg!(miri) {
        // (memfd: not under Miri)
        assert_eq!(image_bytes(&mut seg)[at..at + 4], (N as u32).to_le_bytes());
    }
    corrupt(&mut seg, at, &0u32.to_le_bytes());
    let copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    let q = copy.find::<MessageQueue>("q").unwrap().unwrap();
    let mut sent = 0;
    for i in 0..N as u8 {
        sent += usize::from(q.try_send(&[b'F', i], 1).unwrap());
    }
    assert_eq!(sent, N, "the queue was empty: every send finds room");
    let mut got = Vec::new();
    let mut b = [0u8; 24];
    for _ in 0..3 {
        if let Some(r) = q.try_receive(&mut b).unwrap() {
            got.push(b[..r.len].to_vec());
        }
        if let Some(r) = q
            .receive_timeout(&mut b, Duration::from_millis(20))
            .unwrap()
        {
            got.push(b[..r.len].to_vec());
        }
        let _ = q.send_timeout(b"more", 0, Duration::from_millis(20));
    }
    assert!(
        got.len() >= N,
        "{N} messages sent after the open, {} received ({got:?}); num_msg says {}; \
         try_send now says {} (false: full)",
        got.len(),
        q.num_msg(),
        q.try_send(b"x", 0).unwrap()
    );
}

// ---- num_msg after a death ------------------------------------------------------------------

/// FINDING (accuracy, low): after a peer died mid-operation, `num_msg` is off by one until
/// some other operation happens to repair, though nobody else is running: a sender stopped
/// right after claiming ("send: slot claimed": claim stored, `taken` not yet counted)
/// makes it say one less than the queued messages (it subtracts the claim); a receiver
/// stopped after its commit ("receive: taken (the commit)", freed not yet counted) one
/// more. `num_msg` reads the counts only, without looking whether a lock holder died.
/// (A sender stopped after its commit is counted out too, while `try_receive` takes its
/// message at once.)
///
/// Suggested fix: let `num_msg` count the claimed slot by its state (committed: queued)
/// and, when a claim is set or the counts disagree, look at the locks as `peer_died`
/// does (a dead holder: repair first, then count); or count from the states.
#[test]
fn num_msg_is_exact_once_nobody_runs() {
    let mut wrong = Vec::new();
    for (what, receive) in [("send", false), ("receive", true)] {
        for n in 0.. {
            let seg = ManagedHeapMemory::new(16 * 1024).unwrap();
            let q = queue_holding(&seg, 6, &[(b"a2", 2), (b"b0", 0), (b"c2", 2), (b"d1", 1)]);
            let stopped = std::thread::scope(|s| {
                s.spawn(|| {
                    crashes_at(n, || {
                        if receive {
                            q.receive(&mut [0u8; 8]).unwrap();
                        } else {
                            q.send(b"new", 1).unwrap();
                        }
                    })
                    .err()
                })
                .join()
                .unwrap()
            });
            let said = q.num_msg();
            let mut left = 0;
            while q.try_receive(&mut [0u8; 8]).unwrap().is_some() {
                left += 1;
            }
            let Some(step) = stopped else { break };
            if said != left {
                wrong.push(format!(
                    "{what} stopped at {step:?}: num_msg {said}, {left} queued"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

// ---- the crash hooks: what a stopped thread leaves of the locks it held ---------------------

/// FINDING (test harness, medium: the crash sweeps do not test what they say): a thread
/// stopped at one of the queue's crash points (`__private::crash::point`, the *external*
/// domain) does not leave the locks it holds held by a dead owner, as a SIGKILL would and
/// as `tests/crash.rs` says ("on a thread that then ends (so a lock it held is a dead
/// owner's)"): the runtime's `RawMutex::release` skips releasing only when the *runtime*
/// domain is crashing (`robust::crash::crashing()` reads that domain's plan), so during an
/// external crash the guard's drop runs as for an ordinary panic: it poisons the lock
/// (`PoisonCause::Panicked`) and unlocks it. Every in-process sweep of the queue
/// (crash.rs, attack.rs's try_receive test, the sweeps of this file) therefore exercises
/// "released and poisoned", never "held by a dead thread": the takeover paths (`lock`
/// finding a dead owner, `lock_timeout(ZERO)` in `peer_died` deciding liveness, a stale
/// claim under a lock whose holder died) run only in the random-kill process tests.
///
/// Suggested fix (runtime test hooks): make the guards' `crashing()` true while either
/// domain is crashing (one `crashing_any()` for `RawMutex::release` and the other guards),
/// so that an external crash leaves the lock to a dead owner; then re-run the queue's
/// sweeps.
#[test]
fn a_thread_stopped_at_a_crash_point_leaves_its_lock_to_a_dead_owner() {
    use shmkit_runtime::__private::crash::point;
    use shmkit_runtime::sync::{Mutex, PoisonCause, TryLockError};
    let seg = ManagedHeapMemory::new(16 * 1024).unwrap();
    let m = seg.construct("m", Mutex::new(0u32)).unwrap();
    let stopped = dies_at(0, || {
        let _guard = m.lock().unwrap();
        point("holding the lock");
    });
    assert!(!stopped, "stopped at the point");
    let cause = match m.lock_timeout(Duration::from_secs(1)) {
        Ok(_) => None,
        Err(TryLockError::Poisoned(p)) => Some(p.cause()),
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!(
        cause,
        Some(PoisonCause::OwnerDied),
        "the lock was released by the stopped thread's guard (poisoned as a panic), not left \
         to a dead owner"
    );
}
