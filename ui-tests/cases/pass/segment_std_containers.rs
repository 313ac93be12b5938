//! `#[shm_segment]` rewrites std containers in field position into the segment ones:
//! `String`, `Vec`, `Box`, `HashMap`, `HashSet`, `Arc`, nested.
use shmkit::prelude::*;
use shmkit::{shm_segment, ManagedHeapMemory};

#[shm_segment]
#[derive(Default)]
struct Db {
    title: String,
    tags: HashSet<String>,
    by_name: HashMap<String, Vec<String>>,
    note: Box<String>,
    shared: std::sync::Arc<String>,
}

fn main() {
    let mut segment = ManagedHeapMemory::new(1 << 16).unwrap();
    {
        let mut db = segment.root_mut::<Db>().unwrap();
        db.title_mut().push_str("inventory").unwrap();
        db.tags_mut().insert("new").unwrap();
        db.by_name_mut()
            .insert_with("fruit", ["apple", "pear"], |_| ())
            .unwrap();
        db.note_mut().insert("kept in a box").unwrap();
        db.shared_mut().insert("shared").unwrap();
    }
    let db = segment.root::<Db>().unwrap();
    assert_eq!(db.title, "inventory");
    assert!(db.tags.contains("new"));
    assert_eq!(db.by_name["fruit"][1], "pear");
    assert_eq!(db.note.get().map(|s| s.as_str()), Some("kept in a box"));
    assert_eq!(db.shared.get().map(|s| s.as_str()), Some("shared"));
}
