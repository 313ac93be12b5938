//! Anonymous shared memory shared with forked children, and exclusive mappings that forked
//! children do not inherit.
//!
//! `fork` in a multi-threaded process leaves the child with locks held by threads that no
//! longer exist, so this binary runs without the threaded test harness (`harness = false`
//! in Cargo.toml): `main` runs the tests one after another on the only thread, and a
//! failing test panics, which fails the binary. Lock-owner liveness across forks is in
//! [`liveness`].

mod file_lock;
mod growth_attack;
mod liveness;
mod observer;
mod os;
mod owners;
mod segment;
mod sharing;
mod sync;

/// A test, and why it does not run by default (libtest's `#[ignore]`); `-- --ignored`
/// runs only those, `-- --include-ignored` all.
type Test = (&'static str, fn(), Option<&'static str>);

fn main() {
    let tests: [Test; 22] = [
        (
            "growth_attack::a_forked_child_grows_an_inherited_mapping_and_the_parent_and_a_sibling_follow",
            growth_attack::a_forked_child_grows_an_inherited_mapping_and_the_parent_and_a_sibling_follow,
            None,
        ),
        (
            "sync::a_private_mutex_another_thread_held_at_the_fork_is_a_dead_owners_in_the_child",
            sync::a_private_mutex_another_thread_held_at_the_fork_is_a_dead_owners_in_the_child,
            None,
        ),
        (
            "sync::a_child_forked_holding_a_private_mutex_gets_no_second_guard",
            sync::a_child_forked_holding_a_private_mutex_gets_no_second_guard,
            None,
        ),
        (
            "sync::a_child_does_not_nest_into_a_shared_reentrant_lock_its_parent_holds",
            sync::a_child_does_not_nest_into_a_shared_reentrant_lock_its_parent_holds,
            None,
        ),
        (
            "observer::an_observer_inherited_by_a_child_keeps_what_it_reads_alive",
            observer::an_observer_inherited_by_a_child_keeps_what_it_reads_alive,
            None,
        ),
        (
            "os::anonymous_shared_memory_is_shared_with_a_forked_child",
            os::anonymous_shared_memory_is_shared_with_a_forked_child,
            None,
        ),
        (
            "segment::a_forked_child_allocates_and_the_parent_reads_through_its_handle",
            segment::a_forked_child_allocates_and_the_parent_reads_through_its_handle,
            None,
        ),
        (
            "segment::parent_and_forked_child_allocate_concurrently_without_corruption",
            segment::parent_and_forked_child_allocate_concurrently_without_corruption,
            None,
        ),
        (
            "segment::a_forked_child_killed_holding_the_lock_does_not_block_the_parent",
            segment::a_forked_child_killed_holding_the_lock_does_not_block_the_parent,
            None,
        ),
        (
            "sharing::a_forked_child_does_not_inherit_an_exclusive_mapping",
            sharing::a_forked_child_does_not_inherit_an_exclusive_mapping,
            None,
        ),
        (
            "sharing::a_child_forked_while_a_mapping_is_shared_never_keeps_its_parents_description",
            sharing::a_child_forked_while_a_mapping_is_shared_never_keeps_its_parents_description,
            None,
        ),
        (
            "liveness::a_forked_child_killed_holding_the_lock_of_a_named_segment_is_taken_over",
            liveness::a_forked_child_killed_holding_the_lock_of_a_named_segment_is_taken_over,
            None,
        ),
        (
            "liveness::a_forked_child_killed_holding_the_lock_through_a_reopened_mapping_is_taken_over",
            liveness::a_forked_child_killed_holding_the_lock_through_a_reopened_mapping_is_taken_over,
            None,
        ),
        (
            "liveness::a_parent_killed_holding_the_lock_is_taken_over_while_its_forked_child_lives",
            liveness::a_parent_killed_holding_the_lock_is_taken_over_while_its_forked_child_lives,
            None,
        ),
        (
            "liveness::destroy_is_in_use_while_a_forked_child_maps_anonymous_memory",
            liveness::destroy_is_in_use_while_a_forked_child_maps_anonymous_memory,
            None,
        ),
        (
            "owners::a_child_that_cannot_reopen_the_description_does_not_take_the_parents_lock",
            owners::a_child_that_cannot_reopen_the_description_does_not_take_the_parents_lock,
            None,
        ),
        (
            "owners::a_child_forked_inside_with_lock_does_not_release_the_parents_lock",
            owners::a_child_forked_inside_with_lock_does_not_release_the_parents_lock,
            None,
        ),
        (
            "owners::a_parent_that_dies_holding_the_lock_does_not_block_its_child",
            owners::a_parent_that_dies_holding_the_lock_does_not_block_its_child,
            None,
        ),
        (
            "owners::an_exclusive_mapping_used_in_a_forked_child_is_an_error_not_a_crash",
            owners::an_exclusive_mapping_used_in_a_forked_child_is_an_error_not_a_crash,
            None,
        ),
        (
            "owners::an_exclusive_mapping_with_a_thread_cache_used_in_a_forked_child_is_an_error",
            owners::an_exclusive_mapping_with_a_thread_cache_used_in_a_forked_child_is_an_error,
            None,
        ),
        (
            "owners::an_open_short_of_descriptors_still_excludes_destroys",
            owners::an_open_short_of_descriptors_still_excludes_destroys,
            None,
        ),
        (
            "file_lock::a_child_forked_while_its_parent_holds_a_file_lock_neither_holds_nor_releases_it",
            file_lock::a_child_forked_while_its_parent_holds_a_file_lock_neither_holds_nor_releases_it,
            None,
        ),
    ];
    let args: Vec<String> = std::env::args().collect();
    let only_ignored = args.iter().any(|a| a == "--ignored");
    let all = args.iter().any(|a| a == "--include-ignored");
    let (mut passed, mut ignored) = (0, 0);
    // A test name filter, as libtest takes one.
    let filter = args.iter().skip(1).find(|a| !a.starts_with("--"));
    for (name, test, ignore) in tests
        .into_iter()
        .filter(|(n, ..)| filter.is_none_or(|f| n.contains(f.as_str())))
    {
        match ignore {
            Some(why) if !only_ignored && !all => {
                println!("test {name} ... ignored, {why}");
                ignored += 1;
            }
            None if only_ignored => ignored += 1,
            _ => {
                test();
                println!("test {name} ... ok");
                passed += 1;
            }
        }
    }
    println!(
        "test result: ok. {passed} passed; 0 failed; {ignored} ignored; 0 measured; 0 filtered out"
    );
}
