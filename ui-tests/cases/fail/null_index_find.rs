use shmkit::{ManagedHeapMemory, NullIndex};

fn lookup(segment: &ManagedHeapMemory<NullIndex>) {
    let _ = segment.find::<u64>("hits");
}

fn main() {}
