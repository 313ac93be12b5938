//! The other process of the inspector's tests (see `shmkit_test_support::spawn_child`):
//! role `hold` opens the shared memory segment named in `SHMKIT_SEGMENT`, takes its
//! segment lock, says `locked` and waits there until it is killed.

use std::io::Write as _;

fn main() {
    let role = std::env::args().nth(1).unwrap_or_default();
    assert_eq!(role, "hold", "unknown role `{role}`");
    let name = std::env::var("SHMKIT_SEGMENT").expect("SHMKIT_SEGMENT names the segment");
    let segment = shmkit::ManagedSharedMemory::open(name.as_str()).expect("open the segment");
    segment
        .with_lock(|| {
            println!("locked");
            std::io::stdout().flush().expect("stdout");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        })
        .expect("take the segment lock");
}
