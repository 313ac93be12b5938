//! Two programs that share a segment file and disagree on its schema: the second gets a
//! `SchemaMismatch`, never a misread value.
//!
//! The "two programs" are this test binary run three times as child processes, each child
//! using one of two definitions of the root `Db` compiled into the binary: `v1::Db` and
//! `v2::Db` both declare the root name `"inventory"` (the root name, not the Rust path, is
//! what identifies a root in a segment, so this is exactly the situation of two separately
//! built programs). The children do not share memory other than through the file.

use std::path::{Path, PathBuf};
use std::process::Command;

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

const ROLE: &str = "SHMKIT_SCHEMA_TEST_ROLE";
const FILE: &str = "SHMKIT_SCHEMA_TEST_FILE";
const TEST: &str = "two_programs_disagreeing_on_the_schema";

/// What one child program does.
fn child(role: &str, path: &Path) {
    match role {
        "create-v1" => {
            use v1::DbFields as _; // the accessors #[shm_segment] generates
            let mut seg = ManagedMappedFile::create(path, 1 << 16).unwrap();
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
        other => panic!("unknown role {other}"),
    }
}

fn run(role: &str, path: &Path) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(FILE, path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child {role} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn two_programs_disagreeing_on_the_schema() {
    if let (Ok(role), Ok(file)) = (std::env::var(ROLE), std::env::var(FILE)) {
        child(&role, Path::new(&file));
        return;
    }
    let path = std::env::temp_dir().join(format!("shmkit_schema_{}.seg", std::process::id()));
    let _cleanup = RemoveOnDrop(path.clone());
    assert!(run("create-v1", &path).contains("v1 wrote items = 41"));
    let refused = run("open-v2", &path);
    assert!(
        refused.contains("v2 refused: segment root `inventory`"),
        "{refused}"
    );
    for line in [
        "added: owner: u64",
        "removed: last_id: u32",
        "retyped: items: was u64",
        "moved: flags: [u8; 4] was at offset 12, now at offset 0",
    ] {
        assert!(refused.contains(line), "missing {line:?} in:\n{refused}");
    }
    assert!(run("open-v1", &path).contains("v1 still reads items = 41"));
}
