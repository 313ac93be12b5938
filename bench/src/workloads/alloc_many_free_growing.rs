//! Group `alloc_many_free_growing` (line `alloc_many_free_growing`): `alloc_many_free` on a
//! segment created at 1 MiB that grows, while mapped, to hold the million blocks; compare
//! with `alloc_many_free` (a 512 MiB segment), both under `BENCH_PREFAULT=0`. Plus a
//! `# growth` line from a second, untimed run that times each allocation: how often the
//! segment grew and how long the allocations that grew it took.

use std::time::Instant;

use super::alloc::{self, SegAlloc, MANY_N, MANY_SIZE};
use crate::check_eq;
use crate::segment::{check_segment, prefault_segment, used, Segment, ShmGuard};
use crate::timing::{print_line, report};

/// The size the segment starts at.
const INITIAL: usize = 1 << 20;
/// The size it may grow to (what every mapping reserves).
const MAX: usize = 512 << 20;

fn create(guard: &ShmGuard) -> Segment {
    let seg = Segment::options()
        .max_size(MAX)
        .create(guard.name(), INITIAL)
        .unwrap_or_else(|e| panic!("creating segment {:?} failed: {e}", guard.name()));
    prefault_segment(&seg);
    seg
}

pub fn run() {
    let guard = ShmGuard::new("grow");
    let seg = create(&guard);
    let used_empty = used(&seg);
    let r = alloc::alloc_many_free(&mut SegAlloc(&seg), |ptrs| {
        alloc::check_distinct_aligned(ptrs, Segment::MIN_ALIGN);
    });
    check_eq!(used(&seg), used_empty);
    check_eq!(seg.all_memory_deallocated(), true);
    check_segment(&seg);
    let grown_to = seg.size();
    drop(seg);
    report("alloc_many_free_growing", MANY_N, r.alloc_s + r.free_s);

    let guard = ShmGuard::new("grow_events");
    let seg = create(&guard);
    let (mut events, mut growing_s, mut size) = (0u32, 0f64, seg.size());
    let mut ptrs = Vec::with_capacity(MANY_N as usize);
    for _ in 0..MANY_N {
        let t = Instant::now();
        ptrs.push(seg.allocate(MANY_SIZE).expect("allocate"));
        if seg.size() != size {
            growing_s += t.elapsed().as_secs_f64();
            events += 1;
            size = seg.size();
        }
    }
    for p in ptrs {
        // SAFETY: allocated above, freed once.
        unsafe { seg.deallocate(p) }.expect("deallocate");
    }
    check_eq!(size, grown_to);
    print_line(&format!(
        "# growth alloc_many_free_growing: initial={INITIAL} max={MAX} grown_to={grown_to} \
         events={events} growing_ms={:.3}",
        growing_s * 1e3
    ));
}
