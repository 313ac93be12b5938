//! A guard borrows its lock, which borrows its segment: it cannot outlive either.
use shmkit::sync::{Mutex, MutexGuard};
use shmkit::ManagedHeapMemory;

fn guard() -> MutexGuard<'static, u64> {
    let seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    let m = seg.construct::<Mutex<u64>>("m", Mutex::new(0)).unwrap();
    m.lock().unwrap()
}

fn main() {
    drop(guard());
}
