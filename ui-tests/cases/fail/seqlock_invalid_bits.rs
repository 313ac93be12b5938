//! A `SeqLock` reader builds values from bytes a writer may be changing, so a value with
//! invalid bit patterns (a `bool`) is refused at compile time even when `SeqLockData` was
//! wrongly implemented.
use shmkit::sync::{SeqLock, SeqLockData};
use shmkit::ShmSafe;

#[derive(ShmSafe, Clone, Copy)]
#[repr(C)]
struct Flags {
    on: [bool; 8],
}

// Wrong: a `bool` byte of 2 is not a value.
unsafe impl SeqLockData for Flags {}

fn main() {
    let lock = SeqLock::new(Flags { on: [false; 8] });
    let _ = lock.read();
}
