//! Anonymous shared memory shared with forked children, and exclusive mappings that forked
//! children do not inherit.
//!
//! `fork` in a multi-threaded process leaves the child with locks held by threads that no
//! longer exist, so this binary runs without the threaded test harness (`harness = false`
//! in Cargo.toml): `main` runs the tests one after another on the only thread, and a
//! failing test panics, which fails the binary.

mod os;
mod segment;
mod sharing;

fn main() {
    let tests: [(&str, fn()); 5] = [
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
    ];
    for (name, test) in tests {
        test();
        println!("test {name} ... ok");
    }
    println!(
        "test result: ok. {} passed; 0 failed; 0 ignored; 0 measured; 0 filtered out",
        tests.len()
    );
}
