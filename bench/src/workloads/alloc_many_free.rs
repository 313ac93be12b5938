//! Group `alloc_many_free` (lines `alloc_many`, `free_many`, `alloc_many_free`): 1e6 ×
//! `allocate(32)` timed, then 1e6 deallocations in allocation order timed, plus the
//! `# mem alloc_many_32` accounting line.

use std::cell::Cell;

use super::alloc::{self, SegAlloc, MANY_N, MANY_SIZE};
use crate::check_eq;
use crate::segment::{check_segment, used, Segment, ShmGuard, SEG_SIZE};
use crate::timing::{print_line, report};

pub fn run() {
    let guard = ShmGuard::new("many");
    let seg = guard.create_prefaulted(SEG_SIZE);
    let used_empty = used(&seg);
    let used_full = Cell::new(0usize);
    let r = alloc::alloc_many_free(&mut SegAlloc(&seg), |ptrs| {
        used_full.set(used(&seg));
        alloc::check_distinct_aligned(ptrs, Segment::MIN_ALIGN);
    });
    let used_full = used_full.get();
    check_eq!(used(&seg), used_empty);
    check_eq!(seg.all_memory_deallocated(), true);
    check_segment(&seg);

    report("alloc_many", MANY_N, r.alloc_s);
    report("free_many", MANY_N, r.free_s);
    report("alloc_many_free", MANY_N, r.alloc_s + r.free_s);
    print_line(&format!(
        "# mem alloc_many_32: blocks={MANY_N} request={MANY_SIZE} segment_size={} \
         used_empty={used_empty} used_after_alloc={used_full} used_per_block={:.3} \
         net_used_per_block={:.3} payload_per_allocation={} alignment={}",
        seg.size(),
        used_full as f64 / MANY_N as f64,
        (used_full - used_empty) as f64 / MANY_N as f64,
        Segment::PAYLOAD_PER_ALLOCATION,
        Segment::MIN_ALIGN,
    ));
}
