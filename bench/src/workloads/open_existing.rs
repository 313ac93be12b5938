//! Group `open_existing`: a 64 MiB segment holding the named `u64` `"target" = 0xC0FFEE`
//! (its creating mapping stays open); timed, 1,000 × `{ open by name; find "target";
//! sum += value }`, each including the open (shm_open, fstat, mmap, header checks), the
//! find, and at scope exit the unmap and close.

use crate::check;
use crate::segment::{Segment, ShmGuard, SMALL_SEG_SIZE};
use crate::timing::{now, report, secs};

const ITERATIONS: u64 = 1000;
const VALUE: u64 = 0xC0FFEE;

pub fn run() {
    let guard = ShmGuard::new("open");
    let creator = guard.create_prefaulted(SMALL_SEG_SIZE);
    if let Err(e) = creator.construct("target", VALUE) {
        panic!("construct \"target\" failed: {e}");
    }
    let (mut sum, mut missing) = (0u64, 0u64);
    let t0 = now();
    for _ in 0..ITERATIONS {
        let seg = match Segment::open(guard.name()) {
            Ok(seg) => seg,
            Err(e) => panic!("open {:?} failed: {e}", guard.name()),
        };
        match seg.find::<u64>("target") {
            Ok(Some(v)) => sum += *v,
            _ => missing += 1,
        }
    }
    let t1 = now();
    check!(
        missing == 0 && sum == ITERATIONS * VALUE,
        "sum {sum}, missing {missing}"
    );
    report("open_existing", ITERATIONS, secs(t0, t1));
}
