//! A `SegmentObserver` across `fork`: the child inherits it as it is (its description is
//! shared, not reopened: it takes no locks a child could misuse).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};

use shmkit_runtime::{Error, ManagedSharedMemory, SharedMemoryObserver};
use shmkit_test_support::ShmGuard;

use crate::segment::{fork_child, wait_success};

/// What a forked child observes stays alive after the parent drops its copy of the
/// observer: the description the child shares still holds `ATTACH`, so a destroy waits
/// for the child, which sees the parent's writes meanwhile. (No writable mapping is
/// inherited: the child's attachment is the observer's alone.)
pub fn an_observer_inherited_by_a_child_keeps_what_it_reads_alive() {
    let name = ShmGuard::new();
    let seg = ManagedSharedMemory::create(name.get(), 64 * 1024).unwrap();
    seg.construct("hits", AtomicU64::new(1)).unwrap();
    drop(seg);
    let observer = SharedMemoryObserver::open(name.get()).unwrap();
    let seen = observer.find::<AtomicU64>("hits").unwrap().unwrap();
    let (mut parent_end, mut child_end) = UnixStream::pair().unwrap();
    let child = fork_child(|| {
        let mut go = [0u8];
        child_end.read_exact(&mut go).unwrap();
        seen.load() == 2
    });
    drop(observer);
    let mut writer = ManagedSharedMemory::open(name.get()).unwrap();
    let destroyed = writer.destroy::<AtomicU64>("hits");
    assert!(
        matches!(destroyed, Err(Error::InUse { .. })),
        "destroyed under the child's observer: {destroyed:?}"
    );
    writer
        .find::<AtomicU64>("hits")
        .unwrap()
        .unwrap()
        .store(2, Ordering::Release);
    parent_end.write_all(&[1]).unwrap();
    wait_success(child, "observing the parent's write");
    assert!(writer.destroy::<AtomicU64>("hits").unwrap());
}
