use shmkit::{BasicManagedHeapMemory, NullIndex};

fn build(segment: &BasicManagedHeapMemory<NullIndex>) {
    segment.construct("hits", 1u64).unwrap();
}

fn main() {}
