use shmkit::ManagedMappedFile;

fn clear(segment: &mut ManagedMappedFile) {
    let table = segment.find_slice_mut::<u32>("table").unwrap().unwrap();
    table.get_mut_slice().fill(0);
}

fn main() {}
