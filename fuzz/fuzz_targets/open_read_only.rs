//! Mutants of the seed images opened through a read-only `ManagedExternalBuffer`, then the operation mix
//! (test-support's `fuzz` module: the input chooses the seed and the mutations).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkit_test_support::fuzz::{case_on, run, Path, Script};

fuzz_target!(|data: &[u8]| {
    run(&case_on(Path::ReadOnlyBuffer, &mut Script(data)));
});
