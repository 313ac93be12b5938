//! `shmkit-containers-child`: the other process of the containers' multi-process tests.
//! The first argument names the role, `SHMKIT_NAME` the shared memory segment; every line
//! printed on stdout is a message for the parent test, which signals on stdin.

use std::io::{Read, Write};

use shmkit_containers::{Arc, ArcExt, String as ShmString};
use shmkit_containers::{Deque, List};
use shmkit_containers::{HashMap, HashMapExt, Map, Vec, VecExt};
use shmkit_runtime::sync::Mutex;
use shmkit_runtime::{ManagedSharedMemory, Result};

fn main() -> Result<()> {
    let role = std::env::args()
        .nth(1)
        .expect("usage: shmkit-containers-child ROLE");
    let name = std::env::var("SHMKIT_NAME").expect("SHMKIT_NAME");
    match role.as_str() {
        "read-rows" => read_rows(&name),
        "push" => push(&name),
        "read-map" => read_map(&name),
        "read-ordered-map" => read_ordered_map(&name),
        "count" => count(&name),
        "read-strings" => read_strings(&name),
        "share-arc" => share_arc(&name),
        "read-list" => read_list(&name),
        "read-deque" => read_deque(&name),
        other => panic!("unknown role {other}"),
    }
}

/// Reads the parent's `Mutex<Vec<Vec<u64>>>` "rows" through two mappings of its own (at
/// two addresses, so at least one differs from the parent's) and reports, per mapping,
/// its base address and each row's length and sum: `at <base> rows <len>:<sum> ...`.
fn read_rows(name: &str) -> Result<()> {
    let first = ManagedSharedMemory::open(name)?;
    let second = ManagedSharedMemory::open(name)?;
    for seg in [&first, &second] {
        let rows = seg
            .find::<Mutex<Vec<Vec<u64>>>>("rows")?
            .expect("the parent constructed it");
        let rows = rows.lock()?;
        let summary: std::vec::Vec<String> = rows
            .iter()
            .map(|row| format!("{}:{}", row.len(), row.iter().sum::<u64>()))
            .collect();
        tell_parent(&format!(
            "at {:#x} rows {}",
            seg.base_address().as_ptr() as usize,
            summary.join(" ")
        ));
    }
    Ok(())
}

/// Reads the parent's `Mutex<Map<u64, Vec<u64>>>` "index" through two mappings of its
/// own and reports, per mapping, its base address, then the elements in order and a range
/// read backwards: `at <base> map <key>:<len>:<sum> ... range <key> ...`.
fn read_ordered_map(name: &str) -> Result<()> {
    let first = ManagedSharedMemory::open(name)?;
    let second = ManagedSharedMemory::open(name)?;
    for seg in [&first, &second] {
        let index = seg
            .find::<Mutex<Map<u64, Vec<u64>>>>("index")?
            .expect("the parent constructed it");
        let index = index.lock()?;
        let summary: std::vec::Vec<String> = index
            .iter()
            .map(|(k, row)| format!("{k}:{}:{}", row.len(), row.iter().sum::<u64>()))
            .collect();
        let range: std::vec::Vec<String> = index
            .range(100..200)
            .rev()
            .map(|(k, _)| k.to_string())
            .collect();
        tell_parent(&format!(
            "at {:#x} map {} range {}",
            seg.base_address().as_ptr() as usize,
            summary.join(" "),
            range.join(" ")
        ));
    }
    Ok(())
}

/// Reads the parent's `Mutex<List<Vec<u64>>>` "rows" as `read_rows` does, from the front
/// and from the back: `at <base> rows <len>:<sum> ... rev <len>:<sum> ...`.
fn read_list(name: &str) -> Result<()> {
    read_twice::<List<Vec<u64>>>(name, |rows| {
        let rev: std::vec::Vec<&Vec<u64>> = rows.iter().rev().collect();
        (summary(rows.iter()), summary(rev.into_iter()))
    })
}

/// Reads the parent's `Mutex<Deque<Vec<u64>>>` "rows" (a ring that wraps) as `read_list`
/// does.
fn read_deque(name: &str) -> Result<()> {
    read_twice::<Deque<Vec<u64>>>(name, |rows| {
        (summary(rows.iter()), summary(rows.iter().rev()))
    })
}

/// Finds the parent's `Mutex<C>` "rows" through two mappings of its own and reports what
/// `read` makes of it in each: `at <base> rows <forward> rev <backward>`.
fn read_twice<C: shmkit_runtime::ShmSafe + Send>(
    name: &str,
    read: impl Fn(&C) -> (String, String),
) -> Result<()> {
    let first = ManagedSharedMemory::open(name)?;
    let second = ManagedSharedMemory::open(name)?;
    for seg in [&first, &second] {
        let rows = seg
            .find::<Mutex<C>>("rows")?
            .expect("the parent constructed it");
        let (forward, backward) = read(&*rows.lock()?);
        tell_parent(&format!(
            "at {:#x} rows {forward} rev {backward}",
            seg.base_address().as_ptr() as usize
        ));
    }
    Ok(())
}

/// Each row's length and sum: `<len>:<sum> ...`.
fn summary<'a>(rows: impl Iterator<Item = &'a Vec<u64>>) -> String {
    let rows: std::vec::Vec<String> = rows
        .map(|row| format!("{}:{}", row.len(), row.iter().sum::<u64>()))
        .collect();
    rows.join(" ")
}

/// After the parent's start signal, pushes `SHMKIT_FROM..SHMKIT_TO` one by one onto the
/// `Mutex<Vec<u64>>` "shared" (a lock per push, racing the parent), then says "done".
fn push(name: &str) -> Result<()> {
    let range = |var: &str| -> u64 { std::env::var(var).expect(var).parse().expect("a number") };
    let seg = ManagedSharedMemory::open(name)?;
    let shared = seg
        .find::<Mutex<Vec<u64>>>("shared")?
        .expect("the parent constructed it");
    tell_parent("ready");
    let mut go = [0u8];
    std::io::stdin()
        .read_exact(&mut go)
        .expect("the start signal");
    for x in range("SHMKIT_FROM")..range("SHMKIT_TO") {
        shared.lock()?.push(x)?;
    }
    tell_parent("done");
    Ok(())
}

/// Reads the parent's `Mutex<HashMap<u64, Vec<u64>>>` "index" through two mappings of its
/// own and reports, per mapping, its base address and each entry's key, length and sum
/// in key order: `at <base> map <key>:<len>:<sum> ...`.
fn read_map(name: &str) -> Result<()> {
    let first = ManagedSharedMemory::open(name)?;
    let second = ManagedSharedMemory::open(name)?;
    for seg in [&first, &second] {
        let index = seg
            .find::<Mutex<HashMap<u64, Vec<u64>>>>("index")?
            .expect("the parent constructed it");
        let index = index.lock()?;
        let mut entries: std::vec::Vec<(u64, usize, u64)> = index
            .iter()
            .map(|(k, v)| (*k, v.len(), v.iter().sum()))
            .collect();
        entries.sort_unstable();
        let summary: std::vec::Vec<String> = entries
            .iter()
            .map(|(k, len, sum)| format!("{k}:{len}:{sum}"))
            .collect();
        tell_parent(&format!(
            "at {:#x} map {}",
            seg.base_address().as_ptr() as usize,
            summary.join(" ")
        ));
    }
    Ok(())
}

/// Reads the parent's `Mutex<Vec<String>>` "names" through two mappings of its own (as
/// `read_rows`) and reports, per mapping, its base address and the names:
/// `at <base> names <name>,<name>,...`.
fn read_strings(name: &str) -> Result<()> {
    let first = ManagedSharedMemory::open(name)?;
    let second = ManagedSharedMemory::open(name)?;
    for seg in [&first, &second] {
        let names = seg
            .find::<Mutex<Vec<ShmString>>>("names")?
            .expect("the parent constructed it");
        let names = names.lock()?;
        let names: std::vec::Vec<&str> = names.iter().map(|n| n.as_str()).collect();
        tell_parent(&format!(
            "at {:#x} names {}",
            seg.base_address().as_ptr() as usize,
            names.join(",")
        ));
    }
    Ok(())
}

/// After the parent's start signal, counts each of `SHMKIT_FROM..SHMKIT_TO` into the
/// `Mutex<HashMap<u64, u64>>` "counts" (under key `x % 50`, and as its own key
/// `1_000_000 + x`), a lock per value, racing the parent; then says "done".
fn count(name: &str) -> Result<()> {
    let range = |var: &str| -> u64 { std::env::var(var).expect(var).parse().expect("a number") };
    let seg = ManagedSharedMemory::open(name)?;
    let counts = seg
        .find::<Mutex<HashMap<u64, u64>>>("counts")?
        .expect("the parent constructed it");
    tell_parent("ready");
    let mut go = [0u8];
    std::io::stdin()
        .read_exact(&mut go)
        .expect("the start signal");
    for x in range("SHMKIT_FROM")..range("SHMKIT_TO") {
        let mut counts = counts.lock()?;
        *counts.entry(x % 50)?.or_insert(0)? += 1;
        counts.insert(1_000_000 + x, x)?;
    }
    tell_parent("done");
    Ok(())
}

/// Makes the `Mutex<Arc<String>>` "copy" share the value of "motto" (a count raised in
/// this process), reports `strong <n> <text>`, then empties "motto" (the parent's handle
/// goes; the value stays with "copy").
fn share_arc(name: &str) -> Result<()> {
    let seg = ManagedSharedMemory::open(name)?;
    let find = |n: &str| {
        seg.find::<Mutex<Arc<ShmString>>>(n)
            .map(|m| m.expect("the parent constructed it"))
    };
    let (motto, copy) = (find("motto")?, find("copy")?);
    let mut motto = motto.lock()?;
    let mut copy = copy.lock()?;
    copy.share(&motto)?;
    tell_parent(&format!(
        "strong {} {}",
        copy.strong_count(),
        copy.get().map_or("", |s| s.as_str())
    ));
    motto.clear();
    Ok(())
}

fn tell_parent(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .expect("stdout");
}
