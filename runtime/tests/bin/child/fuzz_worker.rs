//! The worker of the fuzz test (`tests/fuzz/`): runs cases `SHMKIT_FUZZ_FIRST..` (up to
//! `SHMKIT_FUZZ_CASES` of them) of the run seeded `SHMKIT_FUZZ_SEED`. Before each case it
//! tells the parent `c <index> <path> <seed> <mutations>`, after it `d <index> <outcome>
//! <detail>`, or `p <index> <message>` when the case panicked: a case that kills the
//! process or never finishes is the last `c` line without its `d`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::fuzz::{self, Outcome};
use crate::rng::Rng;
use crate::{env, tell_parent};

/// The generator of case `index` of the run seeded `seed`: each case has its own, so any
/// case replays alone.
pub fn case_rng(seed: u64, index: u64) -> Rng {
    Rng::new(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

pub fn run() {
    let seed: u64 = env("SHMKIT_FUZZ_SEED").parse().expect("a seed");
    let first: u64 = env("SHMKIT_FUZZ_FIRST").parse().expect("a first case");
    let cases: u64 = env("SHMKIT_FUZZ_CASES").parse().expect("a case count");
    for index in first..first + cases {
        let case = fuzz::case(&mut case_rng(seed, index));
        tell_parent(&format!(
            "c {index} {:?} {} {}",
            case.path, case.seed.name, case.log
        ));
        match catch_unwind(AssertUnwindSafe(|| fuzz::run(&case))) {
            Ok(outcome) => {
                // The error's variant (after the operation's name, for a failed mix).
                let detail: String = match &outcome {
                    Outcome::Refused(e) | Outcome::Failed(e) => e
                        .split(['{', '(', ';'])
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .replace(": ", ":")
                        .replace(' ', "_"),
                    Outcome::Ran => String::new(),
                };
                tell_parent(&format!(
                    "d {index} {:?} {} {detail}",
                    case.path,
                    outcome.label()
                ));
            }
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("a panic without a message");
                tell_parent(&format!("p {index} {}", msg.replace('\n', " ")));
            }
        }
    }
}
