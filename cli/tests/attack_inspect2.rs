//! Attacks on the inspector's newest parts: the type schemas' table, container and lock
//! rendering from stored descriptors, XSI targets. Every run of the binary is bounded by
//! `timeout` (and its address space by `prlimit`): a panic (101), a signal, a hang or a
//! status other than 0, 1 or 2 fails the probe.

#![allow(missing_docs)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use shmkit_test_support::TempPath;

/// What one run of `shmkit ARGS` did.
#[derive(Debug)]
struct Run {
    /// `timeout`'s exit status: the binary's own, 124 on a timeout, 128+N on signal N.
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    #[track_caller]
    fn sane(&self, what: &str) {
        assert!(
            matches!(self.code, 0..=2) && !self.stderr.contains("panicked"),
            "{what}: status {} after {:?}\nstdout: {}\nstderr: {}",
            self.code,
            self.took,
            &self.stdout[..self.stdout.len().min(2000)],
            &self.stderr[..self.stderr.len().min(2000)],
        );
    }
}

/// Runs `shmkit ARGS`, killed after `limit`, its address space capped at 2 GiB.
fn shmkit_for(args: &[&str], limit: Duration) -> Run {
    let start = Instant::now();
    let out = Command::new("timeout")
        .arg("--kill-after=2")
        .arg(format!("{}", limit.as_secs_f64()))
        .args(["prlimit", "--as=2147483648", "--"])
        .arg(env!("CARGO_BIN_EXE_shmkit"))
        .args(args)
        .output()
        .expect("run shmkit under timeout");
    Run {
        code: out.status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&out.status).unwrap_or(0)
        }),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: start.elapsed(),
    }
}

fn shmkit(args: &[&str]) -> Run {
    shmkit_for(args, Duration::from_secs(20))
}

/// Runs the child that writes an `Inventory` of containers at `path`.
fn write_containers(path: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_shmkit-cli-child"))
        .arg("containers")
        .arg(path)
        .status()
        .expect("run the child");
    assert!(status.success());
}

fn dump_value(path: &str) -> Value {
    let run = shmkit(&["dump", "--json", path]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str(&run.stdout).expect("JSON")
}

/// The stored descriptor text starting with `prefix` and its offset in the file.
fn descriptor(dump: &Value, prefix: &str) -> (usize, String) {
    dump["type_schemas"]
        .as_array()
        .expect("type schemas")
        .iter()
        .find_map(|t| {
            let text = t["text"].as_str()?;
            text.starts_with(prefix)
                .then(|| (t["offset"].as_u64().unwrap() as usize, text.to_string()))
        })
        .unwrap_or_else(|| panic!("no descriptor {prefix}"))
}

/// Replaces line `old` of the stored schema at `at` by `new` (padded or cut in its last
/// column to keep the text's length).
fn replace_line(bytes: &mut [u8], at: usize, text: &str, old: &str, new: &str) {
    let start = text.find(old).unwrap_or_else(|| panic!("{old} in {text}"));
    assert!(new.len() <= old.len(), "{new} longer than {old}");
    let mut line = new.trim_end_matches('\n').to_string();
    while line.len() + 1 < old.len() {
        line.push('p');
    }
    line.push('\n');
    bytes[at + start..at + start + old.len()].copy_from_slice(line.as_bytes());
}

fn put(bytes: &mut [u8], at: usize, v: i64) {
    bytes[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

fn inventory_offset(dump: &Value) -> usize {
    dump["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "inventory")
        .expect("inventory")["offset"]
        .as_u64()
        .unwrap() as usize
}

/// Forges a segment of containers at `path` (1 MiB) so that its one `Inventory` renders
/// as a binary tree of `Inventory`s 16 deep: `Vec<u32>`'s descriptor says its elements are
/// `Inventory`s, and each forged `Inventory` from 128 KiB on holds two more (overlapping
/// records), `label` a 64 KiB text (`text`) and `stock` a hash table (`table`) of 16,384
/// empty buckets and a length that is never reached.
fn forge_amplifier(file: &Path, text: bool, table: bool) {
    let path = file.to_str().expect("UTF-8 path");
    let dump = dump_value(path);
    let inv = inventory_offset(&dump);
    let (vec_at, vec_text) = descriptor(
        &dump,
        "shmkit-schema 1\tcontainer\tsequence\tVec\t24\t8\t1b383a01d0f51b78",
    );
    let old = vec_text
        .lines()
        .find(|l| l.starts_with("field\tptr\t"))
        .unwrap()
        .to_string()
        + "\n";
    let (records, text_at, text_len, table_at) = (
        128usize << 10,
        192usize << 10,
        64usize << 10,
        256usize << 10,
    );
    let mask = (1usize << 14) - 1;
    shmkit_test_support::patch_file(file, |bytes| {
        replace_line(
            bytes,
            vec_at,
            &vec_text,
            &old,
            "field\tptr\t0\t160\t8\t7bc9def63d309e4c\tp\n",
        );
        bytes[text_at..text_at + text_len].fill(b'A');
        // The table: its mask, then control bytes all "empty" (top bit set).
        bytes[table_at..table_at + 24].fill(0);
        put(bytes, table_at + 8, mask as i64);
        bytes[table_at + 24..table_at + 24 + mask + 1 + 16].fill(0xff);
        let record = |bytes: &mut [u8], a: usize, children: usize| {
            bytes[a..a + 160].fill(0);
            put(bytes, a, (children as i64) - (a as i64)); // ids.ptr
            put(bytes, a + 8, 2); // ids.len
            put(bytes, a + 16, 2); // ids.cap
            if text {
                put(bytes, a + 24, text_at as i64 - (a + 24) as i64); // label.ptr
                put(bytes, a + 32, text_len as i64); // label.len
                put(bytes, a + 40, text_len as i64); // label.cap
            }
            if table {
                put(bytes, a + 112, table_at as i64 - (a + 112) as i64); // stock.table
                put(bytes, a + 120, i64::MAX); // stock.len
            }
        };
        record(bytes, inv, records);
        for i in 0..40 {
            let a = records + 160 * i;
            record(bytes, a, a + 160);
        }
    });
}

/// The renderer's budget counted values, not the work behind one: ~12,000 `String`s of
/// 64 KiB each (forged to share their bytes) made `dump --json` of a 1 MiB file print
/// 488 MB in 56 s and 1.4 GiB of memory (debug build; with the default `--wait`, the
/// watchdog ended it after 15 s saying "the segment's locks stay held by a live process",
/// which no process did). Fixed: each 64 bytes of text read cost one value.
#[test]
fn forged_texts_cannot_make_dump_render_gigabytes() {
    let file = TempPath::new();
    write_containers(file.get());
    forge_amplifier(file.get(), true, false);
    let path = file.get().to_str().expect("UTF-8 path");
    let run = shmkit(&["dump", "--json", path]);
    run.sane("dump --json of forged texts");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.len() < 32 << 20 && run.took < Duration::from_secs(10),
        "dump printed {} MiB from a 1 MiB segment in {:?}",
        run.stdout.len() >> 20,
        run.took
    );
    for args in [&["dump", path][..], &["stat", path], &["check", path]] {
        shmkit(args).sane(&format!("{args:?}"));
    }
}

/// As above with hash tables: each `HashMap` scan over 16,384 empty buckets (a length
/// never reached) cost one value. Fixed: each 64 buckets scanned cost one.
#[test]
fn forged_sparse_hash_tables_cannot_make_dump_scan_for_minutes() {
    let file = TempPath::new();
    write_containers(file.get());
    forge_amplifier(file.get(), false, true);
    let path = file.get().to_str().expect("UTF-8 path");
    let run = shmkit(&["dump", "--json", path]);
    run.sane("dump --json of forged tables");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.took < Duration::from_secs(10), "{:?}", run.took);
}
