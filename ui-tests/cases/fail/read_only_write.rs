use shmkit::{ManagedMappedFile, ReadOnly};

fn write(segment: &ManagedMappedFile<ReadOnly>) {
    segment.construct("hits", 1u64).unwrap();
}

fn main() {}
