//! The mutation fuzzer over valid segment images (`shmkit_test_support::fuzz`): mutants of
//! seed images with objects of every kind, opened through every path (heap image, external
//! buffer read-write and read-only, mapped file read-write, read-only and copy-on-write,
//! shared memory), then the operation mix. The cases run in a child process
//! (`shmkit-test-child fuzz`), so a case that panics, dies of a signal or hangs is reported
//! with the seed and its index instead of killing the run, and the run goes on after it.
//!
//! `SHMKIT_FUZZ_SEED` and `SHMKIT_FUZZ_CASES` change the seed and the number of cases. The
//! bounded run is deterministic; the long run takes a fresh seed unless given one:
//!
//! ```text
//! cargo test --release -p shmkit-runtime --test fuzz -- --ignored --nocapture
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use shmkit_test_support::{spawn_child, Rng, Silence};

const CHILD: &str = env!("CARGO_BIN_EXE_shmkit-test-child");

/// The bounded run's seed.
const DEFAULT_SEED: u64 = 0x5EED_0008;

/// What a run saw.
#[derive(Default)]
struct Tally {
    cases: u64,
    /// Outcome ("refused", "failed", "ran") by path.
    by_path: BTreeMap<String, BTreeMap<String, u64>>,
    /// Outcome by seed image (its algorithm is in its name).
    by_seed: BTreeMap<String, BTreeMap<String, u64>>,
    /// The error variants that refused mutants or failed operations, with their counts.
    errors: BTreeMap<String, u64>,
    /// Panics, signals and hangs, each with its case and how to replay it.
    findings: Vec<String>,
}

impl Tally {
    fn count(&self, outcome: &str) -> u64 {
        self.by_path.values().filter_map(|m| m.get(outcome)).sum()
    }

    fn share(&self, outcome: &str) -> f64 {
        100.0 * self.count(outcome) as f64 / self.cases.max(1) as f64
    }

    fn print(&self, seed: u64, took: Duration) {
        eprintln!(
            "fuzz seed {seed}: {} cases in {took:.1?}: {:.1}% refused at open, {:.1}% opened \
             but an operation reported an error, {:.1}% opened and ran the whole mix; {} findings",
            self.cases,
            self.share("refused"),
            self.share("failed"),
            self.share("ran"),
            self.findings.len()
        );
        for (path, outcomes) in &self.by_path {
            eprintln!("  {path}: {outcomes:?}");
        }
        for (seed, outcomes) in &self.by_seed {
            eprintln!("  seed {seed}: {outcomes:?}");
        }
        eprintln!("  errors: {:?}", self.errors);
        for f in &self.findings {
            eprintln!("  FINDING {f}");
        }
    }
}

/// Runs cases `0..cases` of the run seeded `seed`, restarting the child after a case that
/// killed it; a case silent for `case_limit` is a hang.
fn fuzz(seed: u64, cases: u64, case_limit: Duration) -> Tally {
    let mut tally = Tally::default();
    let mut next = 0;
    while next < cases {
        let mut child = spawn_child(
            CHILD,
            "fuzz",
            &[
                ("SHMKIT_FUZZ_SEED", seed.to_string()),
                ("SHMKIT_FUZZ_FIRST", next.to_string()),
                ("SHMKIT_FUZZ_CASES", (cases - next).to_string()),
            ],
        );
        // The case that started and has not finished: its index and description.
        let mut current: Option<(u64, String)> = None;
        let finding = |index: u64, what: String, desc: &str| {
            format!(
                "case {index}: {what}; {desc}; replay: SHMKIT_FUZZ_SEED={seed} \
                 SHMKIT_FUZZ_FIRST={index} SHMKIT_FUZZ_CASES=1 {CHILD} fuzz"
            )
        };
        loop {
            match child.next_message(case_limit) {
                Ok(line) => {
                    let mut words = line.splitn(3, ' ');
                    let (tag, index) = (words.next(), words.next().and_then(|i| i.parse().ok()));
                    let rest = words.next().unwrap_or_default().to_owned();
                    let (Some(tag), Some(index)) = (tag, index) else {
                        panic!("unexpected line from the fuzz worker: {line}");
                    };
                    match tag {
                        "c" => current = Some((index, rest)),
                        "d" => {
                            let mut parts = rest.split(' ');
                            let path = parts.next().unwrap_or_default().to_owned();
                            let outcome = parts.next().unwrap_or_default().to_owned();
                            if let Some(err) = parts.next().filter(|e| !e.is_empty()) {
                                *tally.errors.entry(err.to_owned()).or_default() += 1;
                            }
                            // The case line: "<path> <seed name> <mutations>".
                            let seed_name = current
                                .as_ref()
                                .and_then(|c| c.1.split(' ').nth(1))
                                .unwrap_or("?")
                                .to_owned();
                            *tally
                                .by_seed
                                .entry(seed_name)
                                .or_default()
                                .entry(outcome.clone())
                                .or_default() += 1;
                            *tally
                                .by_path
                                .entry(path)
                                .or_default()
                                .entry(outcome)
                                .or_default() += 1;
                            tally.cases += 1;
                            current = None;
                            next = index + 1;
                        }
                        "p" => {
                            let desc = current.take().map(|c| c.1).unwrap_or_default();
                            tally
                                .findings
                                .push(finding(index, format!("panic: {rest}"), &desc));
                            tally.cases += 1;
                            next = index + 1;
                        }
                        _ => panic!("unexpected line from the fuzz worker: {line}"),
                    }
                }
                Err(silence) => {
                    let status = match silence {
                        Silence::Timeout => {
                            child.kill();
                            format!("no answer within {case_limit:?}")
                        }
                        Silence::Closed => {
                            let status = child.wait(Duration::from_secs(30));
                            if current.is_none() && status.success() {
                                assert_eq!(next, cases, "the worker stopped early");
                                break;
                            }
                            format!("the worker died: {status}")
                        }
                    };
                    let (index, desc) = current.take().unwrap_or_else(|| {
                        panic!("the fuzz worker failed between cases: {status}")
                    });
                    tally.findings.push(finding(index, status, &desc));
                    tally.cases += 1;
                    next = index + 1;
                    break;
                }
            }
        }
    }
    tally
}

fn env_or(var: &str, default: u64) -> u64 {
    std::env::var(var).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("${var} must be a number, not {v:?}"))
    })
}

/// Runs, prints and checks: no finding, at least 30% of the mutants opened and ran the
/// whole mix (a fuzzer whose mutants are all refused tests nothing), and every path ran
/// some.
fn fuzz_and_check(seed: u64, cases: u64, case_limit: Duration) {
    let started = Instant::now();
    let tally = fuzz(seed, cases, case_limit);
    tally.print(seed, started.elapsed());
    assert!(
        tally.findings.is_empty(),
        "{} cases crashed, panicked or hung (see FINDING above)",
        tally.findings.len()
    );
    assert!(
        tally.share("ran") >= 30.0,
        "only {:.1}% of the mutants opened and ran the whole mix",
        tally.share("ran")
    );
    for (path, outcomes) in &tally.by_path {
        assert!(outcomes.contains_key("ran"), "no mutant opened on {path}");
    }
    for (seed, outcomes) in &tally.by_seed {
        assert!(outcomes.contains_key("ran"), "no mutant of {seed} opened");
    }
}

#[test]
fn mutants_of_valid_images_never_panic_crash_or_hang() {
    fuzz_and_check(
        env_or("SHMKIT_FUZZ_SEED", DEFAULT_SEED),
        env_or("SHMKIT_FUZZ_CASES", 20_000),
        Duration::from_secs(3),
    );
}

#[test]
#[ignore = "the long run: a million cases (see the module doc)"]
fn a_million_mutants_never_panic_crash_or_hang() {
    fuzz_and_check(
        env_or("SHMKIT_FUZZ_SEED", Rng::time_seed()),
        env_or("SHMKIT_FUZZ_CASES", 1_000_000),
        Duration::from_secs(10),
    );
}
