use shmkit::ManagedSharedMemory;

// Another mapping or process may read the counter meanwhile: no `&mut` through a shared
// mapping.
fn bump(segment: &mut ManagedSharedMemory) {
    *segment.find_mut::<u64>("counter").unwrap().unwrap().get_mut() += 1;
}

fn main() {}
