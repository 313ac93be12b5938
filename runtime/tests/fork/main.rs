//! Anonymous shared memory shared with forked children, and exclusive mappings that forked
//! children do not inherit.
//!
//! `fork` in a multi-threaded process leaves the child with locks held by threads that no
//! longer exist, so this binary runs without the threaded test harness (`harness = false`
//! in Cargo.toml): `main` runs the tests one after another on the only thread, and a
//! failing test panics, which fails the binary.

mod os;
mod owners;
mod segment;
mod sharing;

fn main() {
    let tests: [(&str, fn()); 8] = [
        (
            "os::anonymous_shared_memory_is_shared_with_a_forked_child",
            os::anonymous_shared_memory_is_shared_with_a_forked_child,
        ),
        (
            "segment::a_forked_child_allocates_and_the_parent_reads_through_its_handle",
            segment::a_forked_child_allocates_and_the_parent_reads_through_its_handle,
        ),
        (
            "segment::parent_and_forked_child_allocate_concurrently_without_corruption",
            segment::parent_and_forked_child_allocate_concurrently_without_corruption,
        ),
        (
            "segment::a_forked_child_killed_holding_the_lock_does_not_block_the_parent",
            segment::a_forked_child_killed_holding_the_lock_does_not_block_the_parent,
        ),
        (
            "sharing::a_forked_child_does_not_inherit_an_exclusive_mapping",
            sharing::a_forked_child_does_not_inherit_an_exclusive_mapping,
        ),
        (
            "owners::a_child_that_cannot_reopen_the_description_does_not_take_the_parents_lock",
            owners::a_child_that_cannot_reopen_the_description_does_not_take_the_parents_lock,
        ),
        (
            "owners::a_child_forked_inside_with_lock_does_not_release_the_parents_lock",
            owners::a_child_forked_inside_with_lock_does_not_release_the_parents_lock,
        ),
        (
            "owners::a_parent_that_dies_holding_the_lock_does_not_block_its_child",
            owners::a_parent_that_dies_holding_the_lock_does_not_block_its_child,
        ),
    ];
    // Known failures (`reason`), run with `--ignored` or `--include-ignored` as libtest does.
    let ignored: [(&str, &str, fn()); 1] = [
        (
            "owners::an_exclusive_mapping_used_in_a_forked_child_is_an_error_not_a_crash",
            "attack7: a forked child's copy of an exclusive segment reads memory that is not mapped there (SIGSEGV)",
            owners::an_exclusive_mapping_used_in_a_forked_child_is_an_error_not_a_crash,
        ),
    ];
    let args: Vec<String> = std::env::args().collect();
    let run_ignored = args
        .iter()
        .any(|a| a == "--ignored" || a == "--include-ignored");
    let only_ignored = args.iter().any(|a| a == "--ignored");
    // A test name filter, as libtest takes one.
    let filter = args.iter().skip(1).find(|a| !a.starts_with("--"));
    let wanted = |name: &str| filter.is_none_or(|f| name.contains(f.as_str()));
    let mut passed = 0;
    for (name, test) in tests
        .into_iter()
        .filter(|(n, _)| !only_ignored && wanted(n))
    {
        test();
        passed += 1;
        println!("test {name} ... ok");
    }
    for (name, reason, test) in ignored.into_iter().filter(|(n, ..)| wanted(n)) {
        if run_ignored {
            test();
            passed += 1;
            println!("test {name} ... ok");
        } else {
            println!("test {name} ... ignored, {reason}");
        }
    }
    let skipped = if run_ignored { 0 } else { ignored.len() };
    println!("test result: ok. {passed} passed; 0 failed; {skipped} ignored; 0 measured");
}
