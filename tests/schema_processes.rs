//! Two programs that share a segment file and disagree on its schema: the second gets a
//! `SchemaMismatch`, never a misread value. And a program killed while constructing an
//! object, after it stored its type's schema with another: the segment opens and checks
//! clean.
//!
//! The "two programs" are the helper binary `shmkit-schema-child` (`tests/bin/`) run three
//! times, each time as one of two definitions of the root `Db`. The children do not share
//! memory other than through the file.

use std::path::Path;
use std::time::Duration;

use shmkit_test_support::{spawn_child, TempDir};

/// Runs the child program `role` on the segment file `path` and returns what it printed.
fn run(role: &str, path: &Path) -> String {
    let mut child = spawn_child(
        env!("CARGO_BIN_EXE_shmkit-schema-child"),
        role,
        &[("SHMKIT_SCHEMA_FILE", path.to_str().unwrap().to_owned())],
    );
    child.assert_success(Duration::from_secs(20));
    child.transcript.join("\n")
}

#[test]
fn two_programs_disagreeing_on_the_schema() {
    let dir = TempDir::new();
    let path = dir.join("schema.seg");
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

#[test]
fn a_program_killed_while_constructing_leaves_its_type_schema_whole_and_the_segment_sound() {
    let dir = TempDir::new();
    let path = dir.join("schema.seg");
    shmkit::ManagedMappedFile::create(path.as_path(), 1 << 16).unwrap();
    let mut child = spawn_child(
        env!("CARGO_BIN_EXE_shmkit-schema-child"),
        "die-constructing",
        &[("SHMKIT_SCHEMA_FILE", path.to_str().unwrap().to_owned())],
    );
    assert_eq!(child.expect_message(Duration::from_secs(20)), "building");
    assert!(!child.kill().success());

    // The next opener takes the dead child's index lock over and repairs: the half-built
    // object is gone, the schema the child stored with the first one is whole.
    let seg = shmkit::ManagedMappedFile::open(path.as_path()).unwrap();
    seg.check().unwrap();
    let names: Vec<String> = seg.named_objects().unwrap().map(|o| o.name).collect();
    assert_eq!(names, ["whole"]);
    let schemas = shmkit::inspect::type_schemas(&seg).unwrap();
    assert_eq!(schemas.len(), 1, "{schemas:?}");
    let text = std::str::from_utf8(&schemas[0].bytes).unwrap();
    assert!(
        text.starts_with("shmkit-schema 1\tstruct\t-\tDb\t"),
        "{text}"
    );
    assert!(text.ends_with("[u8; 4]\n"), "{text}");
    seg.construct("after", 1u64).unwrap();
}
