//! A guard names the thread that took its lock: it cannot be released from another.
use shmkit::sync::Mutex;

static M: Mutex<u64> = Mutex::new(0);

fn main() {
    let guard = M.lock().unwrap();
    std::thread::spawn(move || drop(guard));
}
