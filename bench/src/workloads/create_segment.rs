//! Group `create_segment` (line `create_segment_64m`): 20 × timed
//! `{ create 64 MiB segment; escape(base) }` + `remove(name)`; no pre-faulting.

use crate::check;
use crate::segment::{Segment, ShmGuard, SMALL_SEG_SIZE};
use crate::timing::{escape, now, report, secs};

const ITERATIONS: u64 = 20;

pub fn run() {
    let mut total = 0.0;
    for _ in 0..ITERATIONS {
        // Removes the (stale) name now and again, untimed, when dropped below.
        let guard = ShmGuard::new("create");
        let t0 = now();
        {
            // Default options: `reserve` fallocates the whole device, as Boost 1.81 does.
            let seg = match Segment::create(guard.name(), SMALL_SEG_SIZE) {
                Ok(seg) => seg,
                Err(e) => panic!("creating segment {:?} failed: {e}", guard.name()),
            };
            escape(seg.base_address());
        }
        let removed = Segment::remove(guard.name());
        let t1 = now();
        check!(matches!(removed, Ok(true)), "remove returned {removed:?}");
        total += secs(t0, t1);
    }
    report("create_segment_64m", ITERATIONS, total);
}
