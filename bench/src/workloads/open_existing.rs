//! Groups `open_existing` and `open_existing_populated`: a segment holding the named `u64`
//! `"target" = 0xC0FFEE` (64 MiB; populated: 512 MiB that also hold 1,000,000 named `u64`s
//! `obj_<i>`, built untimed), its creating mapping open; timed, 1,000 × `{ open by name;
//! find "target"; sum += value }`, each including the open (shm_open, fstat, locks, mmap,
//! header checks), the find, and at scope exit the unmap and close.
//!
//! With the creator attached these opens are warm (they trust it and validate only the
//! header), so their time does not grow with the contents. After the creator is dropped
//! every open is cold and validates the whole segment: a `# cold` line gives that time.
//! The populated group first runs the same opens on a 512 MiB segment holding only
//! `"target"` (a `# empty` line): what is left between the two is the lookup's first touch
//! of the index and entry pages in each fresh mapping (three page faults instead of one),
//! not the number of objects. The peer has neither `#` line, nor the populated group.

use crate::check;
use crate::segment::{Segment, ShmGuard, SEG_SIZE, SMALL_SEG_SIZE};
use crate::timing::{format_line, now, print_line, report, secs};

const ITERATIONS: u64 = 1000;
/// Cold opens validate everything: fewer of them.
const COLD_ITERATIONS: u64 = 5;
const VALUE: u64 = 0xC0FFEE;
const POPULATED: u64 = 1_000_000;

pub fn run() {
    run_group("open_existing", SMALL_SEG_SIZE, 0);
}

pub fn run_populated() {
    let line = "open_existing_populated";
    let empty = {
        let guard = ShmGuard::new("open_existing_empty");
        let _creator = build(&guard, SEG_SIZE, 0);
        opens(guard.name(), ITERATIONS)
    };
    print_line(&format!("# empty {}", format_line(line, ITERATIONS, empty)));
    run_group(line, SEG_SIZE, POPULATED);
}

/// Reports the warm opens of a segment of `size` bytes holding "target" and `objects`
/// more, then the cold opens once its creator is gone.
fn run_group(line: &str, size: usize, objects: u64) {
    let guard = ShmGuard::new(line);
    let creator = build(&guard, size, objects);
    report(line, ITERATIONS, opens(guard.name(), ITERATIONS));
    drop(creator);
    let cold = opens(guard.name(), COLD_ITERATIONS);
    print_line(&format!(
        "# cold {}",
        format_line(line, COLD_ITERATIONS, cold)
    ));
}

/// Creates the segment of `size` bytes named by `guard` (pre-faulted) holding "target" and
/// `objects` named `u64`s; the returned creating mapping keeps later opens warm.
fn build(guard: &ShmGuard, size: usize, objects: u64) -> Segment {
    let creator = guard.create_prefaulted(size);
    if let Err(e) = creator.construct("target", VALUE) {
        panic!("construct \"target\" failed: {e}");
    }
    for i in 0..objects {
        if let Err(e) = creator.construct(format!("obj_{i}").as_str(), i) {
            panic!("construct \"obj_{i}\" failed: {e}");
        }
    }
    creator
}

/// Seconds for `n` × { open `name`, find "target", sum, drop }.
fn opens(name: &str, n: u64) -> f64 {
    let (mut sum, mut missing) = (0u64, 0u64);
    let t0 = now();
    for _ in 0..n {
        let seg = match Segment::open(name) {
            Ok(seg) => seg,
            Err(e) => panic!("open {name:?} failed: {e}"),
        };
        match seg.find::<u64>("target") {
            Ok(Some(v)) => sum += *v,
            _ => missing += 1,
        }
    }
    let t1 = now();
    check!(
        missing == 0 && sum == n * VALUE,
        "sum {sum}, missing {missing}"
    );
    secs(t0, t1)
}
