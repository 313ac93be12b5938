//! Growth while mapped: a full device segment grows (the device first, then its size) up
//! to the maximum size every mapping reserved, and every mapping, this one's and the
//! others', keeps reaching everything. Each generic body runs on shared memory and on a
//! file; the multi-process tests are in `multiprocess/growth.rs`.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use shmkit_runtime::segment::SegmentObserver;
use shmkit_runtime::{Error, Growth};
use shmkit_test_support as support;
use support::on_both_devices;
use support::{Seg, Target};

const SIZE: usize = 64 * 1024;
const MAX: usize = 16 << 20;

on_both_devices!(
    a_full_segment_grows_and_keeps_every_object,
    another_mapping_reaches_what_was_allocated_after_it_opened,
    growth_stops_at_the_maximum_size_with_out_of_memory,
    with_growth_off_a_full_segment_is_out_of_memory,
    a_maximum_below_the_size_is_refused,
    one_large_allocation_grows_the_segment_enough_for_it,
    allocate_many_grows_for_all_the_blocks,
    a_size_word_forged_past_the_device_is_not_trusted,
);

fn create<T: Target>(t: &T) -> Seg<T> {
    Seg::<T>::options()
        .max_size(MAX)
        .create(t.name(), SIZE)
        .expect("create")
}

fn device_len<T: Target>(t: &T) -> u64 {
    std::fs::metadata(t.path()).unwrap().len()
}

fn a_full_segment_grows_and_keeps_every_object<T: Target>() {
    let t = T::new();
    let seg = create(&t);
    assert_eq!(seg.size(), SIZE);
    assert_eq!(seg.max_size(), MAX);
    let n = 3_000u64;
    for i in 0..n {
        seg.construct(format!("item-{i}"), [i; 32])
            .expect("construct");
    }
    assert!(seg.size() > SIZE, "the segment grew: {}", seg.size());
    assert!(seg.size() <= MAX);
    assert_eq!(
        device_len(&t),
        seg.size() as u64,
        "the device holds the size"
    );
    for i in 0..n {
        let v = seg.find::<[u64; 32]>(&format!("item-{i}")).expect("find");
        assert_eq!(v.map(|v| v[31]), Some(i));
    }
    seg.check().expect("consistent after growing");
    drop(seg);
    let seg = Seg::<T>::open(t.name()).expect("reopen");
    assert_eq!(seg.max_size(), MAX);
    for i in (0..n).step_by(97) {
        assert!(seg
            .find::<[u64; 32]>(&format!("item-{i}"))
            .unwrap()
            .is_some());
    }
    seg.check().expect("consistent when reopened");
}

fn another_mapping_reaches_what_was_allocated_after_it_opened<T: Target>() {
    let t = T::new();
    let seg = create(&t);
    let other = Seg::<T>::open(t.name()).expect("open");
    let observer = SegmentObserver::<T::Dev>::open(t.name()).expect("observe");
    let item = |i: u64| std::array::from_fn::<_, 16, _>(|k| AtomicU64::new(i + k as u64));
    let n = 2_000u64;
    for i in 0..n {
        seg.construct(format!("item-{i}"), item(i))
            .expect("construct");
    }
    assert!(seg.size() > 4 * SIZE);
    for i in 0..n {
        let name = format!("item-{i}");
        let found = other.find::<[AtomicU64; 16]>(&name).unwrap().unwrap();
        assert_eq!(found[15].load(Relaxed), i + 15);
        let seen = observer.find::<[AtomicU64; 16]>(&name).unwrap().unwrap();
        assert_eq!(seen.get_element(15).unwrap().load(), i + 15);
    }
    assert_eq!(other.size(), seg.size());
    assert_eq!(observer.size(), seg.size());
    // The other mapping grows it too, and the first one follows.
    for i in n..2 * n {
        other
            .construct(format!("item-{i}"), item(i))
            .expect("construct");
    }
    for i in n..2 * n {
        let found = seg.find::<[AtomicU64; 16]>(&format!("item-{i}")).unwrap();
        assert_eq!(found.map(|v| v[0].load(Relaxed)), Some(i));
    }
    seg.check().expect("consistent");
}

fn growth_stops_at_the_maximum_size_with_out_of_memory<T: Target>() {
    let t = T::new();
    let seg = create(&t);
    let mut kept = Vec::new();
    let err = loop {
        match seg.allocate(100_000) {
            Ok(p) => kept.push(p),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::OutOfMemory { .. }), "{err:?}");
    assert_eq!(seg.size(), MAX, "grown to the maximum, no further");
    assert!(kept.len() >= MAX / 100_000 - 2, "{} blocks", kept.len());
    for p in kept {
        // SAFETY: allocated above, freed once.
        unsafe { seg.deallocate(p) }.unwrap();
    }
    seg.check().expect("consistent");
}

fn with_growth_off_a_full_segment_is_out_of_memory<T: Target>() {
    let t = T::new();
    let seg = Seg::<T>::options()
        .growth(Growth::Off)
        .create(t.name(), SIZE)
        .expect("create");
    assert_eq!(seg.max_size(), SIZE, "nothing reserved beyond the size");
    let err = seg.allocate(SIZE).unwrap_err();
    assert!(matches!(err, Error::OutOfMemory { .. }), "{err:?}");
    assert_eq!(seg.size(), SIZE);
    assert_eq!(device_len(&t), SIZE as u64);
    // A mapping that grows may still grow a segment another one created without growth:
    // up to its maximum, which is its size.
    let other = Seg::<T>::open(t.name()).unwrap();
    assert!(matches!(
        other.allocate(SIZE),
        Err(Error::OutOfMemory { .. })
    ));
}

fn a_maximum_below_the_size_is_refused<T: Target>() {
    let t = T::new();
    let err = Seg::<T>::options()
        .max_size(SIZE - 1)
        .create(t.name(), SIZE)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidSize { .. }), "{err:?}");
    let err = Seg::<T>::options()
        .max_size(usize::MAX)
        .create(t.name(), SIZE)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidSize { .. }), "{err:?}");
}

fn one_large_allocation_grows_the_segment_enough_for_it<T: Target>() {
    let t = T::new();
    let seg = create(&t);
    let p = seg.allocate(5 << 20).expect("a block 80 times the size");
    assert!(seg.size() >= 5 << 20);
    // SAFETY: the block is ours and 5 MiB long.
    unsafe { p.as_ptr().write_bytes(0xAB, 5 << 20) };
    // SAFETY: allocated above, freed once.
    unsafe { seg.deallocate(p) }.unwrap();
    seg.check().expect("consistent");
}

fn allocate_many_grows_for_all_the_blocks<T: Target>() {
    let t = T::new();
    let seg = create(&t);
    let blocks = seg
        .allocate_many(1000, 1000)
        .expect("a million bytes in a 64 KiB segment");
    assert_eq!(blocks.len(), 1000);
    for p in &blocks {
        // SAFETY: each block is ours and 1000 bytes long.
        unsafe { p.as_ptr().write_bytes(7, 1000) };
    }
    seg.check().expect("consistent");
}

fn a_size_word_forged_past_the_device_is_not_trusted<T: Target>() {
    let t = T::new();
    let seg = create(&t);
    seg.construct("x", 5u64).unwrap();
    // Another writer (here: the file's bytes) claims the segment is 8 MiB while the device
    // holds 64 KiB: every page past 64 KiB would be a SIGBUS.
    let at = std::mem::offset_of!(shmkit_runtime::test_hooks::SegmentHeader, size);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(t.path())
        .unwrap();
    std::os::unix::fs::FileExt::write_at(&f, &(8u64 << 20).to_ne_bytes(), at as u64).unwrap();
    assert_eq!(seg.size(), SIZE, "the mapping trusts what the device backs");
    let other = Seg::<T>::open(t.name());
    assert!(
        matches!(other, Err(Error::Truncated { .. })),
        "an opener refuses it: {other:?}"
    );
    assert_eq!(*seg.find::<u64>("x").unwrap().unwrap(), 5);
}
