//! The children of the growth tests (`multiprocess/growth.rs`): they stay attached to a
//! device segment (`SHMKIT_KIND`, `SHMKIT_NAME`) while another process grows it.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Acquire;
use std::time::{Duration, Instant};

use shmkit_runtime::segment::Device;
use shmkit_runtime::Error;

use crate::{env, tell_parent, Seg};

/// What the filler publishes: how many `item-<i>` objects exist (each `[i; 16]`).
pub const PUBLISHED: &str = "published";

/// Opens the segment before it grows, then reads every item the filler publishes, through
/// this one mapping, until it has seen `SHMKIT_ITEMS` of them; prints `read <n> <size>`.
pub fn read() {
    on_device!(read_on);
}

fn read_on<D: Device>(name: &D::Name) {
    let seg = Seg::<D>::open(name).expect("open");
    let items: u64 = env("SHMKIT_ITEMS").parse().unwrap();
    let published = seg
        .find::<AtomicU64>(PUBLISHED)
        .unwrap()
        .expect("published");
    tell_parent(&format!("open {}", seg.size()));
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut seen, mut reads) = (0, 0u64);
    while seen < items {
        assert!(Instant::now() < deadline, "saw {seen} of {items} items");
        let now = published.load(Acquire);
        if now == seen {
            std::thread::yield_now();
            continue;
        }
        // The new ones, and a few old ones again (they must not have moved).
        for i in (seen..now).chain((0..now).step_by(997)) {
            let item = seg.find::<[u64; 16]>(&format!("item-{i}")).expect("find");
            assert_eq!(item.map(|v| (v[0], v[15])), Some((i, i)), "item {i}");
            reads += 1;
        }
        seen = now;
    }
    seg.check().expect("consistent as this process sees it");
    tell_parent(&format!("read {reads} {}", seg.size()));
}

/// Opens the segment and allocates until growth fails: with `RLIMIT_FSIZE` set below the
/// segment's maximum, the device cannot grow and allocation reports `OutOfSpace`. Then the
/// segment must still work: the objects are there, small allocations fit what is free.
/// Prints `full <size> <error>`.
pub fn fill_until_the_device_is_full() {
    on_device!(fill_on);
}

fn fill_on<D: Device>(name: &D::Name) {
    let limit: u64 = env("SHMKIT_FSIZE").parse().unwrap();
    // SAFETY: ignoring SIGXFSZ (its default kills the process) only makes a write past
    // the limit fail with EFBIG instead.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let rl = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: a valid rlimit for this process.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &rl) }, 0);
    let seg = Seg::<D>::open(name).expect("open");
    let mut kept = Vec::new();
    let err = loop {
        match seg.allocate(60_000) {
            Ok(p) => kept.push(p),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::OutOfSpace { .. }), "{err:?}");
    let device = D::open(name, shmkit_runtime::os::Access::ReadOnly)
        .unwrap()
        .size()
        .unwrap();
    assert!(
        device <= limit,
        "the device stayed within the limit: {device}"
    );
    assert_eq!(
        seg.size() as u64,
        device,
        "the size is what the device holds"
    );
    assert_eq!(*seg.find::<u64>("seed").unwrap().unwrap(), 7);
    let small = seg.allocate(64).expect("a small block still fits");
    for p in kept.into_iter().chain([small]) {
        // SAFETY: allocated above, freed once.
        unsafe { seg.deallocate(p) }.unwrap();
    }
    seg.check().expect("consistent after the failed growth");
    tell_parent(&format!("full {} {err}", seg.size()));
}

/// Grows the segment in a loop, telling the parent when it starts, until killed.
pub fn grow_forever() {
    on_device!(grow_on);
}

fn grow_on<D: Device>(name: &D::Name) {
    let seg = Seg::<D>::open(name).expect("open");
    tell_parent("growing");
    let mut i = 0u64;
    loop {
        if seg.allocate(4000).is_err() {
            return;
        }
        i += 1;
        if i % 64 == 0 {
            let _ = seg.construct(format!("g-{i}"), [i; 8]);
        }
    }
}
