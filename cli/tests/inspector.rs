//! The `shmkit` binary on segments built here: snapshots of each command's output (names,
//! owner ids and thread ids filtered out), JSON parsed back and compared with what was
//! built, a corrupt segment and a non-shmkit file (clear messages and exit statuses, no
//! panic), and a lock holder SIGKILLed: `stat` names the dead owner, `gc` finds the
//! segment.

#![allow(missing_docs)]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use shmkit::os::{XsiKey, XsiSharedMemory};
use shmkit::prelude::*;
use shmkit::sync::Mutex;
use shmkit::{
    shm_segment, ManagedMappedFile, ManagedSharedMemory, ManagedXsiSharedMemory, OrderedIndex,
    ShmSafe,
};
use shmkit_test_support::internals::forge_entry_count;
use shmkit_test_support::{spawn_child, ShmGuard, TempPath};

mod common;
use common::write_containers;

#[derive(ShmSafe, Default)]
#[repr(C)]
pub struct Totals {
    pub orders: u64,
    pub volume: u64,
}

#[shm_segment]
#[derive(Default)]
pub struct Db {
    pub version: u32,
    pub ratio: f64,
    pub enabled: bool,
    pub initial: char,
    pub delta: i16,
    pub hits: AtomicU64,
    pub totals: Totals,
    pub recent: Mutex<Vec<u64>>,
}

/// What `shmkit ARGS` printed and its exit status.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn shmkit(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_shmkit"))
        .args(args)
        .output()
        .expect("run shmkit");
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).expect("UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8"),
    }
}

/// Fills a segment with one of each: a root (scalars, a nested struct, an atomic, a lock
/// around a container), a named scalar, a named array, a unique and an anonymous object.
fn fill<B: shmkit::segment::Backing>(seg: &shmkit::ManagedSegment<B>) {
    let db = seg.root::<Db>().expect("root");
    db.hits.store(41, Ordering::Relaxed);
    db.hits.fetch_add(1, Ordering::Relaxed);
    db.recent.lock().expect("lock").push(9).expect("push");
    seg.construct("limit", 100u32).expect("limit");
    seg.construct_array("p", 5, 7u32).expect("p");
    seg.construct_from_iter("primes", [2i64, 3, 5, 7, 11])
        .expect("primes");
    seg.construct_unique(-3i8).expect("unique");
    seg.construct_anonymous(2.5f32).expect("anonymous");
    seg.construct("flag", true).expect("flag");
}

/// A segment's data written through an exclusive mapping, so the root's plain fields can
/// be set (a shared mapping lends `&Db`).
fn build_shm(name: &str) {
    let mut seg = ManagedSharedMemory::options()
        .exclusive()
        .create(name, 1 << 20)
        .expect("create");
    {
        let mut db = seg.root_mut::<Db>().expect("root_mut");
        *db.version_mut() = 3;
        *db.ratio_mut() = 0.75;
        *db.enabled_mut() = true;
        *db.initial_mut() = 'x';
        *db.delta_mut() = -12;
        db.totals_mut().orders = 5;
    }
    let seg = seg.into_shared().expect("into_shared");
    fill(&seg);
}

fn filters(names: &[&str]) -> Vec<(String, String)> {
    let mut f: Vec<(String, String)> = names
        .iter()
        .map(|n| (regex_escape(n), "[NAME]".to_string()))
        .collect();
    f.push((r"owner \d+".into(), "owner [ID]".into()));
    f.push((r"0x7[0-9a-f]{11}".into(), "[ADDRESS]".into()));
    f.push((r#""id": \d+"#.into(), r#""id": [ID]"#.into()));
    f.push((r"owner\(s\): [\d, ()a-z]+".into(), "owner(s): [IDS]".into()));
    f
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

macro_rules! snapshot {
    ($names:expr, $value:expr) => {{
        let filters = filters($names);
        let filters: Vec<(&str, &str)> = filters
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        insta::with_settings!({ filters => filters }, {
            insta::assert_snapshot!($value);
        });
    }};
}

/// The header line of `ls` and its lines for `names`, each column separated by one space:
/// the columns' widths follow the longest name listed, which depends on what else the
/// machine has in `/dev/shm`.
fn ls_lines(stdout: &str, names: &[&str]) -> String {
    stdout
        .lines()
        .enumerate()
        .filter(|(i, l)| *i == 0 || names.iter().any(|n| l.contains(n)))
        .map(|(_, l)| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
        .collect()
}

#[test]
fn every_command_on_a_segment_at_rest() {
    let g = ShmGuard::new();
    build_shm(g.get());
    let names = [g.get()];

    let ls = shmkit(&["ls"]);
    assert_eq!(ls.code, 0, "{}", ls.stderr);
    snapshot!(&names, ls_lines(&ls.stdout, &names));

    let stat = shmkit(&["stat", g.get()]);
    assert_eq!(stat.code, 0, "{}", stat.stderr);
    snapshot!(&names, stat.stdout);

    let check = shmkit(&["check", g.get()]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    snapshot!(&names, check.stdout);

    let dump = shmkit(&["dump", g.get()]);
    assert_eq!(dump.code, 0, "{}", dump.stderr);
    snapshot!(&names, dump.stdout);

    let map = shmkit(&["map", g.get(), "--width", "48", "--lines", "4", "--runs"]);
    assert_eq!(map.code, 0, "{}", map.stderr);
    snapshot!(&names, map.stdout);

    let one = shmkit(&["dump", g.get(), "limit"]);
    assert_eq!(one.code, 0, "{}", one.stderr);
    assert_eq!(one.stdout.lines().count(), 2, "{}", one.stdout);
    assert!(one.stdout.contains("= 100"), "{}", one.stdout);
    let none = shmkit(&["dump", g.get(), "nothing"]);
    assert_eq!(none.code, 2);
    assert!(
        none.stderr.contains("no object named `nothing`"),
        "{}",
        none.stderr
    );
}

#[test]
fn json_output_parses_back_to_what_was_built() {
    let g = ShmGuard::new();
    build_shm(g.get());

    let dump = shmkit(&["dump", g.get(), "--json"]);
    assert_eq!(dump.code, 0, "{}", dump.stderr);
    let v: Value = serde_json::from_str(&dump.stdout).expect("JSON");
    let objects = v["objects"].as_array().expect("objects");
    let find = |name: &str| {
        objects
            .iter()
            .find(|o| o["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {objects:?}"))
    };
    let root = find("__shmkit_root::Db");
    assert_eq!(root["root"], "Db");
    assert_eq!(root["schema"]["name"], "Db");
    let value = &root["value"];
    assert_eq!(value["version"], 3);
    assert_eq!(value["ratio"], 0.75);
    assert_eq!(value["enabled"], true);
    assert_eq!(value["initial"], "x");
    assert_eq!(value["delta"], -12);
    assert_eq!(value["hits"], 42);
    // A nested struct from the schema its type stored; a lock is never read behind.
    assert_eq!(
        value["totals"],
        serde_json::json!({ "orders": 5, "volume": 0 })
    );
    assert_eq!(
        value["recent"],
        serde_json::json!({ "lock": null, "alive": null, "poisoned": false })
    );
    let fields: Vec<&str> = value
        .as_object()
        .expect("fields")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        ["version", "ratio", "enabled", "initial", "delta", "hits", "totals", "recent"]
    );
    assert_eq!(find("limit")["value"], 100);
    assert_eq!(find("limit")["kind"], "named");
    assert_eq!(find("p")["value"], serde_json::json!([7, 7, 7, 7, 7]));
    assert_eq!(find("primes")["value"], serde_json::json!([2, 3, 5, 7, 11]));
    assert_eq!(find("primes")["length"], 5);
    assert_eq!(find("primes")["bytes"], 40);
    assert_eq!(find("flag")["value"], true);
    let unique = objects
        .iter()
        .find(|o| o["kind"] == "unique")
        .expect("unique");
    assert_eq!(unique["value"], -3);
    let anonymous = objects
        .iter()
        .find(|o| o["kind"] == "anonymous")
        .expect("anonymous");
    assert_eq!(anonymous["value"], 2.5);

    let stat = shmkit(&["stat", g.get(), "--json"]);
    assert_eq!(stat.code, 0, "{}", stat.stderr);
    let s: Value = serde_json::from_str(&stat.stdout).expect("JSON");
    assert_eq!(s["segment"], g.get());
    assert_eq!(s["size"], 1 << 20);
    assert_eq!(s["state"], "ready");
    assert_eq!(s["index"]["kind"], "hash index");
    assert_eq!(s["index"]["anonymous"], 1);
    // limit, p, primes, flag, the root and its schema; the schemas of Db and Totals and
    // the descriptors of Mutex<Vec<u64>> and Vec<u64> are no objects
    assert_eq!(s["index"]["named"], 6);
    assert_eq!(s["index"]["type_schemas"], 4);
    assert_eq!(s["index"]["unique"], 1);
    assert_eq!(s["creator"]["alive"], false);
    assert_eq!(s["locks"]["segment_lock"], Value::Null);
    assert_eq!(s["mapped_as"], "read-only");
    let usage = &s["usage"];
    assert!(usage["free_memory"].as_u64().unwrap() < 1 << 20);
    assert!(usage["largest_free"].as_u64().unwrap() <= usage["free_memory"].as_u64().unwrap());

    let ls = shmkit(&["ls", "--json"]);
    let rows: Value = serde_json::from_str(&ls.stdout).expect("JSON");
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == g.get())
        .expect("listed");
    assert_eq!(row["kind"], "shm");
    assert_eq!(row["objects"], 8);
    assert_eq!(row["attached"], 0);
    assert_eq!(row["version"], 6);
}

/// Runs the child that writes a segment of its own types at `path`.
fn write_foreign_types(path: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_shmkit-cli-child"))
        .arg("write")
        .arg(path)
        .status()
        .expect("run the child");
    assert!(status.success());
}

/// The dump of `path` as JSON.
fn dump_value(path: &str) -> Value {
    let dump = shmkit(&["dump", path, "--json"]);
    assert_eq!(dump.code, 0, "{}", dump.stderr);
    serde_json::from_str(&dump.stdout).expect("JSON")
}

/// The dump of `path` as JSON: its objects by name (anonymous ones under "").
fn dump_json(path: &str) -> serde_json::Map<String, Value> {
    dump_value(path)["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| (o["name"].as_str().unwrap().to_string(), o.clone()))
        .collect()
}

#[test]
fn nested_structs_and_enums_of_another_program_are_read_from_their_stored_schemas() {
    // The types live in the child alone: this test and the inspector know only the bytes.
    let file = TempPath::new();
    write_foreign_types(file.get());
    let path = file.get().to_str().expect("UTF-8 path");
    let objects = dump_json(path);
    let scene = &objects["scene"];
    assert_eq!(scene["schema"]["name"], "Scene");
    assert_eq!(
        scene["value"],
        serde_json::json!({
            "id": 7,
            "shapes": [
                { "Circle": { "center": { "x": 1, "y": -2 }, "radius": 0.5 } },
                "Empty",
                { "Rect": { "0": { "x": 0, "y": 0 }, "1": { "x": 3, "y": 4 } } },
            ],
            "origin": { "x": 10, "y": 20 },
            "tag": { "Large": { "value": 99, "ok": true } },
            "flags": [true, false],
        })
    );
    assert_eq!(
        objects["points"]["value"],
        serde_json::json!([{ "x": 5, "y": 6 }, { "x": 5, "y": 6 }])
    );
    assert_eq!(
        objects["small"]["value"],
        serde_json::json!({ "Small": { "0": 3 } })
    );
    assert_eq!(objects[""]["value"], "Empty");
    // The user's objects alone; one schema per type, shared (Scene, Shape, Point, Tagged),
    // in a table of their own.
    assert!(
        objects.keys().all(|n| !n.starts_with("__shmkit_schema")),
        "{:?}",
        objects.keys()
    );
    let mut types: Vec<String> = dump_value(path)["type_schemas"]
        .as_array()
        .expect("type schemas")
        .iter()
        .map(|t| {
            t["text"]
                .as_str()
                .unwrap()
                .split('\t')
                .nth(3)
                .unwrap()
                .to_string()
        })
        .collect();
    types.sort();
    assert_eq!(types, ["Point", "Scene", "Shape", "Tagged"]);

    let dump = shmkit(&["dump", path, "scene"]);
    assert_eq!(dump.code, 0, "{}", dump.stderr);
    snapshot!(&[path], dump.stdout);
}

#[test]
fn a_forged_schema_or_tag_is_an_error_entry_never_a_panic() {
    let file = TempPath::new();
    write_foreign_types(file.get());
    let path = file.get().to_str().expect("UTF-8 path");
    let objects = dump_json(path);
    let type_schemas = dump_value(path)["type_schemas"].clone();
    let point_schema = type_schemas
        .as_array()
        .expect("type schemas")
        .iter()
        .find(|t| t["text"].as_str().unwrap().contains("\tPoint\t"))
        .expect("Point's schema");
    let schema_at = point_schema["offset"].as_u64().unwrap() as usize;
    let small_at = objects["small"]["offset"].as_u64().unwrap() as usize;
    shmkit_test_support::patch_file(file.get(), |bytes| {
        bytes[schema_at] = b'X'; // "shmkit-schema 1" no more
        bytes[small_at] = 9; // no variant of Tagged has the tag 9
    });
    let objects = dump_json(path);
    let unreadable = objects["points"]["value"][0]["invalid"]
        .as_str()
        .expect("an error entry");
    assert!(unreadable.contains("is unreadable"), "{unreadable}");
    let origin = &objects["scene"]["value"]["origin"]["invalid"];
    assert!(
        origin.as_str().unwrap().contains("is unreadable"),
        "{origin}"
    );
    // What does not hold a Point still reads.
    assert_eq!(objects["scene"]["value"]["id"], 7);
    assert_eq!(
        objects["small"]["value"]["invalid"],
        "tag 9 is no variant of Tagged"
    );
    let text = shmkit(&["dump", path]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(text
        .stdout
        .contains("<invalid: tag 9 is no variant of Tagged>"));
    assert_eq!(shmkit(&["check", path]).code, 0);
}

#[test]
fn a_live_segment_is_read_through_a_shared_mapping() {
    let g = ShmGuard::new();
    build_shm(g.get());
    // A writer stays attached: the inspector maps it read-write (warm) and takes its
    // locks briefly, and the writer goes on undisturbed.
    let seg = ManagedSharedMemory::open(g.get()).expect("open");
    let db = seg.root::<Db>().expect("root");
    let stat = shmkit(&["stat", g.get(), "--json"]);
    assert_eq!(stat.code, 0, "{}", stat.stderr);
    let s: Value = serde_json::from_str(&stat.stdout).expect("JSON");
    assert_eq!(s["mapped_as"], "read-write");
    assert!(!s["attached"]["owners"].as_array().unwrap().is_empty());
    db.hits.fetch_add(1, Ordering::Relaxed);
    let dump = shmkit(&["dump", g.get(), "Db", "--json"]);
    assert_eq!(dump.code, 0, "{}", dump.stderr);
    let v: Value = serde_json::from_str(&dump.stdout).expect("JSON");
    assert_eq!(v["objects"][0]["value"]["hits"], 43);
    assert_eq!(shmkit(&["check", g.get()]).code, 0);
    seg.construct("later", 1u8)
        .expect("the writer still writes");
    // `gc` leaves a segment alone while anyone is attached.
    let gc = shmkit(&["gc", g.get()]);
    assert!(gc.stdout.contains("no abandoned segments"), "{}", gc.stdout);
}

#[test]
fn a_corrupt_segment_and_a_foreign_file_get_clear_messages() {
    // A file segment whose array `p` claims far more elements than its block holds.
    let corrupt = TempPath::new();
    {
        let seg = ManagedMappedFile::create(corrupt.get(), 1 << 16).expect("create");
        seg.construct_array("p", 5, 7u32).expect("p");
    }
    shmkit_test_support::patch_file(corrupt.get(), |bytes| forge_entry_count(bytes, 5, 1 << 40));
    let path = corrupt.get().to_str().expect("UTF-8 path");
    let names = [path];
    let check = shmkit(&["check", path]);
    assert_eq!(check.code, 1, "{}{}", check.stdout, check.stderr);
    snapshot!(&names, check.stdout);
    let dump = shmkit(&["dump", path]);
    assert_eq!(dump.code, 1);
    assert!(dump.stderr.starts_with("shmkit: "), "{}", dump.stderr);
    assert!(!dump.stderr.contains("panicked"), "{}", dump.stderr);
    let stat = shmkit(&["stat", path]);
    assert!(!stat.stderr.contains("panicked"), "{}", stat.stderr);

    // Not a shmkit segment at all.
    let foreign = TempPath::new();
    std::fs::write(
        foreign.get(),
        "just some text, long enough to be a header? no.\n".repeat(30),
    )
    .expect("write");
    let fpath = foreign.get().to_str().expect("UTF-8 path");
    let names = [fpath];
    for cmd in ["stat", "check", "dump", "map"] {
        let r = shmkit(&[cmd, fpath]);
        assert_eq!(r.code, 1, "{cmd}: {}{}", r.stdout, r.stderr);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
        let text = format!("{}{}", r.stdout, r.stderr);
        assert!(
            text.contains("not a shmkit segment (wrong magic bytes)"),
            "{cmd}: {text}"
        );
    }
    snapshot!(&names, shmkit(&["stat", fpath]).stderr);
    // `ls` of it says so on stderr and lists nothing for it; `rm` refuses it.
    let ls = shmkit(&["ls", fpath]);
    assert_eq!(ls.code, 1);
    assert!(!ls.stdout.contains(fpath));
    let rm = shmkit(&["rm", fpath]);
    assert_eq!(rm.code, 1);
    assert!(rm.stderr.contains("(not removed)"), "{}", rm.stderr);
    assert!(Path::new(fpath).exists());

    // An empty file, a directory, a missing name.
    let empty = TempPath::new();
    std::fs::write(empty.get(), b"").expect("write");
    let r = shmkit(&["check", empty.get().to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("not a shmkit segment"), "{}", r.stdout);
    let r = shmkit(&["stat", "/tmp/"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = shmkit(&["stat", "shmkit_no_such_segment_anywhere"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no such segment"), "{}", r.stderr);
}

#[test]
fn a_killed_lock_holder_shows_as_dead_and_gc_finds_the_segment() {
    let g = ShmGuard::new();
    ManagedSharedMemory::create(g.get(), 1 << 20).expect("create");
    let mut child = spawn_child(
        env!("CARGO_BIN_EXE_shmkit-cli-child"),
        "hold",
        &[("SHMKIT_SEGMENT", g.get().to_string())],
    );
    assert_eq!(child.expect_message(Duration::from_secs(20)), "locked");
    // Alive: stat names the holder as alive, and gc leaves the segment alone.
    let live = shmkit(&["stat", g.get(), "--json", "--wait", "0.2"]);
    let s: Value = serde_json::from_str(&live.stdout).unwrap();
    assert_eq!(s["locks"]["segment_lock"]["alive"], true);
    let not_read = s["not_read"].as_str().expect("not read while held");
    assert!(not_read.contains("for more than 0.2 s"), "{not_read}");
    assert!(shmkit(&["gc", g.get()]).stdout.contains("no abandoned"));
    child.kill();

    let stat = shmkit(&["stat", g.get()]);
    assert_eq!(stat.code, 0, "{}", stat.stderr);
    assert!(
        stat.stdout.contains("segment lock held by owner") && stat.stdout.contains("(dead)"),
        "{}",
        stat.stdout
    );
    assert!(stat.stdout.contains("not read: "), "{}", stat.stdout);
    let s: Value = serde_json::from_str(&shmkit(&["stat", g.get(), "--json"]).stdout).unwrap();
    assert_eq!(s["locks"]["segment_lock"]["alive"], false);
    assert!(s["usage"].is_null());
    // Reading changed nothing: the dead holder's id is still in the lock word.
    let again: Value = serde_json::from_str(&shmkit(&["stat", g.get(), "--json"]).stdout).unwrap();
    assert_eq!(again["locks"], s["locks"]);

    let gc = shmkit(&["gc", g.get()]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    assert!(
        gc.stdout.contains(&format!("abandoned {}", g.get())),
        "{}",
        gc.stdout
    );
    let gc = shmkit(&["gc", "--yes", g.get()]);
    assert!(
        gc.stdout.contains(&format!("removed {}", g.get())),
        "{}",
        gc.stdout
    );
    assert!(!Path::new("/dev/shm").join(g.get()).exists());
}

#[test]
fn rm_removes_shmkit_segments_and_completions_are_printed() {
    let g = ShmGuard::new();
    ManagedSharedMemory::create(g.get(), 1 << 16).expect("create");
    let rm = shmkit(&["rm", g.get()]);
    assert_eq!(rm.code, 0, "{}", rm.stderr);
    assert_eq!(rm.stdout, format!("removed {}\n", g.get()));
    assert!(!Path::new("/dev/shm").join(g.get()).exists());
    let again = shmkit(&["rm", g.get()]);
    assert_eq!(again.code, 2);

    let bash = shmkit(&["completions", "bash"]);
    assert_eq!(bash.code, 0);
    assert!(bash.stdout.contains("shmkit"));
    for cmd in [
        "ls",
        "stat",
        "check",
        "dump",
        "map",
        "rm",
        "gc",
        "completions",
    ] {
        let help = shmkit(&[cmd, "--help"]);
        assert_eq!(help.code, 0, "{cmd}");
        assert!(
            help.stdout.contains("Usage: shmkit"),
            "{cmd}: {}",
            help.stdout
        );
    }
}

/// An XSI key of this test process alone (`n` tells a test's keys apart).
fn xsi_key(n: u8) -> i32 {
    0x5300_0000 | ((std::process::id() as i32 & 0xffff) << 8) | i32::from(n)
}

/// Removes XSI segment `.0` and its companion lock file when dropped, failed test or not.
struct XsiGuard(i32);

impl Drop for XsiGuard {
    fn drop(&mut self) {
        // Best effort: the segment goes first, then the companion (absent for a foreign one).
        let _ = ManagedXsiSharedMemory::remove_id(self.0);
    }
}

fn ls_rows() -> Vec<Value> {
    let ls = shmkit(&["ls", "--json"]);
    assert_eq!(ls.code, 0, "{}", ls.stderr);
    serde_json::from_str::<Value>(&ls.stdout)
        .expect("JSON")
        .as_array()
        .expect("rows")
        .clone()
}

#[test]
fn xsi_segments_are_listed_read_and_removed_and_foreign_ones_skipped() {
    let (key, foreign_key) = (xsi_key(1), xsi_key(2));
    let (name, foreign_name) = (
        format!("xsi:{:#010x}", key as u32),
        format!("xsi:{:#010x}", foreign_key as u32),
    );
    let seg = ManagedXsiSharedMemory::create(XsiKey::from_raw(key), 1 << 20).expect("create");
    let _guard = XsiGuard(
        XsiSharedMemory::open(XsiKey::from_raw(key))
            .expect("open")
            .id(),
    );
    seg.construct("limit", 7u32).expect("limit");
    // A segment made with `shmget` directly, with a file under its companion's name: the
    // header the inspector copies has no magic, so it is skipped, never misreported.
    // SAFETY: `shmget` takes integers only.
    let foreign =
        unsafe { libc::shmget(foreign_key, 4096, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
    assert!(foreign >= 0, "shmget: {}", std::io::Error::last_os_error());
    let _foreign_guard = XsiGuard(foreign);
    std::fs::write(format!("/dev/shm/shmkit-xsi-{foreign}"), b"").expect("companion");

    let rows = ls_rows();
    let row = rows
        .iter()
        .find(|r| r["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} in {rows:?}"));
    assert_eq!(row["kind"], "xsi");
    assert_eq!(row["size"], 1 << 20);
    assert_eq!(row["objects"], 1);
    assert_eq!(row["attachments"], 1);
    assert_eq!(row["creator"]["alive"], true);
    assert!(
        !rows.iter().any(|r| r["name"] == foreign_name.as_str()),
        "{rows:?}"
    );
    let text = shmkit(&["ls"]).stdout;
    assert!(
        text.contains(&name) && !text.contains(&foreign_name),
        "{text}"
    );

    // Attached here: read through a shared read-write mapping.
    let stat = shmkit(&["stat", &name, "--json"]);
    assert_eq!(stat.code, 0, "{}", stat.stderr);
    let s: Value = serde_json::from_str(&stat.stdout).expect("JSON");
    assert_eq!(s["kind"], "xsi");
    assert_eq!(s["mapped_as"], "read-write");
    assert_eq!(s["attachments"], 1);
    assert_eq!(s["index"]["load"]["named"]["objects"], 1);
    let dump = shmkit(&["dump", &name]);
    assert_eq!(dump.code, 0, "{}", dump.stderr);
    assert!(
        dump.stdout.contains("limit") && dump.stdout.contains("= 7"),
        "{}",
        dump.stdout
    );
    assert!(shmkit(&["gc", &name]).stdout.contains("no abandoned"));

    // Detached: read-only, and abandoned (creator dead, nothing attached).
    drop(seg);
    // A child another test forks meanwhile holds the attachment and the companion's locks
    // until it execs: wait for that to pass.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let s = loop {
        let s: Value = serde_json::from_str(&shmkit(&["stat", &name, "--json"]).stdout).unwrap();
        if s["mapped_as"] == "read-only" || std::time::Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(s["mapped_as"], "read-only", "{s}");
    assert_eq!(s["attachments"], 0, "{s}");
    assert_eq!(shmkit(&["check", &name]).code, 0);
    assert_eq!(shmkit(&["map", &name]).code, 0);
    let gc = shmkit(&["gc", &name]);
    assert!(
        gc.stdout.contains(&format!("abandoned {name}")),
        "{}",
        gc.stdout
    );

    // The foreign one: a clear message, exit status 1, and `rm` leaves it.
    let r = shmkit(&["stat", &foreign_name]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("not a shmkit segment (wrong magic bytes)"),
        "{}",
        r.stderr
    );
    assert_eq!(shmkit(&["rm", &foreign_name]).code, 1);
    assert!(XsiSharedMemory::stat_id(foreign).unwrap().is_some());

    let rm = shmkit(&["rm", &name]);
    assert_eq!(rm.code, 0, "{}", rm.stderr);
    assert_eq!(rm.stdout, format!("removed {name}\n"));
    let gone = shmkit(&["stat", &name]);
    assert_eq!(gone.code, 2);
    assert!(gone.stderr.contains("no such segment"), "{}", gone.stderr);
    let bad = shmkit(&["stat", "xsi:nokey"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("not an XSI key"), "{}", bad.stderr);
}

#[test]
fn map_shows_blocks_in_thread_caches_and_stat_the_index_load() {
    let g = ShmGuard::new();
    // Large enough for thread caches; blocks freed here stay in this thread's cache while
    // the mapping lives.
    let seg = ManagedSharedMemory::create(g.get(), 32 << 20).expect("create");
    let blocks: Vec<_> = (0..8)
        .map(|_| seg.allocate(48).expect("allocate"))
        .collect();
    for b in blocks {
        // SAFETY: allocated above from this segment, freed once.
        unsafe { seg.deallocate(b) }.expect("deallocate");
    }
    assert!(seg.cached_memory() > 0);
    for i in 0..20u32 {
        seg.construct(format!("n{i}").as_str(), i)
            .expect("construct");
    }
    let map = shmkit(&["map", g.get(), "--runs"]);
    assert_eq!(map.code, 0, "{}", map.stderr);
    let legend = map
        .stdout
        .lines()
        .find(|l| l.starts_with("legend:"))
        .expect("legend");
    // The frees and the bins' refills (runs of blocks taken for later) are all cached.
    assert!(legend.contains("c cached "), "{}", map.stdout);
    assert!(
        map.stdout
            .lines()
            .any(|l| l.contains(" |") && l.contains('c')),
        "{}",
        map.stdout
    );

    let s: Value = serde_json::from_str(&shmkit(&["stat", g.get(), "--json"]).stdout).unwrap();
    let named = &s["index"]["load"]["named"];
    assert_eq!(named["objects"], 20);
    let buckets = named["buckets"].as_u64().expect("a hash table");
    assert!(
        buckets.is_power_of_two() && buckets * 13 / 16 >= 20,
        "{named}"
    );
    let load = named["load_factor"].as_f64().unwrap();
    assert!((load - 20.0 / buckets as f64).abs() < 1e-3, "{named}");
    assert_eq!(s["index"]["load"]["unique"]["buckets"], 0);
    drop(seg);
    // The mapping gave its threads' blocks back: none cached now.
    let map = shmkit(&["map", g.get(), "--runs"]);
    assert_eq!(map.code, 0, "{}", map.stderr);
    assert!(!map.stdout.contains("cached"), "{}", map.stdout);

    let o = ShmGuard::new();
    let seg = ManagedSharedMemory::options()
        .index::<OrderedIndex>()
        .create(o.get(), 1 << 20)
        .expect("create");
    for i in 0..20u32 {
        seg.construct(format!("n{i}").as_str(), i)
            .expect("construct");
    }
    let stat = shmkit(&["stat", o.get()]);
    assert_eq!(stat.code, 0, "{}", stat.stderr);
    let s: Value = serde_json::from_str(&shmkit(&["stat", o.get(), "--json"]).stdout).unwrap();
    let named = &s["index"]["load"]["named"];
    assert_eq!(named["objects"], 20);
    // A treap of 20: at least ceil(log2(21)) deep, at most a chain.
    let depth = named["depth"].as_u64().expect("a tree");
    assert!((5..=20).contains(&depth), "{named}");
    assert!(
        stat.stdout
            .contains(&format!("named: 20 object(s), depth {depth}")),
        "{}",
        stat.stdout
    );
}

/// Runs `shmkit ARGS` as user and group `nobody` (65534) with `setpriv`, from a copy of
/// the binary that user may run; None (after saying why) where `setpriv` is missing.
fn shmkit_as_nobody(dir: &Path, args: &[&str]) -> Option<Run> {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(setpriv) = which("setpriv") else {
        eprintln!("skipped: setpriv is missing, so no command runs as another user");
        return None;
    };
    let bin = dir.join("shmkit");
    if !bin.exists() {
        std::fs::copy(env!("CARGO_BIN_EXE_shmkit"), &bin).expect("copy the binary");
    }
    for p in [dir, bin.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let out = Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(args)
        .output()
        .expect("run setpriv");
    Some(Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).expect("UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8"),
    })
}

/// The path of program `name` in `PATH`.
fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .ok_or(())
}

#[test]
fn a_segment_one_may_only_read_is_inspected_read_only_while_no_writer_is_attached() {
    use std::os::unix::fs::PermissionsExt as _;
    let g = ShmGuard::new();
    build_shm(g.get());
    let device = Path::new("/dev/shm").join(g.get());
    std::fs::set_permissions(&device, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let dir = shmkit_test_support::TempDir::new();
    // No writer attached: read through a read-only mapping.
    let Some(stat) = shmkit_as_nobody(dir.path(), &["stat", g.get(), "--json"]) else {
        return;
    };
    assert_eq!(stat.code, 0, "{}", stat.stderr);
    let s: Value = serde_json::from_str(&stat.stdout).expect("JSON");
    assert_eq!(s["mapped_as"], "read-only");
    let dump = shmkit_as_nobody(dir.path(), &["dump", g.get(), "limit"]).expect("setpriv");
    assert_eq!(dump.code, 0, "{}", dump.stderr);
    assert!(dump.stdout.contains("= 100"), "{}", dump.stdout);

    // A writer attached: a read-only mapping would keep it out, so a clear message.
    let seg = ManagedSharedMemory::open(g.get()).expect("open");
    seg.construct("later", 1u8).expect("the writer writes");
    for cmd in ["stat", "dump"] {
        let r = shmkit_as_nobody(dir.path(), &[cmd, g.get()]).expect("setpriv");
        let text = format!("{}{}", r.stdout, r.stderr);
        assert!(
            text.contains("cannot be inspected now") && text.contains("without write permission"),
            "{cmd}: {text}"
        );
        assert!(!text.contains("panicked"), "{cmd}: {text}");
        if cmd == "dump" {
            assert_eq!(r.code, 2, "{text}");
        }
    }
    // The writer goes on undisturbed.
    seg.construct("after", 2u8)
        .expect("the writer still writes");
}

#[test]
fn containers_of_another_program_are_read_from_their_descriptors() {
    // The types live in the child alone: the inspector reads the containers from the
    // descriptors their types stored.
    let file = TempPath::new();
    write_containers(file.get());
    let path = file.get().to_str().expect("UTF-8 path");
    let objects = dump_json(path);
    let inventory = &objects["inventory"]["value"];
    assert_eq!(inventory["ids"], serde_json::json!([3, 1, 4, 1, 5]));
    assert_eq!(inventory["label"], "crème brûlée");
    assert_eq!(
        inventory["route"],
        serde_json::json!([{ "x": 1, "y": 2 }, { "x": 3, "y": 4 }, { "x": 5, "y": 6 }])
    );
    // A sorted map in key order, as [key, value] pairs.
    assert_eq!(
        inventory["prices"],
        serde_json::json!([[10, -10], [20, -20], [30, -30]])
    );
    // A hash map in bucket order: compared as a set.
    let mut stock: Vec<(String, u64)> = inventory["stock"]
        .as_array()
        .expect("pairs")
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_u64().unwrap()))
        .collect();
    stock.sort();
    assert_eq!(stock, [("apples".into(), 7), ("pears".into(), 0)]);
    // A lock: its holder, never its value.
    assert_eq!(
        inventory["recent"],
        serde_json::json!({ "lock": null, "alive": null, "poisoned": false })
    );

    let dump = shmkit(&["dump", path, "inventory"]);
    assert_eq!(dump.code, 0, "{}", dump.stderr);
    snapshot!(&[path], dump.stdout);
}

/// Reads the `i64` at `at` in `bytes`.
fn i64_at(bytes: &[u8], at: usize) -> i64 {
    i64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap())
}

#[test]
fn forged_containers_are_error_entries_never_a_crash() {
    let file = TempPath::new();
    write_containers(file.get());
    let path = file.get().to_str().expect("UTF-8 path");
    let objects = dump_json(path);
    let inv = objects["inventory"]["offset"].as_u64().unwrap() as usize;
    let field = |name: &str| {
        let fields = objects["inventory"]["schema"]["fields"].as_array().unwrap();
        let f = fields.iter().find(|f| f["name"] == name).expect(name);
        inv + f["offset"].as_u64().unwrap() as usize
    };
    let (ids, label, route, stock) = (field("ids"), field("label"), field("route"), field("stock"));
    shmkit_test_support::patch_file(file.get(), |bytes| {
        // A length past the segment.
        bytes[ids + 8..ids + 16].copy_from_slice(&(1u64 << 40).to_ne_bytes());
        // A pointer out of bounds.
        bytes[label..label + 8].copy_from_slice(&(1i64 << 40).to_ne_bytes());
        // The first node of the list linked to itself: a cycle.
        let first = (route as i64 + i64_at(bytes, route)) as usize;
        bytes[first + 8..first + 16].copy_from_slice(&(-8i64).to_ne_bytes());
        // A hash table's mask past the segment.
        let table = (stock as i64 + i64_at(bytes, stock)) as usize;
        bytes[table + 8..table + 16].copy_from_slice(&((1u64 << 40) - 1).to_ne_bytes());
    });
    let objects = dump_json(path);
    let value = &objects["inventory"]["value"];
    let invalid = |name: &str| value[name]["invalid"].as_str().expect(name).to_string();
    assert!(
        invalid("ids").contains("outside the segment"),
        "{}",
        invalid("ids")
    );
    assert!(
        invalid("label").contains("outside the segment"),
        "{}",
        invalid("label")
    );
    assert!(invalid("route").contains("a cycle"), "{}", invalid("route"));
    assert!(
        invalid("stock").contains("outside the segment"),
        "{}",
        invalid("stock")
    );
    // What is not forged still reads.
    assert_eq!(
        value["prices"],
        serde_json::json!([[10, -10], [20, -20], [30, -30]])
    );
    let text = shmkit(&["dump", path]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout
            .contains("<invalid: container List: node 1 at offset"),
        "{}",
        text.stdout
    );

    // A B-tree root claiming to be 40 levels high (a walk 40 deep): refused. Where a
    // node's level is comes from the map's stored descriptor.
    let schemas = dump_value(path)["type_schemas"].clone();
    let descriptor = schemas
        .as_array()
        .expect("type schemas")
        .iter()
        .filter_map(|t| t["text"].as_str())
        .find(|text| text.starts_with("shmkit-schema 1\tcontainer\tbtree\tMap\t"))
        .expect("Map's descriptor");
    let level_at: usize = descriptor
        .lines()
        .find_map(|l| l.strip_prefix("field\tnode.level\t"))
        .and_then(|rest| rest.split('\t').next()?.parse().ok())
        .expect("node.level's offset");
    let prices = field("prices");
    shmkit_test_support::patch_file(file.get(), |bytes| {
        let root = (prices as i64 + i64_at(bytes, prices)) as usize;
        bytes[root + level_at..root + level_at + 2].copy_from_slice(&40u16.to_ne_bytes());
    });
    let objects = dump_json(path);
    let prices = objects["inventory"]["value"]["prices"]["invalid"]
        .as_str()
        .expect("an error entry");
    assert!(prices.contains("not where its parent says"), "{prices}");
}

/// What the child's role `hold-mutex` locks (it declares the same type).
#[derive(ShmSafe, Default)]
#[repr(C)]
pub struct Guarded {
    pub count: Mutex<u32>,
}

#[test]
fn a_mutex_held_by_a_killed_child_shows_its_dead_holder_in_stat() {
    let g = ShmGuard::new();
    {
        let seg = ManagedSharedMemory::create(g.get(), 1 << 20).expect("create");
        seg.construct("guard", Guarded::default()).expect("guard");
    }
    let stat = shmkit(&["stat", g.get()]);
    let free = "user lock  guard.count free";
    assert!(stat.stdout.contains(free), "{}", stat.stdout);
    let mut child = spawn_child(
        env!("CARGO_BIN_EXE_shmkit-cli-child"),
        "hold-mutex",
        &[("SHMKIT_SEGMENT", g.get().to_string())],
    );
    assert_eq!(child.expect_message(Duration::from_secs(20)), "locked");
    let s: Value = serde_json::from_str(&shmkit(&["stat", g.get(), "--json"]).stdout).unwrap();
    assert_eq!(s["user_locks"][0]["path"], "guard.count");
    assert_eq!(s["user_locks"][0]["holder"]["alive"], true);
    child.kill();

    let stat = shmkit(&["stat", g.get()]);
    assert_eq!(stat.code, 0, "{}", stat.stderr);
    let held = "user lock  guard.count held by owner";
    assert!(
        stat.stdout.contains(held) && stat.stdout.contains("(dead)"),
        "{}",
        stat.stdout
    );
    let s: Value = serde_json::from_str(&shmkit(&["stat", g.get(), "--json"]).stdout).unwrap();
    let holder = &s["user_locks"][0]["holder"];
    assert_eq!(holder["alive"], false);
    assert!(holder["id"].as_u64().is_some());
    // dump shows the same lock, its value unread.
    let dump = dump_json(g.get());
    let count = &dump["guard"]["value"]["count"];
    assert_eq!(count["alive"], false);
    assert_eq!(count["lock"], holder["id"]);
}

#[test]
fn segments_of_every_algorithm_are_read_and_an_unknown_one_is_named() {
    use shmkit::algorithm::SeqFit;
    let file = TempPath::new();
    {
        let seg = ManagedMappedFile::options()
            .algorithm::<SeqFit>()
            .create(file.get(), 1 << 16)
            .expect("create");
        seg.construct("answer", 42u64).expect("answer");
        seg.construct_array("p", 5, 7u32).expect("p");
    }
    let path = file.get().to_str().expect("UTF-8 path");
    let stat = shmkit(&["stat", path]);
    assert_eq!(stat.code, 0, "{}{}", stat.stdout, stat.stderr);
    assert!(
        stat.stdout
            .contains("allocator  seqfit, 0 levels, 1 size classes"),
        "{}",
        stat.stdout
    );
    let check = shmkit(&["check", path]);
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    let dump = shmkit(&["dump", "--json", path]);
    assert_eq!(dump.code, 0, "{}", dump.stderr);
    assert!(dump.stdout.contains("42"), "{}", dump.stdout);
    let map = shmkit(&["map", path]);
    assert_eq!(map.code, 0, "{}", map.stderr);
    let json = shmkit(&["stat", "--json", path]);
    let v: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(v["algorithm"], "seqfit");

    // A kind this build does not know (a user's algorithm): the header is read, the rest
    // is refused with the kind named.
    shmkit_test_support::patch_file(file.get(), |bytes| {
        shmkit_test_support::internals::forge_algorithm_kind(bytes, 0xB0B0)
    });
    let stat = shmkit(&["stat", path]);
    assert!(!stat.stderr.contains("panicked"), "{}", stat.stderr);
    let text = format!("{}{}", stat.stdout, stat.stderr);
    assert!(text.contains("memory algorithm of kind 0xb0b0"), "{text}");
    let check = shmkit(&["check", path]);
    assert_eq!(check.code, 1, "{}{}", check.stdout, check.stderr);
    assert!(
        format!("{}{}", check.stdout, check.stderr).contains("which this inspector does not know"),
        "{}{}",
        check.stdout,
        check.stderr
    );
}
