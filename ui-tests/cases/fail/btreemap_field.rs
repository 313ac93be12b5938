use shmkit::ShmSafe;

#[derive(ShmSafe)]
#[repr(C)]
struct Index {
    by_id: std::collections::BTreeMap<u32, u64>,
}

fn main() {}
