use std::sync::atomic::AtomicU32;

use shmkit::{NoPadding, ShmSafe};

// No padding in either, but an atomic may change while it is read as bytes, and a tuple's
// layout may have padding.
#[derive(ShmSafe, NoPadding)]
#[repr(C)]
struct Counters {
    hits: AtomicU32,
    pair: (u16, u16),
    plain: [u32; 2],
}

fn main() {}
