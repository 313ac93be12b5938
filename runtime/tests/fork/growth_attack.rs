//! Growth while mapped across `fork` (issue 15): a forked child inherits a growable
//! mapping (its reservation, and the descriptor its `Limits` grows and `fstat`s) and grows
//! the segment; the parent, and a child forked before the growth, reach what it made.

use std::time::{Duration, Instant};

use shmkit_runtime::ManagedSharedMemory;
use shmkit_test_support::ShmGuard;

use crate::segment::{fork_child, wait_success};

const SIZE: usize = 64 * 1024;
const MAX: usize = 16 << 20;

pub fn a_forked_child_grows_an_inherited_mapping_and_the_parent_and_a_sibling_follow() {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::options()
        .max_size(MAX)
        .create(name.get(), SIZE)
        .unwrap();
    seg.construct("x", 1u64).unwrap();
    // Forked before the growth: waits for the object the grower makes past the old end.
    let reader = fork_child(|| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(v)) = seg.find::<[u64; 64]>("late") {
                return v[63] == 9 && seg.size() > 4 << 20 && seg.check().is_ok();
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let grower = fork_child(|| {
        let Ok(p) = seg.allocate(4 << 20) else {
            return false;
        };
        // SAFETY: ours, 4 MiB.
        unsafe { p.as_ptr().write_bytes(3, 4 << 20) };
        seg.construct("late", [9u64; 64]).is_ok() && seg.size() > 4 << 20
    });
    wait_success(grower, "the child that grows");
    wait_success(reader, "the child forked before the growth");
    assert!(seg.size() > 4 << 20, "the parent follows: {}", seg.size());
    assert_eq!(seg.find::<[u64; 64]>("late").unwrap().unwrap()[0], 9);
    // The parent grows on from where the child left it.
    seg.allocate(6 << 20).expect("the parent grows further");
    seg.check().unwrap();
}
