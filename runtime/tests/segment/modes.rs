//! Read-only and copy-on-write opening of device segments (the reference's
//! "Opening managed shared memory and mapped files with Copy On Write or Read Only modes").
//! Each generic body runs on shared memory and on a file.

use shmkit_runtime::Error;
use shmkit_test_support as support;
use support::on_both_devices;
use support::{get, map_perms, put, Block, Seg, Target};

const SIZE: usize = 64 * 1024;

on_both_devices!(
    read_only_open_reads_the_same_segment,
    read_only_and_writable_mappings_exclude_each_other,
    copy_on_write_changes_stay_private,
    a_dump_of_a_copy_on_write_mapping_is_a_segment_with_its_changes,
);

/// A segment with a few patterned blocks (one freed, so the free list is not trivial).
fn populated<T: Target>(t: &T) -> Vec<Block> {
    let seg = Seg::<T>::create(t.name(), SIZE).unwrap();
    let mut blocks: Vec<Block> = (0..6)
        .map(|i| Block::new(&seg, 200 + 700 * i, 100 + i as u64))
        .collect();
    blocks.remove(2).free(&seg);
    seg.flush().unwrap();
    blocks
}

fn read_only_open_reads_the_same_segment<T: Target>() {
    let t = T::new();
    let blocks = populated(&t);
    let ro = Seg::<T>::options()
        .read_only()
        .open(t.name())
        .expect("open_read_only");
    // Another reader (a writer would be `InUse` while `ro` lives).
    let rw = Seg::<T>::options().read_only().open(t.name()).unwrap();

    assert_eq!(
        map_perms(ro.base_address().as_ptr()),
        "r--s",
        "mapped read-only"
    );
    assert_ne!(ro.base_address(), rw.base_address());
    assert_eq!(ro.size(), SIZE);
    assert_eq!(ro.free_memory(), rw.free_memory());
    assert!(!ro.all_memory_deallocated());
    assert!(ro.check_sanity(), "{:?}", ro.check());
    for b in &blocks {
        b.assert_intact(&ro);
        assert_eq!(ro.usable_size(b.ptr(&ro)), rw.usable_size(b.ptr(&rw)));
        assert_eq!(ro.handle_from_address(b.ptr(&ro).as_ptr()), Some(b.handle));
    }
    // The whole segment reads the same through both mappings.
    assert!(get(&ro, shmkit_runtime::Handle(0), SIZE) == get(&rw, shmkit_runtime::Handle(0), SIZE));
    // Reading changed nothing, not even the lock word.
    drop((ro, rw));
    let before = std::fs::read(t.path()).unwrap();
    let ro = Seg::<T>::options().read_only().open(t.name()).unwrap();
    assert!(ro.check_sanity());
    let _ = ro.free_memory();
    drop(ro);
    assert!(std::fs::read(t.path()).unwrap() == before);
}

/// A read-only or copy-on-write mapping would see a writer's changes half done (it cannot
/// take the segment's locks), so the two never map a segment at once: `InUse`, in either
/// order, saying who is in the way.
fn read_only_and_writable_mappings_exclude_each_other<T: Target>() {
    let t = T::new();
    populated(&t);
    let rw = Seg::<T>::open(t.name()).unwrap();
    for err in [
        Seg::<T>::options().read_only().open(t.name()).unwrap_err(),
        Seg::<T>::options()
            .copy_on_write()
            .open(t.name())
            .unwrap_err(),
    ] {
        assert!(matches!(err, Error::InUse { .. }), "{err}");
        assert!(err.to_string().contains("read-write mapping"), "{err}");
    }
    drop(rw);
    let ro = Seg::<T>::options().read_only().open(t.name()).unwrap();
    let _cow = Seg::<T>::options().copy_on_write().open(t.name()).unwrap();
    let err = Seg::<T>::open(t.name()).unwrap_err();
    assert!(matches!(err, Error::InUse { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("read-only or copy-on-write mapping"),
        "{err}"
    );
    drop(ro);
    assert!(matches!(Seg::<T>::open(t.name()), Err(Error::InUse { .. })));
}

fn copy_on_write_changes_stay_private<T: Target>() {
    let t = T::new();
    let blocks = populated(&t);
    let device_before = std::fs::read(t.path()).unwrap();
    // Readers only: a writable shared mapping and a copy-on-write one exclude each other.
    let normal = Seg::<T>::options().read_only().open(t.name()).unwrap();
    let free_before = normal.free_memory();

    let cow = Seg::<T>::options()
        .copy_on_write()
        .open(t.name())
        .expect("open_copy_on_write");
    assert_eq!(
        map_perms(cow.base_address().as_ptr()),
        "rw-p",
        "a private mapping"
    );
    for b in &blocks {
        b.assert_intact(&cow);
    }
    // Allocate, write, overwrite existing data and free through the copy-on-write mapping.
    let mine = Block::new(&cow, 5000, 500);
    put(
        &cow,
        blocks[0].handle,
        &support::pattern(501, blocks[0].len),
    );
    blocks[1].free(&cow);
    assert!(cow.check_sanity());
    mine.assert_intact(&cow);
    assert!(!blocks[0].intact(&cow));
    assert!(cow.usable_size(blocks[1].ptr(&cow)).is_none());
    assert_ne!(cow.free_memory(), free_before);

    // The normal mapping (opened before) sees none of it...
    assert_eq!(normal.free_memory(), free_before);
    for b in &blocks {
        b.assert_intact(&normal);
    }
    assert!(normal.usable_size(blocks[1].ptr(&normal)).is_some());
    // ...nor does one opened after, nor another copy-on-write mapping.
    let reopened = Seg::<T>::options().read_only().open(t.name()).unwrap();
    assert_eq!(reopened.free_memory(), free_before);
    blocks[0].assert_intact(&reopened);
    let cow2 = Seg::<T>::options().copy_on_write().open(t.name()).unwrap();
    assert_eq!(cow2.free_memory(), free_before);
    blocks[0].assert_intact(&cow2);
    drop((cow, cow2, reopened));

    // The device is byte for byte what it was.
    normal.flush().unwrap();
    drop(normal);
    assert!(
        std::fs::read(t.path()).unwrap() == device_before,
        "a copy-on-write mapping changed the device"
    );
    let after = Seg::<T>::open(t.name()).unwrap();
    assert_eq!(after.free_memory(), free_before);
    assert!(after.check_sanity());
}

fn a_dump_of_a_copy_on_write_mapping_is_a_segment_with_its_changes<T: Target>() {
    // The reference example: change a copy-on-write mapping, write its bytes to a second
    // file, open that: it has the changes, the original does not.
    let t = T::new();
    let blocks = populated(&t);
    let cow = Seg::<T>::options().copy_on_write().open(t.name()).unwrap();
    let added = Block::new(&cow, 1234, 600);
    blocks[3].free(&cow);
    let free_cow = cow.free_memory();
    let image = get(&cow, shmkit_runtime::Handle(0), cow.size());
    drop(cow);

    let copy = T::new();
    std::fs::write(copy.path(), &image).unwrap();
    let dumped = Seg::<T>::open(copy.name()).expect("the dump is a segment");
    assert_eq!(dumped.free_memory(), free_cow);
    assert!(dumped.check_sanity());
    added.assert_intact(&dumped);
    assert!(dumped.usable_size(blocks[3].ptr(&dumped)).is_none());

    let original = Seg::<T>::options().read_only().open(t.name()).unwrap();
    assert!(original.usable_size(blocks[3].ptr(&original)).is_some());
    blocks[3].assert_intact(&original);
    assert!(original.usable_size(added.ptr(&original)).is_none() || !added.intact(&original));
}
