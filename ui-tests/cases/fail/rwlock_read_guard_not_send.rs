//! A read guard names the thread that took its read lock: it cannot be released from
//! another.
use shmkit::sync::RwLock;

static L: RwLock<u64> = RwLock::new(0);

fn main() {
    let guard = L.read().unwrap();
    std::thread::spawn(move || drop(guard));
}
