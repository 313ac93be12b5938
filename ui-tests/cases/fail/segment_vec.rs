use shmkit::{shm_segment, ManagedHeapMemory};

// One error, about the field: the struct and its root impl are still there for its uses.
#[shm_segment]
#[derive(Default)]
struct Db {
    users: Vec<u64>,
}

fn main() {
    let mut segment = ManagedHeapMemory::new(1 << 16).unwrap();
    let db = segment.root_mut::<Db>().unwrap();
    let _ = db.users.len();
}
