//! A segment `Vec`'s elements must be able to live in a segment themselves.
use shmkit::containers::Vec;
use shmkit::ManagedHeapMemory;

struct Local(u64);

fn main() {
    let seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("names", Vec::<std::string::String>::new()).unwrap();
    seg.construct("locals", Vec::<Local>::new()).unwrap();
}
