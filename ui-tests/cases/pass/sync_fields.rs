//! A `Semaphore`, a `SeqLock` of plain data (a derived struct without padding) and a
//! `Mutex` are fields of a root like any other, found and used through a shared mapping.
use shmkit::sync::{Mutex, SeqLock, SeqLockData, Semaphore};
use shmkit::{shm_segment, ManagedHeapMemory, ShmSafe};

#[derive(ShmSafe, Clone, Copy, Default, Debug, PartialEq)]
#[repr(C)]
struct Position {
    x: f64,
    y: f64,
    tick: u64,
}

// SAFETY: three 8-byte numbers, no padding, any bits valid.
unsafe impl SeqLockData for Position {}

#[shm_segment]
#[derive(Default)]
struct Shared {
    slots: Semaphore,
    position: SeqLock<Position>,
    history: SeqLock<[u32; 3]>,
    log: Mutex<u64>,
}

fn main() {
    let seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    let shared = seg.root::<Shared>().unwrap();
    shared.slots.post().unwrap();
    assert!(shared.slots.try_wait());
    let p = Position { x: 1.0, y: 2.0, tick: 3 };
    shared.position.write(p).unwrap();
    assert_eq!(shared.position.read(), Ok(p));
    shared.history.update(|h| h[1] = 5).unwrap();
    assert_eq!(shared.history.try_read(), Some([0, 5, 0]));
    *shared.log.lock().unwrap() += 1;
}
