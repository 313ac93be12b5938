//! Images forged in the words the fuzzer (`tests/fuzz`) found dangerous, each minimised
//! to one patched word: opening and using them ends in an error or works, never in a
//! panic or a hang.

use std::time::Duration;

use shmkit_runtime::{
    AlignedBuffer, Error, ManagedExternalBuffer, ManagedHeapMemory, ManagedMappedFile,
};
use shmkit_test_support as support;
use support::offsets;

/// The image of a 4 KiB heap segment holding the named object "a", with the word at `at`
/// set to `value`.
fn forged(at: usize, value: &[u8]) -> Vec<u8> {
    let mut seg = ManagedHeapMemory::new(4096).unwrap();
    seg.construct("a", 1u64).unwrap();
    let mut image = support::image_bytes(&mut seg);
    image[at..at + value.len()].copy_from_slice(value);
    image
}

/// On a mapped file at rest (a cold open: no trusted mapping attached), a forged object
/// count is refused at open, never an overflow later.
#[test]
fn a_forged_object_count_is_corrupted_not_an_overflow() {
    let image = forged(offsets::NAMED_COUNT, &u64::MAX.to_ne_bytes());
    let file = support::TempPath::new();
    std::fs::write(file.get(), &image).unwrap();
    let err = ManagedMappedFile::open(file.get()).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupted { reason, .. } if reason.contains("count")),
        "{err:?}"
    );
}

/// An entry whose element count is forged to reach past its block: the elements would
/// cover other blocks' headers and objects, so a `&[u8]` of them aliases what `construct`
/// and `allocate` write next (Miri: a write under a live shared reference; with
/// `find_slice_mut`, safe code overwrites block headers and `allocate` writes out of
/// bounds). A cold open checks every entry against its block. The external-buffer
/// variant, which Miri runs, is in `tests/objects/heap.rs`.
#[test]
fn an_entry_count_beyond_its_block_is_corrupted() {
    let mut seg = ManagedHeapMemory::new(1 << 14).unwrap();
    seg.construct_array("a", 8, 0xAAu8).unwrap();
    let mut image = support::internals::image_bytes(&mut seg);
    support::internals::forge_entry_count(&mut image, 8, 4096);
    let err = ManagedHeapMemory::from_image(&image).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupted { reason, .. } if reason.contains("past its block")),
        "{err:?}"
    );
}

/// `check()` finds the same damage in a mapping that is already open.
#[test]
fn check_reports_an_entry_count_beyond_its_block() {
    let mut seg = ManagedHeapMemory::new(1 << 14).unwrap();
    seg.construct_array("a", 8, 0xAAu8).unwrap();
    seg.check().unwrap();
    let at = support::internals::entry_count_at(&support::internals::image_bytes(&mut seg), 8);
    let word = support::internals::entry_count_word(4096, 1);
    // SAFETY: the count word of an entry of our own heap segment, inside it; no reference
    // to the object is alive. Only this segment is corrupted.
    unsafe {
        let p = seg.base_address().as_ptr().add(at);
        p.copy_from_nonoverlapping(word.as_ptr(), word.len());
    }
    let err = seg.check().unwrap_err();
    assert!(
        matches!(&err, Error::Corrupted { reason, .. } if reason.contains("past its block")),
        "{err:?}"
    );
}

/// A private copy (heap image, buffer) checks its indexes at open and refuses a forged
/// count; one copied while its index lock was held rebuilds them instead, counts included.
#[test]
fn a_forged_object_count_in_a_private_copy_is_refused_or_rebuilt_at_open() {
    let image = forged(offsets::NAMED_COUNT, &u64::MAX.to_ne_bytes());
    let err = ManagedHeapMemory::from_image(&image).unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err:?}");
    let mut held = image;
    held[offsets::INDEX_LOCK..offsets::INDEX_LOCK + 4].copy_from_slice(&1u32.to_ne_bytes());
    let seg = ManagedHeapMemory::from_image(&held).expect("the indexes are rebuilt");
    assert_eq!(seg.num_named_objects(), 1);
    seg.construct("b", 2u64).expect("the count is sound again");
}

/// Pid 1 lives as long as the (container's) system: a lock word naming it belongs to an
/// owner that never dies. Nobody else can hold the lock of a heap copy, so the image must
/// not wait for it.
const LIVE_PID: u32 = 1;

/// A heap image and an external buffer are private copies: a held lock word in them names
/// an owner that is gone, whatever pid it holds, and is adopted as after a dead owner.
#[test]
fn a_forged_segment_lock_owner_does_not_block_a_heap_image() {
    let image = forged(offsets::LOCK, &LIVE_PID.to_ne_bytes());
    support::within(Duration::from_secs(5), "allocate in the image", move || {
        let seg = ManagedHeapMemory::from_image(&image).expect("the lock is adopted");
        seg.allocate(8).expect("the lock is free");
        let mut buf = AlignedBuffer::from_image(&image);
        let seg = ManagedExternalBuffer::open(&mut buf).expect("the lock is adopted");
        seg.allocate(8).expect("the lock is free");
    });
}

#[test]
fn a_forged_index_lock_owner_does_not_block_a_heap_image() {
    let image = forged(offsets::INDEX_LOCK, &LIVE_PID.to_ne_bytes());
    support::within(Duration::from_secs(5), "find in the image", move || {
        let seg = ManagedHeapMemory::from_image(&image).expect("the lock is adopted");
        assert_eq!(seg.find::<u64>("a").unwrap(), Some(&1));
        let mut buf = AlignedBuffer::from_image(&image);
        let seg = ManagedExternalBuffer::open(&mut buf).expect("the lock is adopted");
        assert_eq!(seg.find::<u64>("a").unwrap(), Some(&1));
    });
}

/// A lock word naming a live process (this one) in a file at rest: lock owners are judged
/// by the lock bytes of their owner id, never by pid, so nobody holds it and it is taken
/// over at once (it waited forever while owners were pids).
#[test]
fn a_forged_live_lock_owner_does_not_block_a_file_at_rest() {
    for at in [offsets::LOCK, offsets::INDEX_LOCK] {
        let image = forged(at, &LIVE_PID.to_ne_bytes());
        support::within(Duration::from_secs(5), "use the file", move || {
            let file = support::TempPath::new();
            std::fs::write(file.get(), &image).unwrap();
            let seg = ManagedMappedFile::open(file.get()).expect("the lock is adopted");
            seg.allocate(8).expect("the lock is free");
            assert_eq!(seg.find::<u64>("a").unwrap(), Some(&1));
        });
    }
}

/// A thread-cache table forged into a segment that has none (fuzzer: a byte of the word):
/// an adopted private copy checks that the table is an allocated block before it empties
/// the table's bins, as a shared open does (it carved up garbage: SIGSEGV).
#[test]
fn a_forged_cache_table_is_refused_when_a_private_copy_is_adopted() {
    let image = forged(offsets::CACHE_TABLE, &0x2000u64.to_ne_bytes());
    let file = support::TempPath::new();
    std::fs::write(file.get(), &image).unwrap();
    let cow = ManagedMappedFile::options()
        .copy_on_write()
        .open(file.get());
    assert!(matches!(cow, Err(Error::Corrupted { .. })), "{cow:?}");
    let mut held = image;
    held[offsets::LOCK..offsets::LOCK + 4].copy_from_slice(&LIVE_PID.to_ne_bytes());
    let heap = ManagedHeapMemory::from_image(&held);
    assert!(matches!(heap, Err(Error::Corrupted { .. })), "{heap:?}");
}

/// A used block's header enlarged over the blocks after it (fuzzer: one byte of a size):
/// the chain still adds up, but the object after it now lies inside another allocation.
/// A private copy checks every entry against the blocks of the chain and refuses it; one
/// copied while its index lock was held rebuilds its indexes from entries that are blocks
/// of the chain, so the swallowed object is dropped instead of being freed and overwritten
/// while still indexed.
#[test]
fn an_object_swallowed_by_an_enlarged_block_is_refused_or_dropped_from_a_private_copy() {
    let mut seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    seg.construct("a", 1u64).unwrap();
    let base = seg.base_address().as_ptr().addr();
    let first = seg.allocate(40).unwrap().as_ptr().addr() - base;
    seg.construct("b", 2u64).unwrap();
    let after = seg.allocate(40).unwrap().as_ptr().addr() - base;
    let mut image = support::image_bytes(&mut seg);
    // Block headers sit 8 bytes before their payloads; the size is the header's high bits.
    let at = first - 8;
    let header = u64::from_ne_bytes(image[at..at + 8].try_into().unwrap());
    let size = (after - first) as u64;
    image[at..at + 8].copy_from_slice(&(size | header & 7).to_ne_bytes());
    let err = ManagedHeapMemory::from_image(&image).unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err:?}");
    image[offsets::INDEX_LOCK..offsets::INDEX_LOCK + 4].copy_from_slice(&1u32.to_ne_bytes());
    let copy = ManagedHeapMemory::from_image(&image).expect("the chain is consistent");
    assert_eq!(copy.find::<u64>("a").unwrap(), Some(&1));
    assert_eq!(copy.find::<u64>("b").unwrap(), None);
    copy.check().unwrap();
}
