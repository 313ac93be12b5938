//! Group `alloc_free_mt`: `alloc_free_mixed` on two threads at once in one segment, each
//! with its own window of 10,000 blocks and its own sequence; 2 × 2e6 timed ops.

use super::alloc::{self, SegAlloc, MIXED_OPS, MT_THREADS};
use super::alloc_free_mixed::check_live_set;
use crate::check_eq;
use crate::segment::{check_segment, used, ShmGuard, SEG_SIZE};
use crate::timing::report;

pub fn run() {
    let guard = ShmGuard::new("mt");
    let seg = guard.create_prefaulted(SEG_SIZE);
    let used0 = used(&seg);
    let s = alloc::alloc_free_mixed_mt([SegAlloc(&seg), SegAlloc(&seg)], |live, plan| {
        check_live_set(&seg, live, &plan.final_sizes)
    });
    check_eq!(used(&seg), used0);
    check_eq!(seg.all_memory_deallocated(), true);
    check_segment(&seg);
    report("alloc_free_mt", MT_THREADS as u64 * MIXED_OPS, s);
}
