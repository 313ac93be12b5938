//! `#[shm_segment]` rewrites `BTreeMap`, `BTreeSet`, `LinkedList` and `VecDeque` fields
//! (bare or std-qualified) into the segment `Map`, `Set`, `List` and `Deque`.
use shmkit::prelude::*;
use shmkit::{shm_segment, ManagedHeapMemory};

#[shm_segment]
#[derive(Default)]
struct Db {
    by_id: std::collections::BTreeMap<u32, String>,
    seen: BTreeSet<u64>,
    queue: LinkedList<u64>,
    recent: VecDeque<u64>,
}

fn main() {
    let mut segment = ManagedHeapMemory::new(1 << 16).unwrap();
    {
        let mut db = segment.root_mut::<Db>().unwrap();
        db.by_id_mut().insert_with(7, "seven", |_| ()).unwrap();
        db.seen_mut().insert(3).unwrap();
        db.queue_mut().push_back(1).unwrap();
        db.recent_mut().push_front(2).unwrap();
    }
    let db = segment.root::<Db>().unwrap();
    assert_eq!(db.by_id.get(&7).map(|s| s.as_str()), Some("seven"));
    assert!(db.seen.contains(&3));
    assert_eq!(db.queue.front(), Some(&1));
    assert_eq!(db.recent.front(), Some(&2));
}
