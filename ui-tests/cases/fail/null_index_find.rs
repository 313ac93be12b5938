use shmkit::{BasicManagedHeapMemory, NullIndex};

fn lookup(segment: &BasicManagedHeapMemory<NullIndex>) {
    let _ = segment.find::<u64>("hits");
}

fn main() {}
