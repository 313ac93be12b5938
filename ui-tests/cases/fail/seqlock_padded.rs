//! A `SeqLock` copies every byte of its value, so a value with padding (uninitialised
//! bytes) is refused at compile time, even when `SeqLockData` was wrongly implemented.
use shmkit::sync::{SeqLock, SeqLockData};
use shmkit::ShmSafe;

#[derive(ShmSafe, Clone, Copy)]
#[repr(C)]
struct Padded {
    flag: u8,
    value: u64,
}

// Wrong: 7 bytes of padding follow `flag`.
unsafe impl SeqLockData for Padded {}

fn main() {
    let lock = SeqLock::new(Padded { flag: 1, value: 2 });
    let _ = lock.read();
}
