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
