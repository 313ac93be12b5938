//! A `SeqLock` holds only `SeqLockData`: plain data whose every bit pattern is valid.
use shmkit::sync::SeqLock;

fn main() {
    let _ = SeqLock::new([true; 4]);
}
