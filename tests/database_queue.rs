//! Boost's "database through a message queue" between two real processes: a
//! `Map<String, Vec<u64>>` built in a heap segment is sent as an image through a named
//! queue and queried by the receiver, which opens it read-only. Then a broken image (cut
//! short) and an image that holds no database: clear errors in the receiver, which goes on.

use std::time::Duration;

use shmkit::containers::{Map, MapExt, String, Vec, VecExt};
use shmkit::{ManagedHeapMemory, NamedMessageQueue};
use shmkit_test_support::{spawn_child, ShmGuard};

type Db = Map<String, Vec<u64>>;

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn a_database_goes_through_a_queue_and_is_queried_on_the_other_side() {
    let mut heap = ManagedHeapMemory::new(256 * 1024).unwrap();
    heap.construct("db", Db::new()).unwrap();
    let mut want_sum = 0u64;
    {
        let mut db = heap.find_mut::<Db>("db").unwrap().unwrap();
        for i in 0..500u64 {
            let key = format!("key-{i}");
            want_sum += key.len() as u64;
            let mut row = db.entry(&*key).unwrap().or_default().unwrap();
            for k in 0..i % 7 {
                row.push(i * k).unwrap();
                want_sum += i * k;
            }
        }
    }
    let name = ShmGuard::new();
    // Chunks smaller than the image, so that it takes many messages.
    let queue = NamedMessageQueue::create(name.get(), 3, 4096).unwrap();
    let mut child = spawn_child(
        env!("CARGO_BIN_EXE_shmkit-db-child"),
        "receive",
        &[
            ("SHMKIT_NAME", name.0.clone()),
            ("SHMKIT_COUNT", "3".into()),
        ],
    );
    assert_eq!(child.expect_message(LIMIT), "ready");

    queue.send_image(heap.image(), 0).unwrap();
    let size = heap.size();
    assert_eq!(
        child.expect_message(LIMIT),
        format!("500 {want_sum} {size}")
    );

    // Cut short: the receiver's open says so.
    let image = shmkit::AlignedBuffer::from_image(heap.image());
    let mut short = image.clone();
    short.truncate(size / 2);
    queue.send_image(&short, 0).unwrap();
    let line = child.expect_message(LIMIT);
    assert!(
        line.starts_with("error: ") && line.contains("runcated"),
        "{line}"
    );

    // A segment without the database: not found, nothing else.
    let mut empty = ManagedHeapMemory::new(16 * 1024).unwrap();
    queue.send_image(empty.image(), 0).unwrap();
    assert_eq!(child.expect_message(LIMIT), "error: db: not found");
    child.assert_success(LIMIT);
}
