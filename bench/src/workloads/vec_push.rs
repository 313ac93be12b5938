//! Group `vec_push` (lines `vec_push`, `vec_iter_sum`): the peer's
//! `bip::vector<uint64_t>`, here the segment `Vec<u64>`, constructed as the named object
//! "vec" in a fresh 512 MiB segment; timed: 10,000,000 `push(i)` without reserve, then a
//! sum over the elements; plus a `#` line with the final capacity and the segment bytes
//! used per element.
//!
//! The segment is mapped exclusively: the peer pushes from its one process without a lock,
//! which in shmkit's model is an exclusive mapping's `ShmMut` (a shared mapping would push
//! through a `Mutex` guard taken once around the loop, the same code). As in the peer, the
//! vector's buffer is the last block of a fresh segment, so growth is in place.

use shmkit::containers::{Vec, VecExt};

use crate::segment::{check_segment, used, ShmGuard, SEG_SIZE};
use crate::timing::{escape, now, print_line, report, secs};
use crate::{check, check_eq};

const N: u64 = 10_000_000;

pub fn run() {
    let guard = ShmGuard::new("vec");
    let mut seg = guard.create_exclusive_prefaulted(SEG_SIZE);
    let used0 = used(&seg);
    check!(seg.construct("vec", Vec::<u64>::new()).is_ok());
    let mut v = match seg.find_mut::<Vec<u64>>("vec") {
        Ok(Some(v)) => v,
        other => panic!("finding the vector failed: {:?}", other.err()),
    };

    let t0 = now();
    for i in 0..N {
        if let Err(e) = v.push(i) {
            panic!("push {i} failed: {e}");
        }
    }
    let t1 = now();

    let mut sum = 0u64;
    let t2 = now();
    for &x in v.iter() {
        sum = sum.wrapping_add(x);
    }
    let t3 = now();
    escape(sum);
    check_eq!(v.len() as u64, N);
    check_eq!(sum, N * (N - 1) / 2);
    let capacity = v.capacity();
    report("vec_push", N, secs(t0, t1));
    report("vec_iter_sum", N, secs(t2, t3));
    let bytes = used(&seg) - used0;
    print_line(&format!(
        "# vec_push: final capacity={capacity} segment bytes per element={:.2}",
        bytes as f64 / N as f64
    ));
    check!(matches!(seg.destroy::<Vec<u64>>("vec"), Ok(true)));
    check_eq!(used(&seg), used0);
    check_segment(&seg);
}
