//! A mutation fuzzer for a queue read from bytes from elsewhere. The seed is a mapped file
//! holding a queue with messages of several priorities, typed and raw, and a free stack
//! that has turned over; mutants change words and bytes of the queue and its slots (the
//! runtime fuzzer's plausible words: offsets, counts, lock words, copies of other words)
//! and are opened as writable heap copies. Where the queue is found, every operation is
//! run on it: any error is fine; a panic is a finding, and so is a hang (each case runs
//! under a time limit).
//!
//! The bounded run is deterministic; `SHMKIT_FUZZ_SEED` and `SHMKIT_FUZZ_CASES` change it.
//! The long run (100,000 cases, a few minutes) takes a fresh seed unless given one:
//!
//! ```text
//! cargo test --release -p shmkit-ipc --test fuzz -- --ignored --nocapture
//! ```

use std::time::Duration;

use shmkit_ipc::MessageQueue;
use shmkit_runtime::{ManagedHeapMemory, ManagedMappedFile};
use shmkit_test_support::fuzz::{interesting, Choices};
use shmkit_test_support::{within, Rng, TempPath};

const DEFAULT_SEED: u64 = 0x005E_ED0F_0E0E;
const CASES: u64 = 1500;

/// The seed image and the range of it that the queue's bytes span (object and slots).
struct Seed {
    image: Vec<u8>,
    queue: std::ops::Range<usize>,
}

fn seed() -> Seed {
    let path = TempPath::new();
    let seg = ManagedMappedFile::create(path.get(), 16 * 1024).unwrap();
    let q = seg
        .construct("q", MessageQueue::new(6, 24).unwrap())
        .unwrap();
    // Turn the free stack over, then leave messages of three priorities queued.
    for round in 0..3u8 {
        for i in 0..6u8 {
            q.send(&[round, i], u32::from(i % 3)).unwrap();
        }
        for _ in 0..6 {
            q.receive(&mut [0; 24]).unwrap();
        }
    }
    q.send(b"raw", 2).unwrap();
    q.send_value(&[7u64, 8], 1).unwrap();
    q.send_value(&true, 1).unwrap();
    q.send(b"", 0).unwrap();
    let base = seg.base_address().as_ptr().addr();
    let start = std::ptr::from_ref(q).addr() - base;
    let end = start + size_of::<MessageQueue>() + MessageQueue::storage_bytes(6, 24).unwrap() + 256;
    drop(seg);
    let image = std::fs::read(path.get()).unwrap();
    Seed {
        queue: start..end.min(image.len()),
        image,
    }
}

/// Edits the image: 1 to 4 words or bytes, mostly inside the queue's bytes.
fn mutate(seed: &Seed, rng: &mut Rng) -> (Vec<u8>, String) {
    let mut image = seed.image.clone();
    let mut log = String::new();
    for _ in 0..1 + rng.below(4) {
        let range = if rng.below(8) == 0 {
            0..image.len() - 8
        } else {
            seed.queue.start..seed.queue.end - 8
        };
        let at = range.start + rng.below((range.end - range.start) as u64) as usize;
        if rng.below(3) == 0 {
            let v = rng.word() as u8;
            image[at] = v;
            log += &format!(" byte {at}={v:#x};");
        } else {
            let at = at & !3;
            let v = interesting(&image, at & !7, rng);
            let v = if rng.below(2) == 0 {
                v
            } else {
                v & 0xFFFF_FFFF
            };
            let width = if rng.below(2) == 0 { 8 } else { 4 };
            image[at..at + width].copy_from_slice(&v.to_ne_bytes()[..width]);
            log += &format!(" word{} {at}={v:#x};", width * 8);
        }
    }
    (image, log)
}

/// Opens a mutant and runs every operation on its queue, if it has one.
fn exercise(image: &[u8]) {
    let Ok(seg) = ManagedHeapMemory::from_image(image) else {
        return;
    };
    let Ok(Some(q)) = seg.find::<MessageQueue>("q") else {
        return;
    };
    let _ = (q.num_msg(), q.max_msg(), q.max_msg_size(), format!("{q:?}"));
    let mut buf = vec![0u8; q.max_msg_size().min(1 << 16)];
    for _ in 0..8 {
        let _ = q.try_receive_value::<[u64; 2]>();
        let _ = q.try_receive_value::<bool>();
        let _ = q.receive_timeout(&mut buf, Duration::ZERO);
        let _ = q.try_send(b"mutant", 3);
    }
    let _ = q.receive_image(Duration::ZERO);
}

fn run(seed: u64, cases: u64) {
    let base = seed_image();
    let mut rng = Rng::new(seed);
    for case in 0..cases {
        let (image, log) = mutate(base, &mut rng);
        let outcome = std::panic::catch_unwind(|| {
            within(Duration::from_secs(10), "a fuzz case", move || {
                exercise(&image)
            })
        });
        assert!(
            outcome.is_ok(),
            "fuzz case {case} of seed {seed:#x} failed:{log}\nreplay: SHMKIT_FUZZ_SEED={seed:#x} \
             cargo test -p shmkit-ipc --test fuzz"
        );
    }
}

fn seed_image() -> &'static Seed {
    static SEED: std::sync::OnceLock<Seed> = std::sync::OnceLock::new();
    SEED.get_or_init(seed)
}

fn env(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

#[test]
fn mutants_of_a_queue_give_errors_never_panics_or_hangs() {
    run(
        env("SHMKIT_FUZZ_SEED").unwrap_or(DEFAULT_SEED),
        env("SHMKIT_FUZZ_CASES").unwrap_or(CASES),
    );
}

#[test]
#[ignore = "the long run: a few minutes"]
fn long_run() {
    let seed = env("SHMKIT_FUZZ_SEED").unwrap_or_else(Rng::time_seed);
    println!("seed {seed:#x}");
    run(seed, env("SHMKIT_FUZZ_CASES").unwrap_or(100_000));
}
