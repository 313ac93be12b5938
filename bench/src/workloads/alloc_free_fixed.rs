//! Group `alloc_free_fixed`: 1e6 × `allocate(64); escape; deallocate` on a fresh 512 MiB
//! segment; the same block is reused every time.

use super::alloc::{self, SegAlloc, FIXED_OPS};
use crate::check_eq;
use crate::segment::{check_segment, used, ShmGuard, SEG_SIZE};
use crate::timing::report;

pub fn run() {
    let guard = ShmGuard::new("fixed");
    let seg = guard.create_prefaulted(SEG_SIZE);
    let used0 = used(&seg);
    let s = alloc::alloc_free_fixed(&mut SegAlloc(&seg), FIXED_OPS);
    check_eq!(used(&seg), used0);
    check_eq!(seg.all_memory_deallocated(), true);
    check_segment(&seg);
    report("alloc_free_fixed", FIXED_OPS, s);
}
