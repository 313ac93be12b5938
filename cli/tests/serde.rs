//! serde `Serialize` (the facade's `serde` feature, which this crate turns on) for derived
//! types, the containers and the locks: `serde_json::to_string(&*db)` in a program.

#![allow(missing_docs)]

use std::sync::atomic::AtomicU32;

use serde_json::json;
use shmkit::prelude::*;
use shmkit::sync::{Mutex, RwLock};
use shmkit::{shm_segment, ManagedHeapMemory, OffsetPtr, ShmSafe};

#[derive(ShmSafe, Default, Clone, Copy)]
#[repr(C)]
pub struct Point {
    pub x: i32,
    pub y: i32,
}

#[derive(ShmSafe, Clone, Copy)]
#[repr(u8)]
pub enum Shape {
    Empty,
    Dot(Point),
    Line { from: Point, to: Point },
}

#[derive(ShmSafe)]
#[repr(C)]
pub struct Pair(pub u8, pub bool);

#[shm_segment]
#[derive(Default)]
pub struct Db {
    pub hits: AtomicU32,
    pub origin: Point,
    pub name: String,
    pub tags: Vec<String>,
    pub by_name: BTreeMap<String, Vec<u64>>,
    pub counts: HashMap<u32, u32>,
    pub queue: Mutex<Vec<Point>>,
    pub table: RwLock<u64>,
    pub boxed: Box<u64>,
    pub head: *const u64,
}

#[test]
fn derived_types_containers_and_locks_serialize_as_their_std_counterparts() {
    let mut seg = ManagedHeapMemory::new(1 << 20).expect("heap segment");
    {
        let mut db = seg.root_mut::<Db>().expect("root");
        *db.origin_mut().x_mut() = 3;
        db.name_mut().push_str("main").expect("name");
        db.tags_mut().push("a").expect("tag");
        db.tags_mut().push("b").expect("tag");
        db.by_name_mut()
            .entry("k")
            .expect("entry")
            .or_default()
            .expect("default")
            .push(7)
            .expect("push");
        db.counts_mut().insert(1, 2).expect("insert");
    }
    let db = seg.root::<Db>().expect("root");
    *db.table.write().expect("write") = 9;
    db.queue
        .lock()
        .expect("lock")
        .push(Point { x: 1, y: 2 })
        .expect("push");
    let value: serde_json::Value = serde_json::to_value(db).expect("serialize");
    assert_eq!(
        value,
        json!({
            "hits": 0,
            "origin": {"x": 3, "y": 0},
            "name": "main",
            "tags": ["a", "b"],
            "by_name": {"k": [7]},
            "counts": {"1": 2},
            "queue": [{"x": 1, "y": 2}],
            "table": 9,
            "boxed": null,
            // An offset pointer's target is not followed: said, not guessed.
            "head": {"opaque": std::any::type_name::<OffsetPtr<u64>>(), "size": 8},
        })
    );
    assert!(serde_json::to_string(db)
        .expect("to_string")
        .starts_with("{\"hits\":0,"));
}

#[test]
fn enums_and_tuple_structs_serialize_by_variant_and_position() {
    let p = Point { x: 1, y: -1 };
    assert_eq!(serde_json::to_value(Shape::Empty).unwrap(), json!("Empty"));
    assert_eq!(
        serde_json::to_value(Shape::Dot(p)).unwrap(),
        json!({"Dot": {"0": {"x": 1, "y": -1}}})
    );
    assert_eq!(
        serde_json::to_value(Shape::Line { from: p, to: p }).unwrap(),
        json!({"Line": {"from": {"x": 1, "y": -1}, "to": {"x": 1, "y": -1}}})
    );
    assert_eq!(
        serde_json::to_value(Pair(4, true)).unwrap(),
        json!({"0": 4, "1": true})
    );
}
