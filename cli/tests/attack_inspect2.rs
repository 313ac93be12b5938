//! Attacks on the inspector's newest parts: the type schemas' table, container and lock
//! rendering from stored descriptors, XSI targets. Every run of the binary is bounded by
//! `timeout` (and its address space by `prlimit`): a panic (101), a signal, a hang or a
//! status other than 0, 1 or 2 fails the probe.

#![allow(missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use shmkit_test_support::TempPath;

mod common;
use common::{shmkit_as, write_containers, Run};

/// Runs `shmkit ARGS`, killed after `limit`, its address space capped at 2 GiB.
fn shmkit_for(args: &[&str], limit: Duration) -> Run {
    shmkit_as(&["prlimit", "--as=2147483648", "--"], args, limit)
}

fn shmkit(args: &[&str]) -> Run {
    shmkit_for(args, Duration::from_secs(20))
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

/// An XSI key of this test process alone (`n` tells a test's keys apart).
fn xsi_key(n: u8) -> i32 {
    0x5400_0000 | ((std::process::id() as i32 & 0xffff) << 8) | i32::from(n)
}

/// A raw XSI segment (`shmget`, no shmkit) and its companion path: both removed when
/// dropped, failed test or not.
struct RawXsi {
    id: i32,
    companion: String,
}

impl RawXsi {
    fn new(key: i32, size: usize) -> Self {
        // SAFETY: `shmget` takes integers only.
        let id = unsafe { libc::shmget(key, size, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
        assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
        RawXsi {
            id,
            companion: format!("/dev/shm/shmkit-xsi-{id}"),
        }
    }

    /// Attaches it (outside shmkit: no lock held), copies `bytes` in, and returns the
    /// address, detached by [`RawXsi::detach`].
    fn attach_with(&self, bytes: &[u8]) -> *mut libc::c_void {
        // SAFETY: a fresh attachment of a segment of at least `bytes.len()` bytes (the
        // callers make it so), written through before anyone else maps it.
        unsafe {
            let at = libc::shmat(self.id, std::ptr::null(), 0);
            assert!(
                at as isize != -1,
                "shmat: {}",
                std::io::Error::last_os_error()
            );
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), at.cast::<u8>(), bytes.len());
            at
        }
    }

    fn detach(at: *mut libc::c_void) {
        // SAFETY: `at` came from `shmat` and is detached once.
        unsafe { libc::shmdt(at) };
    }

    fn exists(&self) -> bool {
        // SAFETY: IPC_STAT into a zeroed buffer of the right type.
        unsafe {
            let mut ds: libc::shmid_ds = std::mem::zeroed();
            libc::shmctl(self.id, libc::IPC_STAT, &mut ds) == 0
        }
    }
}

impl Drop for RawXsi {
    fn drop(&mut self) {
        // SAFETY: integers only.
        unsafe { libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) };
        let _ = std::fs::remove_file(&self.companion);
    }
}

#[test]
fn xsi_key_spellings_are_clear_errors() {
    for key in [
        "xsi:",
        "xsi:0",
        "xsi:-1",
        "xsi:0xffffffffff",
        "xsi:0x",
        "xsi:-0x1",
        "xsi:+5",
        "xsi:99999999999999999999",
        "xsi:-2147483648",
        "xsi: 1",
        "xsi:0o7",
        "xsi:\u{1b}[2J",
    ] {
        for cmd in ["stat", "dump", "check", "map", "rm", "gc"] {
            let run = shmkit(&[cmd, key]);
            run.sane(&format!("{cmd} {key:?}"));
            assert_eq!(run.code, 2, "{cmd} {key:?}: {}", run.stderr);
            assert!(
                !run.stderr.contains('\u{1b}'),
                "{cmd} {key:?}: {}",
                run.stderr
            );
        }
    }
}

/// A segment made with `shmget`, holding a copy of a shmkit file segment's bytes (every
/// container kind), with a companion file beside it and attached raw (no shmkit lock):
/// every command reads it sanely, and `gc --yes` leaves it while the raw attachment
/// stays.
#[test]
fn an_xsi_segment_with_copied_bytes_and_a_raw_attachment() {
    let file = TempPath::new();
    write_containers(file.get());
    let image = std::fs::read(file.get()).expect("image");
    let raw = RawXsi::new(xsi_key(1), image.len());
    std::fs::write(&raw.companion, b"").expect("companion");
    let at = raw.attach_with(&image);
    let name = format!("xsi:{:#010x}", xsi_key(1) as u32);
    let ls = shmkit(&["ls", "--json"]);
    ls.sane("ls");
    for args in [
        &["stat", &name][..],
        &["stat", "--json", &name],
        &["dump", "--json", &name],
        &["dump", &name],
        &["check", &name],
        &["map", "--runs", &name],
        &["gc", &name],
        &["gc", "--yes", &name],
    ] {
        let run = shmkit(args);
        run.sane(&format!("{args:?}"));
        assert!(
            raw.exists(),
            "{args:?} removed a segment attached outside shmkit"
        );
    }
    RawXsi::detach(at);
    // Detached: read as any shmkit segment (its bytes are a file segment's, its kind
    // another: a clear verdict either way).
    let dump = shmkit(&["dump", "--json", &name]);
    dump.sane("dump detached");
    assert_eq!(dump.code, 0, "{}", dump.stderr);
    // Forged header words too: a mutation of the first 256 bytes at a time.
    let mut rng = shmkit_test_support::rng::Rng::new(0x5eed_0001);
    for round in 0..12 {
        let mut forged = image.clone();
        for _ in 0..4 {
            let i = rng.range(0, 256) as usize;
            forged[i] = rng.range(0, 256) as u8;
        }
        let at = raw.attach_with(&forged);
        RawXsi::detach(at);
        for args in [
            &["stat", "--json", &name][..],
            &["dump", "--json", &name],
            &["check", &name],
        ] {
            shmkit(args).sane(&format!("round {round}: {args:?}"));
        }
    }
}

/// The companion is a symlink to a file of the user's: commands follow nothing they
/// should not, and `rm`/`gc` leave the link's target.
#[test]
fn an_xsi_companion_that_is_a_symlink() {
    let file = TempPath::new();
    write_containers(file.get());
    let image = std::fs::read(file.get()).expect("image");
    let raw = RawXsi::new(xsi_key(2), image.len());
    let target = TempPath::new();
    std::fs::write(target.get(), b"precious").expect("target");
    std::os::unix::fs::symlink(target.get(), &raw.companion).expect("symlink");
    let at = raw.attach_with(&image);
    RawXsi::detach(at);
    let name = format!("xsi:{:#010x}", xsi_key(2) as u32);
    for args in [
        &["ls", "--json"][..],
        &["stat", &name],
        &["dump", &name],
        &["check", &name],
        &["map", &name],
        &["gc", "--yes", &name],
        &["rm", &name],
    ] {
        shmkit(args).sane(&format!("{args:?}"));
    }
    assert_eq!(std::fs::read(target.get()).expect("target"), b"precious");
}

/// Mutates the used part of a segment holding every container kind (`rounds` rounds of a
/// few bytes or words each: object bytes, nodes, buckets, descriptor text, table words)
/// and runs `dump --json`, `stat --json` and `check` on each.
fn mutate_containers(seed: u64, rounds: usize) {
    let file = TempPath::new();
    write_containers(file.get());
    let path = file.get().to_str().expect("UTF-8 path");
    let image = std::fs::read(file.get()).expect("image");
    let dump = dump_value(path);
    // The used part: up to past the last descriptor and the object's containers.
    let end = dump["type_schemas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["offset"].as_u64().unwrap() as usize + 512)
        .max()
        .unwrap()
        .max(inventory_offset(&dump) + 4096)
        .min(image.len());
    let mut rng = shmkit_test_support::rng::Rng::new(seed);
    let words: [i64; 8] = [0, 1, -1, -8, i64::MAX, i64::MIN, 1 << 40, 4096];
    for round in 0..rounds {
        let mut bytes = image.clone();
        for _ in 0..1 + rng.range(0, 4) {
            let at = rng.range(0, end as u64) as usize;
            match rng.range(0, 3) {
                0 => bytes[at] = rng.range(0, 256) as u8,
                1 => bytes[at] = b"0123456789\t\n-"[rng.range(0, 13) as usize],
                _ => {
                    let at = at & !7;
                    let w = words[rng.range(0, 8) as usize];
                    bytes[at..at + 8].copy_from_slice(&w.to_ne_bytes());
                }
            }
        }
        std::fs::write(file.get(), &bytes).expect("write");
        for args in [
            &["dump", "--json", path][..],
            &["stat", "--json", path],
            &["check", path],
        ] {
            let run = shmkit(args);
            run.sane(&format!("seed {seed:#x} round {round}: {args:?}"));
            assert!(
                run.took < Duration::from_secs(10),
                "seed {seed:#x} round {round}: {args:?} took {:?}",
                run.took
            );
        }
    }
}

#[test]
fn mutated_containers_segments_read_sanely() {
    mutate_containers(0xc0de_0001, 40);
}

#[test]
#[ignore = "long: run with --ignored"]
fn mutated_containers_segments_read_sanely_long() {
    mutate_containers(shmkit_test_support::rng::Rng::time_seed(), 2000);
}

/// Each aligned word of the used part of a segment holding every container kind (its
/// object, nodes, buckets, texts, the type schemas' table and descriptors) set in turn to
/// hostile values, then opened read-only and reported on through `shmkit::inspect`, as
/// the inspector does: an error or a report, never a panic or a hang (10 s per case).
/// `SHMKIT_ATTACK2_VALUES=all` tries more values per word.
#[test]
fn every_word_of_a_containers_segment_forged_through_the_library() {
    use shmkit::inspect;
    use std::os::unix::fs::FileExt;
    use std::sync::Arc;
    let t = TempPath::new();
    write_containers(t.get());
    let bytes = std::fs::read(t.get()).expect("read");
    // The used part, and the segment's last words (the allocator's end marker).
    let used_end = bytes[..bytes.len() - 64]
        .iter()
        .rposition(|&b| b != 0)
        .unwrap_or(0)
        + 1;
    let words = (0..used_end.next_multiple_of(8))
        .step_by(8)
        .chain((bytes.len() - 64..bytes.len()).step_by(8));
    let path = t.get().to_path_buf();
    let all = std::env::var("SHMKIT_ATTACK2_VALUES").is_ok_and(|v| v == "all");
    let (tx, rx) = std::sync::mpsc::channel();
    let current = Arc::new(std::sync::Mutex::new(String::new()));
    let now = current.clone();
    let worker = std::thread::spawn(move || {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open");
        let (mut cases, mut opened) = (0, 0);
        for at in words {
            let off = at as u64;
            let orig = u64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap());
            let mut values = vec![0u64, u64::MAX, orig ^ 1, orig.wrapping_add(4096)];
            if all {
                values.extend([
                    off,
                    1 << 40,
                    orig.wrapping_sub(8),
                    1 << 20,
                    orig ^ (1 << 63),
                ]);
            }
            for v in values {
                file.write_at(&v.to_ne_bytes(), off).expect("forge");
                cases += 1;
                let what = format!("word at {at} = {v:#x}");
                *now.lock().unwrap() = what.clone();
                if let Ok(seg) = shmkit::ManagedMappedFile::options().read_only().open(&path) {
                    opened += 1;
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let _ = inspect::type_schemas(&seg);
                        let _ = inspect::objects(&seg);
                        let _ = inspect::index_load(&seg);
                        let _ = inspect::block_map(&seg);
                        let _ = inspect::usage(&seg);
                        let _ = inspect::check(&seg);
                    }));
                    if r.is_err() {
                        tx.send(Err(what)).unwrap();
                        return;
                    }
                }
                file.write_at(&bytes[at..at + 8], off).expect("restore");
            }
        }
        tx.send(Ok((cases, opened))).unwrap();
    });
    let (cases, opened) = common::watch_cases(&rx, &current);
    eprintln!("{cases} forged words, {opened} opened");
    worker.join().expect("worker");
}

/// Rewrites the stored schema at `at` (now `old`) as `new`, padded in its last column to
/// `old`'s length (fingerprints may be spelled short, `0`, to make room).
fn rewrite_schema(bytes: &mut [u8], at: usize, old: &str, new: &str) {
    assert!(new.len() <= old.len(), "{new:?} longer than {old:?}");
    let mut text = new.trim_end_matches('\n').to_string();
    while text.len() + 1 < old.len() {
        text.push('p');
    }
    text.push('\n');
    bytes[at..at + old.len()].copy_from_slice(text.as_bytes());
}

/// A B-tree's and a hash table's descriptors forged with parts at offsets near 2^63, and
/// their pointers forged to aim near 2^63 too: the sums overflow. An error entry, never a
/// panic (the debug build checks overflow) nor a read elsewhere.
#[test]
fn descriptor_offsets_near_two_to_the_63_do_not_overflow() {
    let file = TempPath::new();
    write_containers(file.get());
    let path = file.get().to_str().expect("UTF-8 path");
    let dump = dump_value(path);
    let inv = inventory_offset(&dump);
    let (map_at, map_text) = descriptor(&dump, "shmkit-schema 1\tcontainer\tbtree\tMap\t");
    let (hash_at, hash_text) = descriptor(&dump, "shmkit-schema 1\tcontainer\thash\tHashMap\t");
    let big = 1u64 << 63;
    let map_new = map_text
        .lines()
        .map(|l| {
            let mut cols: Vec<String> = l.split('\t').map(str::to_string).collect();
            if cols[0] == "field" {
                match cols[1].as_str() {
                    "root" => cols[3] = usize::MAX.to_string(),
                    "node.level" => cols[2] = big.to_string(),
                    _ => {}
                }
                cols[6] = "t".into();
            }
            cols.join("\t") + "\n"
        })
        .collect::<String>();
    let hash_new = hash_text
        .lines()
        .map(|l| {
            let mut cols: Vec<String> = l.split('\t').map(str::to_string).collect();
            if cols[0] == "field" {
                if cols[1] == "table.mask" {
                    cols[2] = big.to_string();
                }
                cols[6] = "t".into();
            }
            cols.join("\t") + "\n"
        })
        .collect::<String>();
    shmkit_test_support::patch_file(file.get(), |bytes| {
        rewrite_schema(bytes, map_at, &map_text, &map_new);
        rewrite_schema(bytes, hash_at, &hash_text, &hash_new);
        // prices.root and stock.table aim 2^63 - 1 bytes ahead.
        put(bytes, inv + 80, i64::MAX);
        put(bytes, inv + 112, i64::MAX);
    });
    let after = dump_value(path);
    let value = &after["objects"][0]["value"];
    for part in ["prices", "stock"] {
        assert!(
            value[part]["invalid"].is_string(),
            "{part}: {}",
            value[part]
        );
    }

    // A node found in bounds, claiming level 1 (an internal node, checked against the
    // edges' size), whose key count the descriptor puts near 2^64 bytes in.
    let file = TempPath::new();
    write_containers(file.get());
    let path = file.get().to_str().expect("UTF-8 path");
    let dump = dump_value(path);
    let (map_at, map_text) = descriptor(&dump, "shmkit-schema 1\tcontainer\tbtree\tMap\t");
    let level_at: usize = map_text
        .lines()
        .find_map(|l| l.strip_prefix("field\tnode.level\t"))
        .and_then(|rest| rest.split('\t').next()?.parse().ok())
        .expect("node.level's offset");
    let map_new = map_text
        .lines()
        .map(|l| {
            let mut cols: Vec<String> = l.split('\t').map(str::to_string).collect();
            if cols[0] == "field" {
                match cols[1].as_str() {
                    "root" => cols[3] = usize::MAX.to_string(),
                    "node.len" => cols[2] = (usize::MAX - 8).to_string(),
                    _ => {}
                }
                cols[6] = "t".into();
            }
            cols.join("\t") + "\n"
        })
        .collect::<String>();
    shmkit_test_support::patch_file(file.get(), |bytes| {
        rewrite_schema(bytes, map_at, &map_text, &map_new);
        let prices = inv + 80;
        let root = (prices as i64
            + i64::from_ne_bytes(bytes[prices..prices + 8].try_into().unwrap()))
            as usize;
        bytes[root + level_at..root + level_at + 2].copy_from_slice(&1u16.to_ne_bytes());
    });
    let after = dump_value(path);
    let prices = &after["objects"][0]["value"]["prices"];
    assert!(prices["invalid"].is_string(), "{prices}");
}

/// Every number of every stored descriptor and schema (a field's offset, size and align,
/// a header's size and align) set in turn to boundary values, each with the object's
/// container words (pointers, lengths) kept or aimed far (2^63 - 1, -2^63), then reported
/// on through `shmkit::inspect`: an error or a report, never a panic or a hang.
#[test]
fn every_descriptor_number_forged_through_the_library() {
    use shmkit::inspect;
    use std::os::unix::fs::FileExt;
    let t = TempPath::new();
    write_containers(t.get());
    let path = t.get().to_str().expect("UTF-8 path").to_string();
    let dump = dump_value(&path);
    let inv = inventory_offset(&dump);
    let image = std::fs::read(t.get()).expect("image");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(t.get())
        .expect("open");
    let values = [
        0usize,
        1,
        3,
        4095,
        1 << 32,
        1 << 63,
        usize::MAX - 8,
        usize::MAX,
    ];
    let words: [Option<i64>; 3] = [None, Some(i64::MAX), Some(i64::MIN)];
    let start = Instant::now();
    let (mut cases, mut skipped) = (0, 0);
    for t in dump["type_schemas"].as_array().unwrap() {
        let (Some(text), Some(at)) = (t["text"].as_str(), t["offset"].as_u64()) else {
            continue;
        };
        let at = at as usize;
        let lines: Vec<Vec<String>> = text
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect();
        // (line, column) of each number: the header's size and align, each field's
        // offset, size and align.
        let mut spots = vec![(0, 4), (0, 5)];
        for (i, l) in lines.iter().enumerate().skip(1) {
            if l[0] == "field" {
                spots.extend([(i, 2), (i, 3), (i, 4)]);
            }
        }
        for (line, col) in spots {
            for v in values {
                let mut forged = lines.clone();
                forged[line][col] = v.to_string();
                for l in forged.iter_mut().skip(1) {
                    if l[0] == "field" {
                        l[6] = "t".into();
                        if l[5].bytes().all(|b| b == b'0') {
                            l[5] = "0".into();
                        }
                    }
                }
                let new: String = forged.iter().map(|l| l.join("\t") + "\n").collect();
                if new.len() > text.len() {
                    // No room in this text for so long a number.
                    skipped += 1;
                    continue;
                }
                let mut bytes = text.as_bytes().to_vec();
                rewrite_schema(&mut bytes, 0, text, &new);
                file.write_at(&bytes, at as u64).expect("forge");
                for w in words {
                    if let Some(w) = w {
                        // Every container's first word (its pointer) and the next (a
                        // length, or the pointer's neighbour).
                        for f in [0usize, 24, 48, 80, 112, 128] {
                            file.write_at(&w.to_ne_bytes(), (inv + f) as u64)
                                .expect("forge");
                            file.write_at(&(w as u64 >> 1).to_ne_bytes(), (inv + f + 8) as u64)
                                .expect("forge");
                        }
                    }
                    cases += 1;
                    let what = format!("{text:?}: line {line} column {col} = {v}, words {w:?}");
                    let case = Instant::now();
                    if let Ok(seg) = shmkit::ManagedMappedFile::options().read_only().open(&path) {
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            let _ = inspect::type_schemas(&seg);
                            let _ = inspect::objects(&seg);
                        }));
                        assert!(r.is_ok(), "the inspection panicked on {what}");
                    }
                    assert!(
                        case.elapsed() < Duration::from_secs(5),
                        "{what} took {:?}",
                        case.elapsed()
                    );
                    file.write_at(&image[inv..inv + 160], inv as u64)
                        .expect("restore");
                }
                file.write_at(&image[at..at + text.len()], at as u64)
                    .expect("restore");
            }
        }
    }
    eprintln!("{cases} cases ({skipped} skipped) in {:?}", start.elapsed());
}

/// A derived type of this test alone, holding a container and a lock (their descriptors
/// are stored with its schema).
#[derive(shmkit::ShmSafe, Default)]
#[repr(C)]
pub struct Ledger {
    pub total: u64,
    pub lines: shmkit::containers::Vec<u32>,
    pub guard: shmkit::sync::Mutex<u32>,
}

/// Safe code cannot see, find, destroy or shadow the type schemas' table: counts and
/// listings hold objects only, a user object named as a schema's key is just an object,
/// reserved names are refused, and two mappings constructing the type at once from two
/// threads store one schema for it.
#[test]
fn safe_code_cannot_reach_the_schema_table() {
    use shmkit::inspect;
    use shmkit::{Error, ManagedMappedFile};
    let t = TempPath::new();
    let mut seg = ManagedMappedFile::create(t.get(), 1 << 20).expect("create");
    seg.construct("ledger", Ledger::default()).expect("ledger");
    let schemas = inspect::type_schemas(&seg).expect("type schemas");
    let key = schemas
        .iter()
        .find(|s| s.schema.as_ref().is_ok_and(|s| s.name == "Ledger"))
        .expect("Ledger's schema")
        .key
        .clone();
    assert_eq!(seg.num_named_objects(), 1);
    assert_eq!(seg.num_unique_objects(), 0);
    let names: Vec<String> = seg
        .named_objects()
        .expect("listing")
        .map(|o| o.name)
        .collect();
    assert_eq!(names, ["ledger"]);
    // The key as a name: no object, and one may be made under it without touching the
    // table.
    assert!(seg.find::<u8>(key.as_str()).expect("find").is_none());
    assert!(!seg.destroy::<u8>(key.as_str()).expect("destroy"));
    seg.construct(key.as_str(), 7u8)
        .expect("an object named as a key");
    for name in ["__shmkit_schema::0", "__shmkit_", "__shmkit_root::x"] {
        assert!(
            matches!(seg.construct(name, 1u8), Err(Error::InvalidName { .. })),
            "{name}"
        );
        assert!(
            matches!(seg.find::<u8>(name), Err(Error::InvalidName { .. })),
            "{name}"
        );
        assert!(
            matches!(seg.destroy::<u8>(name), Err(Error::InvalidName { .. })),
            "{name}"
        );
    }
    let again = inspect::type_schemas(&seg).expect("type schemas");
    assert_eq!(again.len(), schemas.len());
    // Everything destroyed: the segment checks sound, the schemas stay.
    assert!(seg.destroy::<Ledger>("ledger").expect("destroy"));
    assert!(seg.destroy::<u8>(key.as_str()).expect("destroy"));
    assert_eq!(seg.num_named_objects(), 0);
    seg.check().expect("check");
    assert_eq!(
        inspect::type_schemas(&seg).expect("table").len(),
        schemas.len()
    );
    drop(seg);
    let path = t.get().to_str().unwrap();
    let r = shmkit(&["check", path]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    // Two mappings constructing a new type at once: one schema each type.
    #[derive(shmkit::ShmSafe, Default)]
    #[repr(C)]
    struct Racer {
        a: u32,
        b: shmkit::containers::String,
    }
    let t = TempPath::new();
    drop(ManagedMappedFile::create(t.get(), 1 << 20).expect("create"));
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let (path, barrier) = (t.get().to_path_buf(), barrier.clone());
            std::thread::spawn(move || {
                let seg = ManagedMappedFile::open(&path).expect("open");
                barrier.wait();
                seg.construct(format!("racer{i}").as_str(), Racer::default())
                    .expect("racer");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let seg = ManagedMappedFile::open(t.get()).expect("open");
    let table = inspect::type_schemas(&seg).expect("table");
    let mut keys: Vec<&str> = table.iter().map(|s| s.key.as_str()).collect();
    let n = keys.len();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), n, "a schema stored twice: {keys:?}");
    assert_eq!(
        table
            .iter()
            .filter(|s| s.schema.as_ref().is_ok_and(|s| s.name == "Racer"))
            .count(),
        1
    );
}

/// The companion is a FIFO (opening it for reading would block), a directory, or a
/// dangling symlink: every command ends promptly with a clear verdict.
#[test]
fn an_xsi_companion_that_is_a_fifo_a_directory_or_dangling() {
    let file = TempPath::new();
    write_containers(file.get());
    let image = std::fs::read(file.get()).expect("image");
    for (n, kind) in [(3u8, "fifo"), (4, "dir"), (5, "dangling")] {
        let raw = RawXsi::new(xsi_key(n), image.len());
        let c = std::ffi::CString::new(raw.companion.clone()).unwrap();
        match kind {
            // SAFETY: a C string.
            "fifo" => assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0),
            "dir" => std::fs::create_dir(&raw.companion).expect("dir"),
            _ => std::os::unix::fs::symlink("/nonexistent/shmkit-attack", &raw.companion)
                .expect("symlink"),
        }
        let at = raw.attach_with(&image);
        RawXsi::detach(at);
        let name = format!("xsi:{:#010x}", xsi_key(n) as u32);
        for args in [
            &["ls", "--json"][..],
            &["stat", &name],
            &["dump", &name],
            &["check", &name],
            &["map", &name],
            &["gc", &name],
            &["gc", "--yes", &name],
            &["rm", &name],
        ] {
            let run = shmkit_for(args, Duration::from_secs(10));
            run.sane(&format!("{kind}: {args:?}"));
            assert!(
                run.took < Duration::from_secs(8),
                "{kind}: {args:?} took {:?}",
                run.took
            );
        }
        if kind == "dir" {
            let _ = std::fs::remove_dir(&raw.companion);
        }
    }
}

/// XSI segments (a shmkit image, companion beside) made and removed in a loop while `ls`,
/// `stat` and `gc` run: one that vanishes between the listing and the look is skipped or
/// a clear error, never a crash.
#[test]
fn xsi_segments_vanishing_under_ls_stat_and_gc() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let file = TempPath::new();
    write_containers(file.get());
    let image = std::sync::Arc::new(std::fs::read(file.get()).expect("image"));
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let churn = {
        let (image, stop) = (image.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut made = 0;
            while !stop.load(Ordering::Relaxed) {
                let raw = RawXsi::new(xsi_key(6), image.len());
                std::fs::write(&raw.companion, b"").expect("companion");
                let at = raw.attach_with(&image);
                RawXsi::detach(at);
                std::thread::sleep(Duration::from_millis(3));
                drop(raw);
                made += 1;
            }
            made
        })
    };
    let name = format!("xsi:{:#010x}", xsi_key(6) as u32);
    let start = Instant::now();
    let mut runs = 0;
    while start.elapsed() < Duration::from_secs(3) {
        for args in [
            &["ls", "--json"][..],
            &["stat", "--json", &name],
            &["dump", &name],
            &["gc", &name],
            &["gc", "--yes", &name],
        ] {
            shmkit(args).sane(&format!("{args:?}"));
            runs += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let made = churn.join().expect("churn");
    eprintln!("{runs} runs beside {made} segments made and removed");
}

/// `Map<u32, i64>`'s descriptor forged to hold maps as its values (`Map` of itself), and
/// one chain of 33 nodes (levels 32 to 0) whose leaf's value is a map rooted at the chain's
/// top again: each nesting walked 33 nodes deep, 32 nestings, ~1,000 recursive frames.
/// The debug build's 2 MiB thread overflowed its stack (SIGABRT, status 134). Fixed: a
/// B-tree's levels count in the nesting depth.
#[test]
fn maps_nested_in_maps_each_32_levels_high_do_not_overflow_the_stack() {
    let file = TempPath::new();
    write_containers(file.get());
    let path = file.get().to_str().expect("UTF-8 path");
    let dump = dump_value(path);
    let inv = inventory_offset(&dump);
    let (map_at, map_text) = descriptor(&dump, "shmkit-schema 1\tcontainer\tbtree\tMap\t");
    let map_fp = map_text
        .lines()
        .next()
        .unwrap()
        .split('\t')
        .nth(6)
        .unwrap()
        .to_string();
    let col = |name: &str, i: usize| -> usize {
        map_text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("field\t{name}\t")))
            .and_then(|rest| rest.split('\t').nth(i)?.parse().ok())
            .unwrap_or_else(|| panic!("{name}"))
    };
    let (len_at, level_at, edges_at, vals_at) = (
        col("node.len", 0),
        col("node.level", 0),
        col("node.edges", 0),
        col("node.vals", 0),
    );
    let internal = col("node.edges", 1);
    let map_new = map_text
        .lines()
        .map(|l| {
            let mut cols: Vec<String> = l.split('\t').map(str::to_string).collect();
            if cols[0] == "field" {
                if cols[1] == "node.vals" {
                    cols[3] = "32".into();
                    cols[5] = map_fp.clone();
                }
                if cols[5].bytes().all(|b| b == b'0') {
                    cols[5] = "0".into();
                }
                cols[6] = "t".into();
            }
            cols.join("\t") + "\n"
        })
        .collect::<String>();
    let base = 256usize << 10;
    let nodes: Vec<usize> = (0..=32).map(|i| base + internal * i).collect();
    shmkit_test_support::patch_file(file.get(), |bytes| {
        rewrite_schema(bytes, map_at, &map_text, &map_new);
        for (i, &a) in nodes.iter().enumerate() {
            bytes[a..a + internal].fill(0);
            let level = 32 - i as u16;
            bytes[a + level_at..a + level_at + 2].copy_from_slice(&level.to_ne_bytes());
            if level > 0 {
                put(
                    bytes,
                    a + edges_at,
                    nodes[i + 1] as i64 - (a + edges_at) as i64,
                );
            } else {
                bytes[a + len_at..a + len_at + 2].copy_from_slice(&1u16.to_ne_bytes());
                // Its one value: a map rooted at the chain's top.
                put(bytes, a + vals_at, nodes[0] as i64 - (a + vals_at) as i64);
                put(bytes, a + vals_at + 8, 1);
            }
        }
        put(bytes, inv + 80, nodes[0] as i64 - (inv + 80) as i64);
        put(bytes, inv + 88, 1);
    });
    for args in [
        &["dump", "--json", path][..],
        &["dump", path],
        &["stat", path],
    ] {
        let run = shmkit(args);
        run.sane(&format!("{args:?}"));
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
    }
}

/// Smaller forgeries, each an error entry or a rendering, never a crash: a `String`'s
/// bytes made invalid UTF-8, its length 1 GiB, a `Vec` of zero-sized elements
/// (descriptor) 2^64 - 1 long, and the `Mutex`'s owner word set to odd holders.
#[test]
fn small_forgeries_of_texts_sequences_and_lock_words() {
    let file = TempPath::new();
    write_containers(file.get());
    let path = file.get().to_str().expect("UTF-8 path");
    let image = std::fs::read(file.get()).expect("image");
    let dump = dump_value(path);
    let inv = inventory_offset(&dump);
    let (vec_at, vec_text) = descriptor(
        &dump,
        "shmkit-schema 1\tcontainer\tsequence\tVec\t24\t8\t1b383a01d0f51b78",
    );
    let label =
        (inv as i64 + 24 + i64::from_ne_bytes(image[inv + 24..inv + 32].try_into().unwrap()))
            as usize;
    let run = |what: &str, f: &dyn Fn(&mut Vec<u8>)| -> Value {
        std::fs::write(file.get(), &image).expect("restore");
        shmkit_test_support::patch_file(file.get(), f);
        for args in [&["dump", path][..], &["stat", path], &["check", path]] {
            shmkit(args).sane(&format!("{what}: {args:?}"));
        }
        dump_value(path)["objects"][0]["value"].clone()
    };
    let v = run("invalid UTF-8", &|b| {
        b[label..label + 2].copy_from_slice(&[0xff, 0xfe])
    });
    assert!(
        v["label"]["invalid"].as_str().unwrap().contains("UTF-8"),
        "{v}"
    );
    let v = run("1 GiB text", &|b| put(b, inv + 32, 1 << 30));
    assert!(v["label"]["invalid"].is_string(), "{v}");
    let v = run("zero-sized elements", &|b| {
        let old = vec_text
            .lines()
            .find(|l| l.starts_with("field\tptr\t"))
            .unwrap()
            .to_string()
            + "\n";
        replace_line(b, vec_at, &vec_text, &old, "field\tptr\t0\t0\t1\t0\tp\n");
        put(b, inv + 8, -1);
    });
    assert!(v["ids"].is_object() || v["ids"].is_array(), "{v}");
    for word in [
        u32::MAX,
        0x7fff_ffff,
        0x8000_0001,
        0x4000_0000,
        0xc000_0005,
        1,
    ] {
        let v = run(&format!("owner word {word:#x}"), &|b| {
            b[inv + 128..inv + 132].copy_from_slice(&word.to_ne_bytes())
        });
        assert!(v["recent"].is_object(), "{v}");
    }
}

/// A segment in `/dev/shm` (anyone's) whose name holds a right-to-left override: `ls`
/// shows it escaped, never reorders the line on the terminal.
#[test]
fn a_name_with_a_bidi_override_is_shown_escaped() {
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let name = format!("ai2-{}-\u{202e}txt.exe", std::process::id());
    let path = Remove(format!("/dev/shm/{name}"));
    write_containers(Path::new(&path.0));
    let ls = shmkit(&["ls"]);
    ls.sane("ls");
    assert!(!ls.stdout.contains('\u{202e}'), "{}", ls.stdout);
    assert!(ls.stdout.contains("\\u{202e}"), "{}", ls.stdout);
    let stat = shmkit(&["stat", &name]);
    stat.sane("stat");
    assert!(!stat.stdout.contains('\u{202e}'), "{}", stat.stdout);
}

/// Many objects, each forged to spend a whole value budget: 1,000 `Ledger`s whose
/// `lines` (`Vec<u32>`, its descriptor forged to hold `Ledger`s) all aim at one binary tree
/// of overlapping `Ledger`s, 16 deep. The budget was per object (100,000 values), so the
/// work was one budget per object: with 3,000 of them `dump --json` of a 4 MiB file ran
/// out of 2 GiB of address space after 13 s ("memory allocation of 216 bytes failed",
/// SIGABRT, status 134). Fixed: a snapshot renders 400,000 values in all.
#[test]
fn many_objects_each_spending_a_budget_still_dump_promptly() {
    let t = TempPath::new();
    {
        let seg = shmkit::ManagedMappedFile::create(t.get(), 4 << 20).expect("create");
        for i in 0..1000 {
            seg.construct(format!("o{i}").as_str(), Ledger::default())
                .expect("ledger");
        }
    }
    let path = t.get().to_str().expect("UTF-8 path");
    let dump = dump_value(path);
    let (vec_at, vec_text) = descriptor(
        &dump,
        "shmkit-schema 1\tcontainer\tsequence\tVec\t24\t8\t1b383a01d0f51b78",
    );
    let ledger = dump["type_schemas"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|s| {
            let text = s["text"].as_str()?;
            let head: Vec<&str> = text.lines().next()?.split('\t').collect();
            (head[3] == "Ledger").then(|| (head[4].parse::<usize>().unwrap(), head[6].to_string()))
        })
        .expect("Ledger's schema");
    let (size, fp) = ledger;
    let old = vec_text
        .lines()
        .find(|l| l.starts_with("field\tptr\t"))
        .unwrap()
        .to_string()
        + "\n";
    let offsets: Vec<usize> = dump["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["offset"].as_u64().unwrap() as usize)
        .collect();
    let records = 3usize << 20;
    shmkit_test_support::patch_file(t.get(), |bytes| {
        replace_line(
            bytes,
            vec_at,
            &vec_text,
            &old,
            &format!("field\tptr\t0\t{size}\t8\t{fp}\tp\n"),
        );
        for i in 0..40 {
            let a = records + size * i;
            bytes[a..a + size].fill(0);
            put(bytes, a + 8, (a + size) as i64 - (a + 8) as i64);
            put(bytes, a + 16, 2);
        }
        for &o in &offsets {
            put(bytes, o + 8, records as i64 - (o + 8) as i64);
            put(bytes, o + 16, 2);
        }
    });
    let run = shmkit(&["dump", "--json", path]);
    run.sane("dump --json");
    assert_eq!(run.code, 0, "after {:?}: {}", run.took, run.stderr);
    assert!(run.took < Duration::from_secs(12), "{:?}", run.took);
    let dump: Value = serde_json::from_str(&run.stdout).expect("JSON");
    let last = &dump["objects"].as_array().unwrap().last().unwrap()["value"];
    assert!(
        last["invalid"]
            .as_str()
            .is_some_and(|w| w.contains("in all objects")),
        "{last}"
    );
}
