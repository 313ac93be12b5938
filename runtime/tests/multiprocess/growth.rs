//! Growth while every process stays attached, with real processes (the children are the
//! helper binary's `growth-*` roles, `tests/bin/child/growth.rs`):
//! - three processes open a small segment and keep finding every object while a fourth
//!   fills it far beyond its size, by ordinary allocation and named construction;
//! - a process whose device cannot grow (its file size limit) gets `OutOfSpace`, and the
//!   segment stays usable, for it and for the others;
//! - a process SIGKILLed while growing leaves a segment that the next locker recovers and
//!   that checks clean.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Release;
use std::time::Duration;

use shmkit_test_support as support;
use support::{on_both_devices, Rng, Seg, Target};

use super::child;

const SIZE: usize = 64 * 1024;
const MAX: usize = 256 << 20;
const LIMIT: Duration = Duration::from_secs(60);

on_both_devices!(
    three_processes_keep_reading_while_a_fourth_grows_the_segment_far_beyond_its_size,
    a_device_that_cannot_grow_is_out_of_space_and_the_segment_stays_usable,
    a_process_killed_while_growing_leaves_a_segment_that_checks_clean,
);

fn create<T: Target>(t: &T) -> Seg<T> {
    Seg::<T>::options()
        .max_size(MAX)
        .create(t.name(), SIZE)
        .expect("create")
}

fn three_processes_keep_reading_while_a_fourth_grows_the_segment_far_beyond_its_size<T: Target>() {
    let t = T::new();
    let seg = create(&t);
    let published = seg.construct("published", AtomicU64::new(0)).unwrap();
    let items = 20_000u64;
    let mut readers: Vec<_> = (0..3)
        .map(|_| child(&t, "growth-read", &[("SHMKIT_ITEMS", items.to_string())]))
        .collect();
    for r in &mut readers {
        assert_eq!(r.expect_message(LIMIT), format!("open {SIZE}"));
    }
    let mut kept = Vec::new();
    for i in 0..items {
        seg.construct(format!("item-{i}"), [i; 16])
            .expect("construct");
        if i % 10 == 0 {
            kept.push(
                seg.allocate(1000 + (i as usize % 7) * 300)
                    .expect("allocate"),
            );
        }
        if i % 100 == 99 {
            published.store(i + 1, Release);
        }
    }
    published.store(items, Release);
    assert!(seg.size() > 100 * SIZE, "grew far beyond: {}", seg.size());
    for r in &mut readers {
        let msg = r.expect_message(LIMIT);
        let size: usize = msg.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(msg.starts_with("read "), "{msg}");
        assert_eq!(size, seg.size(), "the reader sees the grown size");
        r.assert_success(LIMIT);
    }
    for p in kept {
        // SAFETY: allocated above, freed once.
        unsafe { seg.deallocate(p) }.unwrap();
    }
    seg.check().expect("consistent");
}

fn a_device_that_cannot_grow_is_out_of_space_and_the_segment_stays_usable<T: Target>() {
    let t = T::new();
    let seg = create(&t);
    seg.construct("seed", 7u64).unwrap();
    let limit = 1u64 << 20;
    let mut filler = child(
        &t,
        "growth-fill-until-full",
        &[("SHMKIT_FSIZE", limit.to_string())],
    );
    let msg = filler.expect_message(LIMIT);
    assert!(msg.starts_with("full "), "{msg}");
    filler.assert_success(LIMIT);
    // This process has no such limit: it grows the segment further.
    let size = seg.size();
    assert!(size as u64 <= limit);
    let p = seg.allocate(2 << 20).expect("grows past the child's limit");
    assert!(seg.size() > size);
    // SAFETY: allocated above, freed once.
    unsafe { seg.deallocate(p) }.unwrap();
    assert_eq!(*seg.find::<u64>("seed").unwrap().unwrap(), 7);
    seg.check().expect("consistent");
}

fn a_process_killed_while_growing_leaves_a_segment_that_checks_clean<T: Target>() {
    let t = T::new();
    let seed = Rng::time_seed();
    eprintln!("seed {seed}");
    let mut rng = Rng::new(seed);
    for round in 0..12 {
        let seg = Seg::<T>::options()
            .max_size(MAX)
            .create(t.name(), SIZE)
            .expect("create");
        let mut grower = child(&t, "growth-grow-forever", &[]);
        assert_eq!(grower.expect_message(LIMIT), "growing");
        std::thread::sleep(Duration::from_micros(rng.range(0, 20_000)));
        grower.kill();
        // The next locker recovers whatever the grower was doing.
        let p = seg.allocate(100).expect("allocate after the kill");
        // SAFETY: allocated above, freed once.
        unsafe { seg.deallocate(p) }.unwrap();
        seg.check()
            .unwrap_or_else(|e| panic!("round {round} (size {}): {e}", seg.size()));
        let device = std::fs::metadata(t.path()).unwrap().len();
        assert!(
            device >= seg.size() as u64,
            "round {round}: the device backs the size"
        );
        drop(seg);
        Seg::<T>::remove(t.name()).unwrap();
    }
}
