//! Attack on the message queue with forged bytes (safe code only): a segment holding a
//! queue is written out, its bytes edited (queue fields, counters, lanes, rings, slot
//! headers, payloads), and opened again as an external buffer and as a mapped file; every
//! operation must give a value or a clear error: no panic, no hang, no access outside.
//! Native only (files); each case is fast.

use std::time::Duration;

use shmkit_ipc::{MessageQueue, NamedMessageQueue};
use shmkit_runtime::{
    AlignedBuffer, Error, ManagedExternalBuffer, ManagedHeapMemory, ManagedMappedFile,
};

const N: usize = 4;
const SIZE: usize = 24;

/// A segment with a queue holding a few messages (typed and raw), as plain bytes.
fn image() -> Vec<u8> {
    let mut seg = ManagedHeapMemory::new(16 * 1024).unwrap();
    let q = seg
        .construct("q", MessageQueue::new(N, SIZE).unwrap())
        .unwrap();
    q.send(b"low", 0).unwrap();
    q.send(b"mid", 3).unwrap();
    let mut b = [0u8; SIZE];
    q.try_receive(&mut b).unwrap(); // one slot free again, lanes moved
    q.send_value(&true, 5).unwrap();
    q.send_value(&7u64, 3).unwrap();
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("mq_attack_img_{}_{k}", std::process::id()));
    let f = std::fs::File::create(&path).unwrap();
    seg.write_image_to(&f).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    bytes
}

/// `max_msg` is this many bytes before `storage` (`max_msg_size` follows it).
const CAP: usize = 8;
/// Where `storage` is in the queue value.
const STORAGE_AT: usize = 8;
/// The senders' counters (after the send lock, and on the next line) and the receivers'
/// (likewise), as offsets in the queue value.
const COUNTERS: [std::ops::Range<usize>; 5] = [72..100, 128..140, 192..196, 264..276, 320..328];
/// Where the slots start in the block: after the tag, the lanes, the lane links, the
/// arrival ring and the free ring, on a 64-byte boundary.
const SLOTS_AT: usize = (8 + 16 * N + 12 * N).next_multiple_of(64);
/// Bytes from one slot to the next: a 48-byte header, then the payload.
const STRIDE: usize = (48 + SIZE).next_multiple_of(64);
/// Bytes of the block's bookkeeping: tag, lanes, links, rings, and the slots (whose
/// payloads are edited too).
const BOOKKEEPING: usize = SLOTS_AT + STRIDE * N;

fn word(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// (offset of the queue's `storage` field, offset of its block) in the image.
fn locate(b: &[u8]) -> (usize, usize) {
    const MARK: u64 = 0x5EA1 << 48;
    for f in (0..b.len() - 8).step_by(8) {
        let s = word(b, f);
        if s == 0 {
            continue;
        }
        let block = (f as u64).wrapping_add(s) as usize;
        if block % 16 != 0 || block + 8 > b.len() {
            continue;
        }
        if word(b, block) == MARK | ((s.wrapping_neg()) & ((1 << 48) - 1)) {
            assert_eq!(&b[f - CAP..f - CAP + 4], (N as u32).to_le_bytes());
            assert_eq!(&b[f - CAP + 4..f - CAP + 8], (SIZE as u32).to_le_bytes());
            return (f, block);
        }
    }
    panic!("queue not found in the image");
}

/// Runs every operation on the queue once, with zero timeouts; errors are fine.
fn exercise(q: &MessageQueue) {
    let mut buf = vec![0u8; q.max_msg_size().min(1 << 16)];
    let _ = q.num_msg();
    let _ = q.prepare();
    for _ in 0..2 * N + 2 {
        let _ = q.try_receive(&mut buf);
        let _ = q.receive_timeout(&mut buf, Duration::ZERO);
        let _ = q.try_receive_value::<bool>();
        let _ = q.try_receive_value::<u64>();
        let _ = q.receive_value_timeout::<[u64; 2]>(Duration::ZERO);
        let _ = q.try_send(b"forged?", 4);
        let _ = q.send_value_timeout(&1u64, 3, Duration::ZERO);
    }
    // Then it must still work (messages of the forgery may be lost, never torn).
    let _ = q.receive_image(Duration::ZERO);
    while let Ok(Some(_)) = q.receive_timeout(&mut buf, Duration::ZERO) {}
    while let Ok(Some(_)) = q.try_receive_value::<u64>() {}
}

fn open_and_exercise(bytes: &[u8]) {
    let mut buf = AlignedBuffer::from(bytes);
    let Ok(seg) = ManagedExternalBuffer::open(&mut buf) else {
        return;
    };
    if let Ok(Some(q)) = seg.find::<MessageQueue>("q") {
        exercise(q);
    }
}

/// A tiny deterministic generator.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn value(&mut self, n: u32) -> u32 {
        match self.below(6) {
            0 => 0,
            1 => u32::MAX,
            2 => self.below(n as usize + 3) as u32,
            3 => self.next() as u32,
            4 => (self.below(n as usize + 1) as u32).wrapping_sub(1),
            _ => 1 << self.below(32),
        }
    }
}

/// Every 4-byte word of the bookkeeping (the counters in the queue, the slot headers,
/// lanes and rings in its block) set, one at a time, to boundary values, and random multi-word edits.
#[test]
fn forged_bookkeeping_words_give_errors_or_values_never_panics() {
    let img = image();
    let (f, block) = locate(&img);
    let bookkeeping = BOOKKEEPING;
    let queue = f - STORAGE_AT;
    let counters = COUNTERS
        .iter()
        .flat_map(|r| (queue + r.start..queue + r.end).step_by(4));
    let values = [
        0u32,
        1,
        2,
        3,
        N as u32 - 1,
        N as u32,
        N as u32 + 1,
        u32::MAX,
        u32::MAX - 1,
        1 << 31,
        SIZE as u32,
        SIZE as u32 + 1,
    ];
    for at in (block + 8..block + bookkeeping).step_by(4).chain(counters) {
        for v in values {
            let mut b = img.clone();
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            open_and_exercise(&b);
        }
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..600 {
        let mut b = img.clone();
        for _ in 0..1 + rng.below(6) {
            let at = block + 8 + 4 * rng.below((bookkeeping - 8) / 4);
            let v = rng.value(N as u32);
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
        open_and_exercise(&b);
    }
}

/// The queue's own fields: capacity, storage offset, hint, lock words.
#[test]
fn forged_queue_fields_are_refused_or_harmless() {
    let img = image();
    let (f, block) = locate(&img);
    let mut rng = Rng(12345);
    let cases: Vec<(usize, Vec<u8>)> = vec![
        (f - CAP, (N as u32 + 1).to_le_bytes().to_vec()),
        (f - CAP, 1000u32.to_le_bytes().to_vec()),
        (f - CAP, (1u32 << 24).to_le_bytes().to_vec()),
        (f - CAP, 0u32.to_le_bytes().to_vec()),
        (f - CAP, 1u32.to_le_bytes().to_vec()),
        (f - CAP + 4, 1u32.to_le_bytes().to_vec()),
        (f - CAP + 4, (SIZE as u32 + 16).to_le_bytes().to_vec()),
        (f - CAP + 4, 4096u32.to_le_bytes().to_vec()),
        (f - CAP + 4, u32::MAX.to_le_bytes().to_vec()),
        (f - CAP + 4, 0u32.to_le_bytes().to_vec()),
        (f, 0u64.to_le_bytes().to_vec()),
        (f, (word(&img, f) + 16).to_le_bytes().to_vec()),
        (f, (word(&img, f).wrapping_sub(16)).to_le_bytes().to_vec()),
        (f, (word(&img, f) + 8).to_le_bytes().to_vec()),
        (f, u64::MAX.to_le_bytes().to_vec()),
        (f, (1u64 << 47).to_le_bytes().to_vec()),
        (block, 0u64.to_le_bytes().to_vec()),
        (f - CAP - 4, u32::MAX.to_le_bytes().to_vec()),
        (f - CAP - 4, 0u32.to_le_bytes().to_vec()),
    ];
    for (at, bytes) in cases {
        let mut b = img.clone();
        b[at..at + bytes.len()].copy_from_slice(&bytes);
        open_and_exercise(&b);
    }
    // Random words over the whole queue value (locks and wait words included).
    let qsize = std::mem::size_of::<MessageQueue>();
    let start = f - STORAGE_AT;
    for _ in 0..400 {
        let mut b = img.clone();
        for _ in 0..1 + rng.below(3) {
            let at = start + 4 * rng.below(qsize / 4);
            let v = rng.value(N as u32);
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
        open_and_exercise(&b);
    }
}

/// A typed message whose bytes were edited into an invalid `bool`: `InvalidValue`, and it
/// stays queued; raw bytes marked as typed with a forged fingerprint still validate.
#[test]
fn forged_typed_payloads_are_validated() {
    let img = image();
    let (_, block) = locate(&img);

    // Find the slot holding the bool (len 1, priority 5).
    let slot = (0..N)
        .find(|&i| {
            let h = block + SLOTS_AT + STRIDE * i;
            word(&img, h) != 0
                && u32::from_le_bytes(img[h + 8..h + 12].try_into().unwrap()) == 1
                && u32::from_le_bytes(img[h + 12..h + 16].try_into().unwrap()) == 5
        })
        .expect("the bool's slot");
    let mut b = img.clone();
    b[block + SLOTS_AT + STRIDE * slot + 48] = 2;
    let mut buf = AlignedBuffer::from(&b[..]);
    let seg = ManagedExternalBuffer::open(&mut buf).unwrap();
    let q = seg.find::<MessageQueue>("q").unwrap().unwrap();
    let err = q.try_receive_value::<bool>().unwrap_err();
    assert!(matches!(err, Error::InvalidValue { .. }), "{err}");
    assert_eq!(
        q.try_receive(&mut [0u8; SIZE]).unwrap().map(|r| r.len),
        Some(1)
    );

    // The bool's fingerprint on a raw 4-byte message of 0xD800 read as a char: the
    // fingerprint is char's only if forged from a real char message.
    let mut seg2 = ManagedHeapMemory::new(16 * 1024).unwrap();
    let q2 = seg2
        .construct("q", MessageQueue::new(N, SIZE).unwrap())
        .unwrap();
    q2.send_value(&'a', 0).unwrap();
    q2.send_value(&'b', 0).unwrap();
    let path = std::env::temp_dir().join(format!("mq_attack_char_{}", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    seg2.write_image_to(&file).unwrap();
    let mut img2 = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    // Set every 4-aligned word equal to 'a' in the image to 0xD800 (a surrogate).
    for at in (0..img2.len() - 4).step_by(4) {
        if img2[at..at + 4] == ('a' as u32).to_le_bytes() {
            img2[at..at + 4].copy_from_slice(&0xD800u32.to_le_bytes());
        }
    }
    let mut buf = AlignedBuffer::from(&img2[..]);
    if let Ok(seg) = ManagedExternalBuffer::open(&mut buf) {
        if let Ok(Some(q)) = seg.find::<MessageQueue>("q") {
            match q.try_receive_value::<char>() {
                Ok(Some((c, _))) => assert!(c != '\u{FFFF}', "{c:?}"),
                Ok(None) => {}
                Err(e) => assert!(
                    matches!(e, Error::InvalidValue { .. } | Error::TypeMismatch { .. }),
                    "{e}"
                ),
            }
        }
    }
}

/// The same forgeries through a mapped file (warm/cold open of a device).
#[test]
fn forged_files_reopen_with_errors_or_a_working_queue() {
    let img = image();
    let (f, block) = locate(&img);
    let dir = std::env::temp_dir().join(format!("mq_attack_files_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("seg");
    // A file made by ManagedMappedFile, then edited with std::fs.
    {
        let seg = ManagedMappedFile::create(&path, 16 * 1024).unwrap();
        let q = seg
            .construct("q", MessageQueue::new(N, SIZE).unwrap())
            .unwrap();
        q.send(b"x", 1).unwrap();
    }
    let clean = std::fs::read(&path).unwrap();
    let (ff, fblock) = locate(&clean);
    let mut rng = Rng(777);
    for i in 0..60 {
        let mut b = clean.clone();
        let at = if i % 2 == 0 {
            fblock + 8 + 4 * rng.below((BOOKKEEPING - 8) / 4)
        } else {
            ff - STORAGE_AT + 4 * rng.below(std::mem::size_of::<MessageQueue>() / 4)
        };
        let v = rng.value(N as u32);
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        std::fs::write(&path, &b).unwrap();
        if let Ok(seg) = ManagedMappedFile::open(&path) {
            if let Ok(Some(q)) = seg.find::<MessageQueue>("q") {
                exercise(q);
            }
        }
    }
    let _ = (f, block);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A queue removed while in use keeps working; its name is free at once; a capacity the
/// machine cannot hold is an error (`OutOfSpace`), no SIGBUS.
#[test]
fn named_queue_removed_while_used_and_huge_capacities() {
    let name = format!("mq_attack_other_{}", std::process::id());
    // A queue removed while in use.
    let q = NamedMessageQueue::create(&name, 4, 16).unwrap();
    q.send(b"kept", 1).unwrap();
    assert!(NamedMessageQueue::remove(&name).unwrap());
    let mut buf = [0u8; 16];
    assert_eq!(q.try_receive(&mut buf).unwrap().map(|r| r.len), Some(4));
    let again = NamedMessageQueue::open_or_create(&name, 2, 8).unwrap();
    assert_eq!(again.max_msg(), 2);
    assert_eq!(again.num_msg(), 0);
    drop(again);
    NamedMessageQueue::remove(&name).unwrap();
    // A capacity the machine cannot hold: an error, no SIGBUS.
    let huge = NamedMessageQueue::create(&name, 1 << 24, 1 << 20);
    if let Ok(h) = &huge {
        let _ = h.try_send(b"x", 0);
    }
    let _ = NamedMessageQueue::remove(&name);
}

/// Attack finding (fixed): `open_or_create` of a name that holds an ordinary segment of
/// another use built a queue inside it, where `open` refused it. Both refuse it now
/// (`TypeMismatch`): a named object's segment is shared only once its object is in it.
#[test]
fn named_open_or_create_refuses_a_foreign_segment() {
    let name = format!("mq_attack_foreign_{}", std::process::id());
    let seg = shmkit_runtime::ManagedSharedMemory::create(&name, 64 * 1024).unwrap();
    seg.construct("theirs", 42u64).unwrap();
    let opened = NamedMessageQueue::open(&name);
    let adopted = NamedMessageQueue::open_or_create(&name, 4, 16);
    let adopted_ok = adopted.is_ok();
    drop(adopted);
    drop(seg);
    shmkit_runtime::ManagedSharedMemory::remove(&name).unwrap();
    assert!(matches!(opened, Err(Error::TypeMismatch { .. })));
    assert!(
        !adopted_ok,
        "open refuses the name, open_or_create builds a queue in it"
    );
}

/// Attack finding (fixed): `open` of a name holding a finished segment of another use
/// waited 10 s for a creator before saying `NotFound`. Now the creator builds the object
/// in an exclusive mapping and shares it after, so an opener waits only while a creator
/// holds the segment alone, and a shared segment without the object is at once
/// `TypeMismatch`.
#[test]
fn named_open_of_a_foreign_segment_answers_at_once() {
    let name = format!("mq_attack_stall_{}", std::process::id());
    let seg = shmkit_runtime::ManagedSharedMemory::create(&name, 64 * 1024).unwrap();
    let t0 = std::time::Instant::now();
    let err = NamedMessageQueue::open(&name).unwrap_err();
    let took = t0.elapsed();
    drop(seg);
    shmkit_runtime::ManagedSharedMemory::remove(&name).unwrap();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
    assert!(took < Duration::from_secs(1), "took {took:?}: {err}");
}

/// Threads racing `create` and `open_or_create` of one name: one queue, every handle
/// sees it, none errs but `AlreadyExists`.
#[test]
fn named_open_or_create_races() {
    let name = format!("mq_attack_race_{}", std::process::id());
    let _ = NamedMessageQueue::remove(&name);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let name = &name;
                s.spawn(move || {
                    if i == 0 {
                        NamedMessageQueue::create(name, 4, 16).map(|q| q.max_msg())
                    } else {
                        NamedMessageQueue::open_or_create(name, 4 + i, 16).map(|q| q.max_msg())
                    }
                })
            })
            .collect();
        let caps: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        let ok: Vec<usize> = caps
            .iter()
            .filter_map(|c| c.as_ref().ok().copied())
            .collect();
        assert!(ok.windows(2).all(|w| w[0] == w[1]), "{caps:?}");
        for c in &caps {
            if let Err(e) = c {
                assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
            }
        }
    });
    NamedMessageQueue::remove(&name).unwrap();
}
