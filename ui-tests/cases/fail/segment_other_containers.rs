use shmkit::shm_segment;

#[shm_segment]
#[derive(Default)]
struct Db {
    // Bare or std-qualified: both are the std types.
    by_id: HashMap<u32, u64>,
    ordered: std::collections::BTreeMap<u32, u64>,
    queue: LinkedList<u64>,
    boxed: Box<u64>,
}

fn main() {}
