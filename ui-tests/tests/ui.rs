//! Runs every trybuild case: `cases/fail/*.rs` must fail to compile with the message in the
//! `.stderr` beside it, `cases/pass/*.rs` must compile and run.
//!
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test -p shmkit-ui-tests`,
//! then read each one: it must show shmkit's message, not an unrelated error.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("cases/fail/*.rs");
    t.pass("cases/pass/*.rs");
}
