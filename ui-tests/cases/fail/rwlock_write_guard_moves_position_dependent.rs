//! Position-dependent data (here an offset pointer) cannot be moved out of a write guard:
//! it derefs mutably only to plain data.
use shmkit::sync::RwLock;
use shmkit::{ManagedHeapMemory, OffsetPtr};

fn main() {
    let seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    let l = seg
        .construct::<RwLock<OffsetPtr<u64>>>("l", RwLock::new(OffsetPtr::null()))
        .unwrap();
    let guard = l.write().unwrap();
    let moved = std::mem::replace(&mut *guard, OffsetPtr::null());
    drop(moved);
}
