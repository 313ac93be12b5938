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

/// Cases for findings not fixed yet, which compile today although they must not. Once the
/// fix lands, move them to `cases/fail/` with their `.stderr`.
#[test]
#[ignore = "attack8: the derive's self-name assumption also rewrites const arguments, so a type with an atomic is ShmImmutable"]
fn pending() {
    trybuild::TestCases::new().compile_fail("cases/pending/*.rs");
}
