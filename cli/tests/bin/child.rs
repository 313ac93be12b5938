//! The other process of the inspector's tests (see `shmkit_test_support::spawn_child`):
//! role `hold` opens the shared memory segment named in `SHMKIT_SEGMENT`, takes its
//! segment lock, says `locked` and waits there until it is killed; role `cache` opens it,
//! constructs and destroys small objects (their blocks stay in this thread's cache in a
//! segment of 16 MiB or more), says `cached` and waits to be killed.

use std::io::Write as _;

fn main() {
    let role = std::env::args().nth(1).unwrap_or_default();
    let name = std::env::var("SHMKIT_SEGMENT").expect("SHMKIT_SEGMENT names the segment");
    match role.as_str() {
        "hold" => hold(&name),
        "cache" => cache(&name),
        _ => panic!("unknown role `{role}`"),
    }
}

fn hold(name: &str) {
    let segment = shmkit::ManagedSharedMemory::open(name).expect("open the segment");
    segment
        .with_lock(|| {
            say("locked");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        })
        .expect("take the segment lock");
}

fn cache(name: &str) {
    let mut segment = shmkit::ManagedSharedMemory::open(name).expect("open the segment");
    for i in 0..64u64 {
        segment
            .construct(format!("t{i}").as_str(), i)
            .expect("construct");
    }
    for i in 0..64u64 {
        segment
            .destroy::<u64>(format!("t{i}").as_str())
            .expect("destroy");
    }
    say("cached");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

fn say(what: &str) {
    println!("{what}");
    std::io::stdout().flush().expect("stdout");
}
