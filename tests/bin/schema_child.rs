//! `shmkit-schema-child`: the programs of the facade test `tests/schema_processes.rs`. Two
//! definitions of the root `Db` are compiled in, `v1::Db` and `v2::Db`, both declaring the
//! root name `"inventory"` (the root name, not the Rust path, identifies a root in a
//! segment, so this is exactly the situation of two separately built programs). The first
//! argument says which program to be, `SHMKIT_SCHEMA_FILE` which segment file to use;
//! what it finds goes to stdout.

use std::path::Path;

use shmkit::{Error, ManagedMappedFile};

mod v1 {
    #[shmkit::shm_segment(name = "inventory")]
    #[derive(Default)]
    pub struct Db {
        pub items: u64,
        pub last_id: u32,
        pub flags: [u8; 4],
    }
}

mod v2 {
    /// Another program's idea of the same root: `items` retyped, `last_id` removed,
    /// `flags` moved, `owner` added.
    #[shmkit::shm_segment(name = "inventory")]
    #[derive(Default)]
    pub struct Db {
        pub flags: [u8; 4],
        pub items: u32,
        pub owner: u64,
    }
}

/// What one child program does.
fn child(role: &str, path: &Path) {
    match role {
        "create-v1" => {
            use v1::DbFields as _; // the accessors #[shm_segment] generates
            let mut seg = ManagedMappedFile::options()
                .exclusive()
                .create(path, 1 << 16)
                .unwrap();
            let mut db = seg.root_mut::<v1::Db>().unwrap();
            *db.items_mut() = 41;
            *db.last_id_mut() = 7;
            seg.flush().unwrap();
            println!("v1 wrote items = 41");
        }
        "open-v2" => {
            let seg = ManagedMappedFile::open(path).unwrap();
            match seg.root::<v2::Db>() {
                Err(e @ Error::SchemaMismatch { .. }) => println!("v2 refused: {e}"),
                Err(e) => panic!("v2 expected SchemaMismatch, got {e}"),
                Ok(db) => panic!("v2 read a root of another layout: items = {}", db.items),
            }
            match seg.find_root::<v2::Db>() {
                Err(Error::SchemaMismatch { .. }) => {}
                other => panic!(
                    "find_root: expected SchemaMismatch, got {:?}",
                    other.is_ok()
                ),
            }
        }
        "open-v1" => {
            let seg = ManagedMappedFile::open(path).unwrap();
            let db = seg.root::<v1::Db>().unwrap();
            assert_eq!((db.items, db.last_id), (41, 7));
            println!("v1 still reads items = {}", db.items);
        }
        "die-constructing" => {
            // Builds a `Db` (which stores the schemas of its type after it), then is
            // killed while building another.
            let seg = ManagedMappedFile::open(path).unwrap();
            seg.construct("whole", v1::Db::default()).unwrap();
            seg.find_or_construct::<v1::Db>("half", || {
                println!("building");
                std::io::Write::flush(&mut std::io::stdout()).unwrap();
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            })
            .unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

fn main() {
    let role = std::env::args()
        .nth(1)
        .expect("usage: shmkit-schema-child create-v1|open-v2|open-v1|die-constructing");
    let file = std::env::var("SHMKIT_SCHEMA_FILE").expect("the child needs $SHMKIT_SCHEMA_FILE");
    child(&role, Path::new(&file));
}
