//! Group `alloc_free_mixed`: a window of 10,000 live blocks of 8..=4096 bytes; 2e6 timed
//! ops of one free plus one allocate at a random slot.

use super::alloc::{self, SegAlloc, MIXED_OPS};
use crate::segment::{check_segment, used, Segment, ShmGuard, SEG_SIZE};
use crate::timing::report;
use crate::{check, check_eq};

pub fn run() {
    let guard = ShmGuard::new("mixed");
    let seg = guard.create_prefaulted(SEG_SIZE);
    let used0 = used(&seg);
    let s = alloc::alloc_free_mixed(&mut SegAlloc(&seg), |live, plan| {
        check_live_set(&seg, live, &plan.final_sizes)
    });
    check_eq!(used(&seg), used0);
    check_eq!(seg.all_memory_deallocated(), true);
    check_segment(&seg);
    report("alloc_free_mixed", MIXED_OPS, s);
}

/// Untimed: every slot is a live block of the segment holding at least the requested size.
pub fn check_live_set(seg: &Segment, live: &[*mut u8], sizes: &[usize]) {
    check_eq!(live.len(), sizes.len());
    check_segment(seg);
    alloc::check_distinct_aligned(live, Segment::MIN_ALIGN);
    for (&p, &want) in live.iter().zip(sizes) {
        let usable = std::ptr::NonNull::new(p).and_then(|p| seg.usable_size(p));
        check!(
            usable.is_some_and(|u| u >= want),
            "block {p:?} should hold {want} bytes, usable_size = {usable:?}"
        );
    }
}
