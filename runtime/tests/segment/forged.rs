//! Images forged in the words the fuzzer (`tests/fuzz`) found dangerous, each minimised
//! to one patched word: opening and using them ends in an error or works, never in a
//! panic or a hang.

use std::time::Duration;

use shmkit_runtime::{Error, ManagedHeapMemory};
use shmkit_test_support as support;
use support::offsets;

/// The image of a 4 KiB heap segment holding the named object "a", with the word at `at`
/// set to `value`.
fn forged(at: usize, value: &[u8]) -> Vec<u8> {
    let mut seg = ManagedHeapMemory::new(4096).unwrap();
    seg.construct("a", 1u64).unwrap();
    let mut image = seg.image().to_vec();
    image[at..at + value.len()].copy_from_slice(value);
    image
}

#[test]
fn a_forged_object_count_is_corrupted_not_an_overflow() {
    let image = forged(offsets::NAMED_COUNT, &u64::MAX.to_ne_bytes());
    let seg = ManagedHeapMemory::from_image(&image).expect("the count is not checked at open");
    let err = seg.construct("b", 2u64).unwrap_err();
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
    let mut image = seg.image().to_vec();
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
    let at = support::internals::entry_count_at(seg.image(), 8);
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

/// Pid 1 lives as long as the (container's) system: a lock word naming it belongs to an
/// owner that never dies. Nobody else can hold the lock of a heap copy, so the image must
/// not wait for it.
const LIVE_PID: u32 = 1;

#[test]
#[ignore = "issue 8 finding (fuzzer): a heap image or buffer whose segment lock word names a live process waits forever"]
fn a_forged_segment_lock_owner_does_not_block_a_heap_image() {
    let image = forged(offsets::LOCK, &LIVE_PID.to_ne_bytes());
    support::within(Duration::from_secs(5), "allocate in the image", move || {
        if let Ok(seg) = ManagedHeapMemory::from_image(&image) {
            drop(seg.allocate(8));
        }
    });
}

#[test]
#[ignore = "issue 8 finding (fuzzer): a heap image or buffer whose index lock word names a live process waits forever"]
fn a_forged_index_lock_owner_does_not_block_a_heap_image() {
    let image = forged(offsets::INDEX_LOCK, &LIVE_PID.to_ne_bytes());
    support::within(Duration::from_secs(5), "find in the image", move || {
        if let Ok(seg) = ManagedHeapMemory::from_image(&image) {
            drop(seg.find::<u64>("a"));
        }
    });
}
