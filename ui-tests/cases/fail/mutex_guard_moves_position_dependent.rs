//! Position-dependent data (here an offset pointer) cannot be moved out of a guard: the guard
//! derefs mutably only to plain data.
use shmkit::sync::Mutex;
use shmkit::{ManagedHeapMemory, OffsetPtr};

fn main() {
    let seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    let m = seg
        .construct::<Mutex<OffsetPtr<u64>>>("m", Mutex::new(OffsetPtr::null()))
        .unwrap();
    let guard = m.lock().unwrap();
    let moved = std::mem::replace(&mut *guard, OffsetPtr::null());
    drop(moved);
}
