//! A mutation fuzzer for the containers' paths that read bytes from elsewhere. Seed
//! images (`seed`) are heap segments holding a named object of every container, nested,
//! grown in rounds so that their blocks interleave; mutants (`mutate`) re-aim their
//! pointers, change their lengths, counts and owner tags, and flip bytes. Each mutant is
//! opened as a writable heap copy, a read-only external buffer and a writable external
//! buffer; where it opens, every object is looked up as its type, read in full where lent,
//! and in a writable mapping changed and partly destroyed, then the segment is checked
//! (`objects`, `exercise`). Any error is fine; a panic is a finding, and so is a hang: a
//! watchdog aborts the run with the case after 10 s. A crash kills the test binary: run
//! again with `SHMKIT_FUZZ_TRACE=1` and `--nocapture` to see each case before it runs
//! (and the errors of each path after). A mutant whose segment checks out before the
//! changes and not after is listed as a SUSPECT (changes to lent objects wrote where they
//! should not have), not a failure: replay it under Miri.
//!
//! Under Miri, where undefined behaviour shows, the run is cut to fit a minute: ten
//! cases on a smaller seed, each opened one way (a heap copy or a read-only buffer, in
//! turn), one round of changes, reads without hashing.
//!
//! The bounded run is deterministic. `SHMKIT_FUZZ_SEED`, `SHMKIT_FUZZ_CASES` and
//! `SHMKIT_FUZZ_FIRST` (the first case index) change it; the long run (200 000 cases, a
//! few minutes) takes a fresh seed unless given one:
//!
//! ```text
//! cargo test --release -p shmkit-containers --test fuzz -- --ignored --nocapture
//! ```
//!
//! A finding prints the command that replays its case alone.

#![allow(missing_docs)]

mod exercise;
mod mutate;
mod objects;
mod regressions;
mod seed;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use shmkit_runtime::{AlignedBuffer, ManagedExternalBuffer, ManagedHeapMemory};
use shmkit_test_support::Rng;

use crate::objects::{kind, Report};

/// What `#[derive(ShmSafe)]` names the runtime by in this crate (the facade's layout).
mod shm {
    pub use shmkit_runtime::*;
}

/// The bounded run's seed.
const DEFAULT_SEED: u64 = 0xC0_27A1_0E25;

/// The bounded run's cases: a few seconds natively, about a minute under Miri.
const CASES: u64 = if cfg!(miri) { 10 } else { 1500 };

/// How long a case may run before it is a hang (no watchdog under Miri).
#[cfg(not(miri))]
const CASE_LIMIT: Duration = Duration::from_secs(10);

/// How a mutant is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// `ManagedHeapMemory::from_image`: a writable copy.
    Heap,
    /// `ManagedExternalBuffer::options().read_only().open` on an `AlignedBuffer`.
    ReadOnlyBuffer,
    /// `ManagedExternalBuffer::open` on an `AlignedBuffer`, writable.
    Buffer,
}

/// The ways a mutant is opened; a writable external buffer not under Miri (it repeats
/// the heap copy's writes, at Miri's cost).
const PATHS: &[Path] = if cfg!(miri) {
    &[Path::Heap, Path::ReadOnlyBuffer]
} else {
    &[Path::Heap, Path::ReadOnlyBuffer, Path::Buffer]
};

/// What became of a mutant on one path.
enum Outcome {
    /// Refused at open, with this error variant.
    Refused(String),
    Opened(Report),
}

/// Opens `image` through `path` and runs the mix on what opened, with choices from `c`.
fn open(path: Path, image: &[u8], c: &mut Rng) -> Outcome {
    let mut report = Report::default();
    let opened = match path {
        Path::Heap => ManagedHeapMemory::from_image(image)
            .map(|mut seg| objects::write(&mut seg, c, &mut report)),
        Path::ReadOnlyBuffer => {
            let buf = AlignedBuffer::from_image(image);
            ManagedExternalBuffer::options()
                .read_only()
                .open(&buf)
                .map(|seg| objects::read_and_check(&seg, &mut report))
        }
        Path::Buffer => {
            let mut buf = AlignedBuffer::from_image(image);
            ManagedExternalBuffer::open(&mut buf)
                .map(|mut seg| objects::write(&mut seg, c, &mut report))
        }
    };
    match opened {
        Ok(()) => Outcome::Opened(report),
        Err(e) => Outcome::Refused(kind(&e)),
    }
}

/// The counts of one path.
#[derive(Default, Debug)]
struct Counts {
    refused: u64,
    opened: u64,
    /// Objects lent, and lookups refused, over all opened mutants.
    lent: u64,
    lookups_refused: u64,
    /// Opened mutants on which nothing reported an error.
    clean: u64,
}

/// What a run saw.
#[derive(Default)]
struct Tally {
    cases: u64,
    paths: BTreeMap<String, Counts>,
    /// Refusals at open and errors of the mix, by what and variant.
    errors: BTreeMap<String, u64>,
    /// Panics, each with its case and how to replay it.
    findings: Vec<String>,
    /// Mutants whose segment checked out before the changes and not after (see
    /// `Report::corrupted`): not failures of the test, but where to look (with Miri).
    suspects: Vec<String>,
}

impl Tally {
    fn print(&self, seed: u64, took: Duration) {
        eprintln!(
            "containers fuzz, seed {seed:#x}: {} cases in {took:.1?}, {} findings",
            self.cases,
            self.findings.len()
        );
        for (path, n) in &self.paths {
            eprintln!(
                "  {path}: opened {} (refused {}), objects lent {}, lookups refused {}, \
                 mixes without an error {}",
                n.opened, n.refused, n.lent, n.lookups_refused, n.clean
            );
        }
        eprintln!("  errors: {:?}", self.errors);
        for f in &self.findings {
            eprintln!("  FINDING {f}");
        }
        for s in &self.suspects {
            eprintln!("  SUSPECT {s}");
        }
    }
}

/// The seed of case `index` of the run seeded `seed`.
fn case_seed(seed: u64, index: u64) -> u64 {
    seed ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Aborts the process when a case runs longer than `CASE_LIMIT`: each case sends its
/// description before it starts; the watchdog ends when the sender is dropped.
#[cfg(not(miri))]
fn watchdog() -> (std::sync::mpsc::Sender<String>, std::thread::JoinHandle<()>) {
    use std::sync::mpsc::{channel, RecvTimeoutError};
    let (tx, rx) = channel::<String>();
    let dog = std::thread::spawn(move || {
        let mut current = String::from("(before the first case)");
        loop {
            match rx.recv_timeout(CASE_LIMIT) {
                Ok(case) => current = case,
                Err(RecvTimeoutError::Timeout) => {
                    eprintln!("FINDING a hang: {current} ran for over {CASE_LIMIT:?}");
                    std::process::abort();
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
    });
    (tx, dog)
}

/// Runs cases `first..first + cases` of the run seeded `seed`.
fn fuzz(seed: u64, first: u64, cases: u64) -> Tally {
    let trace = std::env::var_os("SHMKIT_FUZZ_TRACE").is_some();
    #[cfg(not(miri))]
    let (progress, dog) = watchdog();
    let mut tally = Tally::default();
    for index in first..first + cases {
        let mut rng = Rng::new(case_seed(seed, index));
        let mutant = mutate::mutant(&mut rng);
        let replay = format!(
            "case {index} ({mutant}); replay: SHMKIT_FUZZ_SEED={seed:#x} SHMKIT_FUZZ_FIRST={index} \
             SHMKIT_FUZZ_CASES=1 cargo test -p shmkit-containers --test fuzz -- --ignored \
             --nocapture many_mutants"
        );
        if trace {
            eprintln!("{replay}");
        }
        #[cfg(not(miri))]
        progress.send(replay.clone()).expect("the watchdog runs");
        tally.cases += 1;
        // Under Miri each case takes one path, in turn.
        let paths = match cfg!(miri) {
            true => &PATHS[index as usize % PATHS.len()..][..1],
            false => PATHS,
        };
        for &path in paths {
            let counts = tally.paths.entry(format!("{path:?}")).or_default();
            match catch_unwind(AssertUnwindSafe(|| open(path, &mutant.image, &mut rng))) {
                Ok(Outcome::Refused(why)) => {
                    counts.refused += 1;
                    *tally.errors.entry(format!("open: {why}")).or_default() += 1;
                }
                Ok(Outcome::Opened(report)) => {
                    if trace {
                        eprintln!("  {path:?}: lent {}, {:?}", report.lent, report.details);
                    }
                    counts.opened += 1;
                    counts.lent += report.lent;
                    counts.lookups_refused += report.refused;
                    counts.clean += u64::from(report.errors.is_empty());
                    if report.corrupted {
                        tally
                            .suspects
                            .push(format!("{path:?}: the mix corrupted the segment: {replay}"));
                    }
                    for e in report.errors {
                        *tally.errors.entry(e).or_default() += 1;
                    }
                }
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    tally
                        .findings
                        .push(format!("{path:?} panicked ({message}): {replay}"));
                }
            }
        }
    }
    #[cfg(not(miri))]
    {
        drop(progress);
        dog.join().expect("the watchdog ends");
    }
    tally
}

fn env_or(var: &str, default: u64) -> u64 {
    std::env::var(var).map_or(default, |v| {
        let parsed = match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => v.parse(),
        };
        parsed.unwrap_or_else(|_| panic!("${var} must be a number, not {v:?}"))
    })
}

/// Runs, prints and checks: no finding, and every path opened mutants and lent objects
/// (a fuzzer whose mutants are all refused tests nothing).
fn fuzz_and_check(default_seed: u64, default_cases: u64) {
    let seed = env_or("SHMKIT_FUZZ_SEED", default_seed);
    let started = Instant::now();
    let tally = fuzz(
        seed,
        env_or("SHMKIT_FUZZ_FIRST", 0),
        env_or("SHMKIT_FUZZ_CASES", default_cases),
    );
    tally.print(seed, started.elapsed());
    assert!(
        tally.findings.is_empty(),
        "{} findings (see FINDING above)",
        tally.findings.len()
    );
    if tally.cases >= 10 {
        for (path, n) in &tally.paths {
            assert!(n.opened > 0 && n.lent > 0, "nothing lent on {path}: {n:?}");
        }
    }
}

#[test]
fn mutants_never_panic_crash_or_hang() {
    fuzz_and_check(DEFAULT_SEED, CASES);
}

#[test]
#[ignore = "the long run (see the module doc)"]
fn many_mutants_never_panic_crash_or_hang() {
    fuzz_and_check(Rng::time_seed(), 200_000);
}

/// The unmutated seeds open on every path, lend every object (read-only mappings those
/// without interior mutability), and run the whole mix with no error but running out of
/// memory: the fuzzer's machinery works, so what the mutants report is theirs.
#[test]
#[cfg_attr(miri, ignore = "natively: the cases under Miri exercise the same")]
fn every_seed_object_is_lent_and_exercised() {
    for seed in seed::seeds() {
        for &path in PATHS {
            let Outcome::Opened(report) = open(path, &seed.image, &mut Rng::new(7)) else {
                panic!("seed \"{}\" refused on {path:?}", seed.name);
            };
            let all = if path == Path::ReadOnlyBuffer { 12 } else { 15 };
            assert_eq!(
                report.lent, all,
                "seed \"{}\" on {path:?}: {:?}",
                seed.name, report.details
            );
            let unexpected: Vec<_> = report
                .errors
                .iter()
                .filter(|e| !e.ends_with("OutOfMemory"))
                .collect();
            assert!(
                unexpected.is_empty(),
                "seed \"{}\" on {path:?}: {unexpected:?}",
                seed.name
            );
        }
        assert!(
            seed.pointers.len() > 50 && !seed.tags.is_empty(),
            "seed \"{}\": {} pointers, {} tags",
            seed.name,
            seed.pointers.len(),
            seed.tags.len()
        );
    }
}
