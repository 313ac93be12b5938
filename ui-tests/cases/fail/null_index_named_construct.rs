use shmkit::{ManagedHeapMemory, NullIndex};

fn build(segment: &ManagedHeapMemory<NullIndex>) {
    segment.construct("hits", 1u64).unwrap();
}

fn main() {}
