//! `shmkit-db-child`: the receiving process of `tests/database_queue.rs`. Receives segment
//! images from the queue `SHMKIT_NAME` until the queue has been empty for 10 s, opens each
//! read-only and prints one line per image: the database's summary, or the error.

use std::time::Duration;

use shmkit::containers::{Map, String, Vec};
use shmkit::{ManagedExternalBuffer, NamedMessageQueue};

type Db = Map<String, Vec<u64>>;

fn main() {
    let name = std::env::var("SHMKIT_NAME").expect("the child needs $SHMKIT_NAME");
    let count: usize = std::env::var("SHMKIT_COUNT")
        .ok()
        .and_then(|c| c.parse().ok())
        .expect("the child needs $SHMKIT_COUNT");
    let queue = NamedMessageQueue::open(&name).expect("open the queue");
    println!("ready");
    for _ in 0..count {
        println!("{}", summary(&queue));
    }
}

/// `<entries> <sum of every value> <bytes>` of the next image's database, or `error: …`.
fn summary(queue: &NamedMessageQueue) -> std::string::String {
    let summarise = || -> shmkit::Result<std::string::String> {
        let image = queue.receive_image(Duration::from_secs(10))?;
        let segment = ManagedExternalBuffer::options().read_only().open(&image)?;
        let db = segment
            .find::<Db>("db")?
            .ok_or_else(|| shmkit::Error::NotFound { what: "db".into() })?;
        let sum: u64 = db
            .iter()
            .map(|(k, v)| k.len() as u64 + v.iter().sum::<u64>())
            .sum();
        Ok(format!("{} {sum} {}", db.len(), image.len()))
    };
    summarise().unwrap_or_else(|e| format!("error: {e}"))
}
