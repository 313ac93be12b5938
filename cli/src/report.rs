//! The commands: each builds one serialisable report, printed as JSON (`--json`) or as
//! text from the same report.

use std::fmt::Write as _;
use std::io::Write as _;

use serde::Serialize;
use serde_json::{json, Value as Json};
use shmkit::inspect::{
    Attachments, BlockKind, BlockRun, IndexFigures, IndexShape, LockWord, ObjectReport, Value,
};
use shmkit::os::XsiSharedMemory;
use shmkit::{ManagedMappedFile, ManagedSharedMemory, ManagedXsiSharedMemory, ObjectKind};

use crate::target::{self, Owner, Probed, Target, SHM_DIR};
use crate::Failure;

/// Human-readable bytes: `512 B`, `1 KiB`, `1.5 MiB`.
fn human(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn json_out(out: &mut Vec<u8>, value: &impl Serialize) -> Result<u8, Failure> {
    serde_json::to_writer_pretty(&mut *out, value)
        .map_err(|e| Failure::usage(format!("writing JSON: {e}")))?;
    out.push(b'\n');
    Ok(0)
}

fn owner_text(o: &Owner) -> String {
    format!(
        "owner {} ({})",
        o.id,
        if o.alive { "alive" } else { "dead" }
    )
}

fn kind_name(k: ObjectKind) -> &'static str {
    match k {
        ObjectKind::Named => "named",
        ObjectKind::Unique => "unique",
        ObjectKind::Anonymous => "anonymous",
    }
}

// ----- ls -----------------------------------------------------------------------------------

#[derive(Serialize)]
struct LsRow {
    name: String,
    kind: &'static str,
    path: String,
    size: u64,
    used: u64,
    free: u64,
    objects: u64,
    creator: Owner,
    attached: usize,
    /// The kernel's count of an XSI segment's attachments (those outside shmkit too).
    #[serde(skip_serializing_if = "Option::is_none")]
    attachments: Option<u64>,
    readers: bool,
    writers: bool,
    exclusive: bool,
    version: u32,
    state: &'static str,
}

fn ls_row(p: &Probed) -> Result<LsRow, Failure> {
    let a = p.attachments()?;
    let h = &p.header;
    Ok(LsRow {
        name: p.target.display(),
        kind: p.target.kind(),
        path: p.device.display().to_string(),
        size: h.size,
        used: h.size.saturating_sub(h.free_bytes),
        free: h.free_bytes,
        objects: h.named.saturating_add(h.unique).saturating_add(h.anonymous),
        creator: p.owner(h.creator),
        attached: a.owners.len(),
        attachments: p.xsi.map(|x| x.attachments),
        readers: a.readers,
        writers: a.writers,
        exclusive: a.exclusive,
        version: h.version,
        state: h.state,
    })
}

/// The regular files in /dev/shm, by name.
fn shm_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(SHM_DIR)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The shmkit segments of /dev/shm and of XSI shared memory (others, and those this user
/// cannot read, skipped; XSI companion lock files are empty, so no segment of /dev/shm).
/// Private XSI segments are left out: no key names them, and the runtime opens XSI
/// segments by key.
fn shm_segments() -> Vec<Probed> {
    let xsi = shmkit::inspect::xsi_listed().unwrap_or_default();
    shm_names()
        .into_iter()
        .map(Target::Shm)
        .chain(
            xsi.iter()
                .filter(|s| s.key != 0)
                .map(|s| Target::Xsi(s.key)),
        )
        .filter_map(|t| target::probe(&t).ok())
        .collect()
}

pub fn ls(paths: &[String], json: bool, out: &mut Vec<u8>) -> Result<u8, Failure> {
    let mut code = 0;
    let mut rows = Vec::new();
    for p in shm_segments() {
        rows.push(ls_row(&p)?);
    }
    for arg in paths {
        match Target::parse(arg).and_then(|t| target::probe(&t)) {
            Ok(p) => {
                if !rows
                    .iter()
                    .any(|r| r.path == p.device.display().to_string())
                {
                    rows.push(ls_row(&p)?);
                }
            }
            Err(f) => {
                eprintln!("shmkit: {}", crate::printable(f.message.as_bytes()));
                code = code.max(f.code);
            }
        }
    }
    if json {
        json_out(out, &rows)?;
        return Ok(code);
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<28} {:<4} {:>9} {:>9} {:>9} {:>7}  {:<20} {:>8}  {:<7}",
        "NAME", "KIND", "SIZE", "USED", "FREE", "OBJECTS", "CREATOR", "ATTACHED", "VERSION"
    );
    for r in &rows {
        let attached = format!(
            "{}{}",
            r.attachments.unwrap_or(r.attached as u64),
            if r.readers {
                "+ro"
            } else if r.exclusive {
                "+excl"
            } else {
                ""
            }
        );
        let _ = writeln!(
            s,
            "{:<28} {:<4} {:>9} {:>9} {:>9} {:>7}  {:<20} {:>8}  {}{}",
            r.name,
            r.kind,
            human(r.size),
            human(r.used),
            human(r.free),
            r.objects,
            owner_text(&r.creator),
            attached,
            r.version,
            if r.state == "ready" {
                String::new()
            } else {
                format!(" ({})", r.state)
            }
        );
    }
    out.extend_from_slice(s.as_bytes());
    Ok(code)
}

// ----- stat ---------------------------------------------------------------------------------

#[derive(Serialize)]
struct Locks {
    segment_lock: Option<Owner>,
    segment_lock_poisoned: bool,
    index_lock: Option<Owner>,
    index_lock_poisoned: bool,
}

#[derive(Serialize)]
struct AttachOut {
    owners: Vec<Json>,
    complete: bool,
    readers: bool,
    writers: bool,
    exclusive: bool,
}

#[derive(Serialize)]
struct FreeClassOut {
    up_to: u64,
    blocks: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct UsageOut {
    size: usize,
    managed: usize,
    free_memory: usize,
    cached_memory: usize,
    allocator_free: usize,
    largest_free: usize,
    fragmentation: f64,
    used_blocks: u64,
    free_blocks: u64,
    levels: usize,
    size_classes: usize,
    free_by_class: Vec<FreeClassOut>,
}

#[derive(Serialize)]
struct SlotOut {
    owner: Owner,
    thread: u64,
    cached: u64,
}

#[derive(Serialize)]
struct Index {
    kind: String,
    named: u64,
    unique: u64,
    anonymous: u64,
    type_schemas: u64,
    /// The named and unique indexes' shapes (None when the contents were not read).
    load: Option<IndexLoadOut>,
}

#[derive(Serialize)]
struct IndexLoadOut {
    named: IndexFiguresOut,
    unique: IndexFiguresOut,
}

/// One index: a hash table's buckets and load factor, or a tree's depth.
#[derive(Serialize)]
struct IndexFiguresOut {
    objects: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    buckets: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    load_factor: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    depth: Option<u64>,
}

impl IndexFiguresOut {
    fn of(f: &IndexFigures) -> Self {
        let (buckets, depth) = match f.shape {
            IndexShape::Table { buckets } => (Some(buckets), None),
            IndexShape::Tree { depth } => (None, Some(depth)),
            _ => (None, None),
        };
        IndexFiguresOut {
            objects: f.objects,
            buckets,
            load_factor: f.load_factor().map(|l| (l * 1000.0).round() / 1000.0),
            depth,
        }
    }

    /// `N objects, B buckets (load L)`, `N objects, depth D`, or `N objects`.
    fn text(&self) -> String {
        let mut t = format!("{} object(s)", self.objects);
        if let Some(b) = self.buckets {
            let _ = write!(t, ", {b} bucket(s)");
        }
        if let Some(l) = self.load_factor {
            let _ = write!(t, " (load {l:.3})");
        }
        if let Some(d) = self.depth {
            let _ = write!(t, ", depth {d}");
        }
        t
    }
}

#[derive(Serialize)]
struct Stat {
    segment: String,
    kind: &'static str,
    path: String,
    version: u32,
    state: &'static str,
    size: u64,
    device_size: u64,
    pointer_width: u32,
    creator: Owner,
    attached: AttachOut,
    /// The kernel's count of an XSI segment's attachments (those outside shmkit too).
    #[serde(skip_serializing_if = "Option::is_none")]
    attachments: Option<u64>,
    locks: Locks,
    index: Index,
    /// The memory algorithm the segment was made with.
    algorithm: String,
    thread_caches: bool,
    mapped_as: Option<&'static str>,
    not_read: Option<String>,
    usage: Option<UsageOut>,
    cache_slots: Vec<SlotOut>,
    user_locks: Vec<UserLock>,
}

fn lock_owner(p: &Probed, w: LockWord) -> Option<Owner> {
    w.holder().map(|id| p.owner(id))
}

/// A lock's state as text: `free`, `poisoned` or `held by owner N (alive|dead)`.
fn lock_state(holder: Option<&Owner>, poisoned: bool) -> String {
    match (holder, poisoned) {
        (_, true) => "poisoned".into(),
        (Some(o), _) => format!("held by {}", owner_text(o)),
        (None, _) => "free".into(),
    }
}

fn lock_text(p: &Probed, w: LockWord) -> String {
    lock_state(lock_owner(p, w).as_ref(), w == LockWord::Poisoned)
}

/// A lock in the segment's objects (a `Mutex` the schemas describe), for `stat`.
#[derive(Serialize)]
struct UserLock {
    /// The object's name and the fields down to the lock: `config.jobs`, `[2]`.
    path: String,
    holder: Option<Owner>,
    poisoned: bool,
}

/// The locks in `v` (the value at `path`), depth first.
fn user_locks(p: &Probed, path: &str, v: &Value, out: &mut Vec<UserLock>) {
    match v {
        Value::Lock(w) => out.push(UserLock {
            path: path.to_string(),
            holder: lock_owner(p, *w),
            poisoned: *w == LockWord::Poisoned,
        }),
        Value::Struct(fields) | Value::Enum { fields, .. } => {
            for (k, v) in fields {
                user_locks(p, &format!("{path}.{k}"), v, out);
            }
        }
        Value::Array { elements, .. } => {
            for (i, v) in elements.iter().enumerate() {
                user_locks(p, &format!("{path}[{i}]"), v, out);
            }
        }
        _ => {}
    }
}

fn attach_out(a: &Attachments) -> AttachOut {
    AttachOut {
        owners: a
            .owners
            .iter()
            .map(|o| json!({"id": o.id, "vouched": o.vouched}))
            .collect(),
        complete: a.complete,
        readers: a.readers,
        writers: a.writers,
        exclusive: a.exclusive,
    }
}

pub fn stat(t: &Target, json: bool, out: &mut Vec<u8>) -> Result<u8, Failure> {
    let p = target::probe(t)?;
    let h = &p.header;
    let a = p.attachments()?;
    let mut report = Stat {
        segment: t.display(),
        kind: t.kind(),
        path: p.device.display().to_string(),
        version: h.version,
        state: h.state,
        size: h.size,
        device_size: h.device_size,
        pointer_width: h.pointer_width,
        creator: p.owner(h.creator),
        attached: attach_out(&a),
        attachments: p.xsi.map(|x| x.attachments),
        locks: Locks {
            segment_lock: lock_owner(&p, h.segment_lock),
            segment_lock_poisoned: h.segment_lock == LockWord::Poisoned,
            index_lock: lock_owner(&p, h.index_lock),
            index_lock_poisoned: h.index_lock == LockWord::Poisoned,
        },
        index: Index {
            kind: h.index_name.clone(),
            named: h.named,
            unique: h.unique,
            anonymous: h.anonymous,
            load: None,
            type_schemas: h.type_schemas,
        },
        algorithm: h.algorithm_name.clone(),
        thread_caches: h.thread_caches,
        mapped_as: None,
        not_read: None,
        usage: None,
        cache_slots: Vec::new(),
        user_locks: Vec::new(),
    };
    // The report is printed either way: the status says whether the bytes are sound.
    let mut code = 0;
    match target::open(&p) {
        Err(f) => {
            let why = p.unreadable();
            if f.code == 1 && why.is_none() {
                code = 1;
            }
            report.not_read = Some(why.unwrap_or(f.message));
        }
        Ok(view) => {
            report.mapped_as = Some(view.mode());
            let u = view.usage().map_err(Failure::from_open)?;
            report.usage = Some(UsageOut {
                size: u.size,
                managed: u.algorithm.managed,
                free_memory: u.free_memory,
                cached_memory: u.cached_memory,
                allocator_free: u.algorithm.free,
                largest_free: u.algorithm.largest_free,
                fragmentation: (u.fragmentation * 1000.0).round() / 1000.0,
                used_blocks: u.used_blocks,
                free_blocks: u.free_blocks,
                levels: u.algorithm.levels,
                size_classes: u.algorithm.size_classes,
                free_by_class: u
                    .free_classes
                    .iter()
                    .map(|c| FreeClassOut {
                        up_to: c.up_to,
                        blocks: c.blocks,
                        bytes: c.bytes,
                    })
                    .collect(),
            });
            let load = view.index_load().map_err(Failure::from_open)?;
            report.index.load = Some(IndexLoadOut {
                named: IndexFiguresOut::of(&load.named),
                unique: IndexFiguresOut::of(&load.unique),
            });
            report.cache_slots = view
                .cache_slots()
                .map_err(Failure::from_open)?
                .iter()
                .map(|s| SlotOut {
                    owner: p.owner(s.owner),
                    thread: s.thread,
                    cached: s.cached,
                })
                .collect();
            for o in view.objects().map_err(Failure::from_open)? {
                user_locks(&p, &o.name, &o.value, &mut report.user_locks);
            }
        }
    }
    if json {
        json_out(out, &report)?;
        return Ok(code);
    }
    let r = &report;
    let mut s = String::new();
    let _ = writeln!(s, "segment    {} ({}, {})", r.segment, r.kind, r.path);
    let _ = writeln!(
        s,
        "header     format {}, {}, {}-bit, size {} (device {})",
        r.version,
        r.state,
        r.pointer_width,
        human(r.size),
        human(r.device_size)
    );
    let _ = writeln!(s, "creator    {}", owner_text(&r.creator));
    let owners: Vec<String> = a
        .owners
        .iter()
        .map(|o| format!("{}{}", o.id, if o.vouched { " (trusted)" } else { "" }))
        .collect();
    let _ = writeln!(
        s,
        "attached   {} owner(s){}{}{}{}{}",
        a.owners.len(),
        if owners.is_empty() {
            String::new()
        } else {
            format!(": {}", owners.join(", "))
        },
        if a.writers {
            "; read-write mappings"
        } else {
            ""
        },
        if a.readers {
            "; read-only mappings"
        } else {
            ""
        },
        if a.exclusive {
            "; held exclusively"
        } else {
            ""
        },
        if a.complete { "" } else { "; more not listed" }
    );
    if let Some(n) = r.attachments {
        let _ = writeln!(s, "           {n} attachment(s), as the kernel counts them");
    }
    let locks: Vec<String> = [
        (
            "segment lock",
            &r.locks.segment_lock,
            r.locks.segment_lock_poisoned,
        ),
        (
            "index lock",
            &r.locks.index_lock,
            r.locks.index_lock_poisoned,
        ),
    ]
    .into_iter()
    .map(|(name, owner, poisoned)| format!("{name} {}", lock_state(owner.as_ref(), poisoned)))
    .collect();
    let _ = writeln!(s, "locks      {}", locks.join("; "));
    for l in &r.user_locks {
        let state = lock_state(l.holder.as_ref(), l.poisoned);
        let _ = writeln!(s, "user lock  {} {state}", l.path);
    }
    let _ = writeln!(
        s,
        "objects    {} named, {} unique, {} anonymous, {} type schemas; {}",
        r.index.named, r.index.unique, r.index.anonymous, r.index.type_schemas, r.index.kind
    );
    if let Some(l) = &r.index.load {
        let _ = writeln!(
            s,
            "index      named: {}; unique: {}",
            l.named.text(),
            l.unique.text()
        );
    }
    if let Some(why) = &r.not_read {
        let _ = writeln!(s, "contents   not read: {why}");
    }
    if let Some(u) = &r.usage {
        let _ = writeln!(
            s,
            "memory     {} managed, {} free ({} in thread caches), largest free block {}",
            human(u.managed as u64),
            human(u.free_memory as u64),
            human(u.cached_memory as u64),
            human(u.largest_free as u64)
        );
        let _ = writeln!(
            s,
            "blocks     {} used, {} free; fragmentation {:.1}%",
            u.used_blocks,
            u.free_blocks,
            u.fragmentation * 100.0
        );
        let classes: Vec<String> = u
            .free_by_class
            .iter()
            .map(|c| format!("<={}: {}", human(c.up_to), c.blocks))
            .collect();
        let _ = writeln!(
            s,
            "free by size  {}",
            if classes.is_empty() {
                "none".to_string()
            } else {
                classes.join(", ")
            }
        );
        let _ = writeln!(
            s,
            "allocator  {}, {} levels, {} size classes",
            r.algorithm, u.levels, u.size_classes
        );
    }
    if r.thread_caches {
        let _ = writeln!(s, "caches     {} slot(s) in use", r.cache_slots.len());
        for slot in &r.cache_slots {
            let _ = writeln!(
                s,
                "  thread {} of {}: {} cached",
                slot.thread,
                owner_text(&slot.owner),
                human(slot.cached)
            );
        }
    } else {
        let _ = writeln!(s, "caches     none (segments under 16 MiB have none)");
    }
    if let Some(m) = r.mapped_as {
        let _ = writeln!(s, "read by    a {m} mapping");
    }
    out.extend_from_slice(s.as_bytes());
    Ok(code)
}

// ----- check --------------------------------------------------------------------------------

pub fn check(t: &Target, out: &mut Vec<u8>) -> Result<u8, Failure> {
    let p = match target::probe(t) {
        Ok(p) => p,
        Err(f) if f.code == 1 => {
            let _ = writeln!(out, "{}: not sound: {}", t.display(), f.message);
            return Ok(1);
        }
        Err(f) => return Err(f),
    };
    let view = match target::open(&p) {
        Ok(v) => v,
        Err(f) if f.code == 1 => {
            let _ = writeln!(out, "{}: not sound: {}", t.display(), f.message);
            return Ok(1);
        }
        Err(f) => return Err(f),
    };
    match view.check() {
        Ok(()) => {
            let _ = writeln!(
                out,
                "{}: ok (allocator, thread caches and {} objects checked)",
                t.display(),
                p.header
                    .named
                    .saturating_add(p.header.unique)
                    .saturating_add(p.header.anonymous)
            );
            Ok(0)
        }
        Err(e) => {
            let _ = writeln!(out, "{}: not sound: {e}", t.display());
            Ok(1)
        }
    }
}

// ----- dump ---------------------------------------------------------------------------------

/// A rendered value as JSON: numbers, booleans, strings (a `String`'s text too), objects
/// for structs (fields in order), arrays (a `Vec`'s, a `List`'s), arrays of `[key, value]`
/// pairs (maps; `{"entries", "length"}` when truncated, as arrays); a lock is `{"lock":
/// holder or null, "alive": …, "poisoned": …}` (its holder's liveness asked of `p`); what
/// is not rendered is `{"opaque": type, "size": bytes}`.
fn value_json(p: &Probed, v: &Value) -> Json {
    match v {
        Value::Unsigned(n) => json!(n),
        Value::Signed(n) => json!(n),
        Value::Float(x) if x.is_finite() => json!(x),
        Value::Float(x) => json!(x.to_string()),
        Value::Bool(b) => json!(b),
        Value::Char(c) => json!(c.to_string()),
        Value::Invalid(why) => json!({ "invalid": why }),
        Value::Struct(fields) => fields_json(p, fields),
        Value::Array { elements, length } if elements.len() == *length => {
            Json::Array(elements.iter().map(|e| value_json(p, e)).collect())
        }
        Value::Array { elements, length } => json!({
            "elements": elements.iter().map(|e| value_json(p, e)).collect::<Vec<_>>(),
            "length": length,
        }),
        Value::Enum { variant, fields } if fields.is_empty() => json!(variant),
        Value::Enum { variant, fields } => json!({ variant.as_str(): fields_json(p, fields) }),
        Value::Text(text) => json!(text),
        Value::Map { entries, length } => {
            let pairs: Vec<Json> = entries
                .iter()
                .map(|(k, v)| json!([value_json(p, k), value_json(p, v)]))
                .collect();
            if pairs.len() == *length {
                Json::Array(pairs)
            } else {
                json!({ "entries": pairs, "length": length })
            }
        }
        Value::Lock(w) => {
            let holder = lock_owner(p, *w);
            json!({
                "lock": holder.map(|o| o.id),
                "alive": holder.map(|o| o.alive),
                "poisoned": *w == LockWord::Poisoned,
            })
        }
        Value::Opaque { ty, size } => json!({ "opaque": ty, "size": size }),
        _ => json!(null),
    }
}

/// A struct's or variant's fields as a JSON object, in order.
fn fields_json(p: &Probed, fields: &[(String, Value)]) -> Json {
    Json::Object(
        fields
            .iter()
            .map(|(k, v)| (k.clone(), value_json(p, v)))
            .collect(),
    )
}

/// A struct's or variant's fields as text: `{ a: 1, b: 2 }`.
fn fields_text(p: &Probed, fields: &[(String, Value)]) -> String {
    let inner: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k}: {}", value_text(p, v)))
        .collect();
    format!("{{ {} }}", inner.join(", "))
}

/// What follows the `shown` of `length` elements or entries: `, … N more` when some are
/// left out.
fn more(shown: usize, length: usize) -> String {
    if shown < length {
        format!(", … {} more", length - shown)
    } else {
        String::new()
    }
}

/// A rendered value as text (a lock's holder with its liveness, asked of `p`).
fn value_text(p: &Probed, v: &Value) -> String {
    match v {
        Value::Unsigned(n) => n.to_string(),
        Value::Signed(n) => n.to_string(),
        Value::Float(x) => format!("{x:?}"),
        Value::Bool(b) => b.to_string(),
        Value::Char(c) => format!("{c:?}"),
        Value::Invalid(why) => format!("<invalid: {why}>"),
        Value::Struct(fields) => fields_text(p, fields),
        Value::Enum { variant, fields } if fields.is_empty() => variant.clone(),
        Value::Enum { variant, fields } => format!("{variant} {}", fields_text(p, fields)),
        Value::Text(text) => format!("{text:?}"),
        Value::Map { entries, length } => {
            let inner: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}: {}", value_text(p, k), value_text(p, v)))
                .collect();
            format!("{{{}{}}}", inner.join(", "), more(entries.len(), *length))
        }
        Value::Lock(w) => format!("<lock {}>", lock_text(p, *w)),
        Value::Array { elements, length } => {
            let inner: Vec<String> = elements.iter().map(|e| value_text(p, e)).collect();
            format!("[{}{}]", inner.join(", "), more(elements.len(), *length))
        }
        Value::Opaque { ty, size } => format!("<{ty}, {size} bytes: not described>"),
        _ => "<?>".into(),
    }
}

#[derive(Serialize)]
struct FieldOut {
    name: String,
    ty: String,
    offset: Option<usize>,
    size: usize,
}

#[derive(Serialize)]
struct SchemaOut {
    kind: String,
    name: String,
    size: usize,
    align: usize,
    fingerprint: String,
    fields: Vec<FieldOut>,
}

#[derive(Serialize)]
struct ObjectOut {
    name: String,
    kind: &'static str,
    length: usize,
    offset: u64,
    bytes: u64,
    type_name: String,
    root: Option<String>,
    schema: Option<SchemaOut>,
    value: Json,
}

/// A type schema the segment stores (in a table of its own, not an object).
#[derive(Serialize)]
struct TypeSchemaOut {
    key: String,
    offset: u64,
    text: String,
}

#[derive(Serialize)]
struct Dump {
    segment: String,
    objects: Vec<ObjectOut>,
    /// In a dump of every object only (one object's dump has its own schema).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    type_schemas: Vec<TypeSchemaOut>,
}

/// The stored schema a `__shmkit_schema::N` object (a root's) holds, as text (its bytes
/// are UTF-8 when sound), for the dump instead of a list of bytes.
fn schema_text(o: &ObjectReport) -> Option<String> {
    if !o.name.starts_with("__shmkit_schema::") {
        return None;
    }
    let Value::Array { elements, length } = &o.value else {
        return None;
    };
    if elements.len() != *length {
        return Some(format!("(a stored schema of {length} bytes)"));
    }
    let bytes: Option<Vec<u8>> = elements
        .iter()
        .map(|v| match v {
            Value::Unsigned(b) => u8::try_from(*b).ok(),
            _ => None,
        })
        .collect();
    bytes.map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn object_out(p: &Probed, o: &ObjectReport) -> ObjectOut {
    ObjectOut {
        name: o.name.clone(),
        kind: kind_name(o.kind),
        length: o.length,
        offset: o.offset,
        bytes: o.bytes,
        type_name: o.type_name.clone(),
        root: o.root.clone(),
        schema: o.schema.as_ref().map(|s| SchemaOut {
            kind: s.kind.clone(),
            name: s.name.clone(),
            size: s.size,
            align: s.align,
            fingerprint: format!("{:016x}", s.fingerprint),
            fields: s
                .fields
                .iter()
                .map(|f| FieldOut {
                    name: f.name.clone(),
                    ty: f.ty.clone(),
                    offset: f.offset,
                    size: f.size,
                })
                .collect(),
        }),
        value: schema_text(o).map_or_else(|| value_json(p, &o.value), Json::String),
    }
}

/// Whether `o` is what the user asked for: its name, or a root's name alone.
fn selected(o: &ObjectReport, wanted: Option<&str>) -> bool {
    wanted.is_none_or(|w| o.name == w || o.root.as_deref() == Some(w))
}

pub fn dump(
    t: &Target,
    object: Option<&str>,
    json: bool,
    out: &mut Vec<u8>,
) -> Result<u8, Failure> {
    let p = target::probe(t)?;
    let view = target::open(&p)?;
    let objects = view.objects().map_err(Failure::from_open)?;
    let chosen: Vec<&ObjectReport> = objects.iter().filter(|o| selected(o, object)).collect();
    if let (Some(name), true) = (object, chosen.is_empty()) {
        return Err(Failure::usage(format!(
            "{}: no object named `{name}`",
            t.display()
        )));
    }
    if json {
        let type_schemas = match object {
            None => view.type_schemas().map_err(Failure::from_open)?,
            Some(_) => Vec::new(),
        };
        let report = Dump {
            segment: t.display(),
            objects: chosen.iter().map(|o| object_out(&p, o)).collect(),
            type_schemas: type_schemas
                .into_iter()
                .map(|t| TypeSchemaOut {
                    text: String::from_utf8_lossy(&t.bytes).into_owned(),
                    key: t.key,
                    offset: t.offset,
                })
                .collect(),
        };
        return json_out(out, &report);
    }
    let mut s = String::new();
    for o in chosen {
        let label = match (&o.root, o.kind) {
            (Some(root), _) => format!("root {root}"),
            (None, ObjectKind::Anonymous) => "(anonymous)".to_string(),
            (None, _) => o.name.clone(),
        };
        let _ = writeln!(
            s,
            "{label}  [{}, {} x {}, {} at offset {:#x}]",
            kind_name(o.kind),
            o.length,
            o.type_name,
            human(o.bytes),
            o.offset
        );
        if let Some(schema) = &o.schema {
            let _ = writeln!(
                s,
                "  schema: {} {} (size {}, align {}, fingerprint {:016x})",
                schema.kind, schema.name, schema.size, schema.align, schema.fingerprint
            );
        }
        match &o.value {
            _ if schema_text(o).is_some() => {
                let root = o.name.trim_start_matches("__shmkit_schema::");
                let _ = writeln!(s, "  = (the stored schema of root {root})");
            }
            Value::Struct(fields) => {
                for (k, v) in fields {
                    let _ = writeln!(s, "  {k} = {}", value_text(&p, v));
                }
            }
            v => {
                let _ = writeln!(s, "  = {}", value_text(&p, v));
            }
        }
    }
    out.extend_from_slice(s.as_bytes());
    Ok(0)
}

// ----- map ----------------------------------------------------------------------------------

fn block_char(k: BlockKind) -> char {
    match k {
        BlockKind::Free => '.',
        BlockKind::Used => '#',
        BlockKind::Cached => 'c',
        BlockKind::Object => 'o',
        BlockKind::Internal => '=',
        _ => '?',
    }
}

fn block_name(k: BlockKind) -> &'static str {
    match k {
        BlockKind::Free => "free",
        BlockKind::Used => "used",
        BlockKind::Cached => "cached",
        BlockKind::Object => "object",
        BlockKind::Internal => "internal",
        _ => "other",
    }
}

/// The picture: each cell is `cell` bytes; a cell all of one kind shows its character,
/// one where free and used memory meet shows `:` (fragmentation at a glance).
fn picture(blocks: &[BlockRun], start: u64, cell: u64, cells: usize) -> Vec<char> {
    let mut pic = Vec::with_capacity(cells);
    let mut i = 0;
    for c in 0..cells as u64 {
        let (from, to) = (start + c * cell, start + (c + 1) * cell);
        while i < blocks.len() && blocks[i].offset + blocks[i].size <= from {
            i += 1;
        }
        let mut kinds = Vec::new();
        let mut j = i;
        while j < blocks.len() && blocks[j].offset < to {
            if !kinds.contains(&blocks[j].kind) {
                kinds.push(blocks[j].kind);
            }
            j += 1;
        }
        pic.push(match kinds.as_slice() {
            [] => ' ',
            [k] => block_char(*k),
            ks if ks.contains(&BlockKind::Free) => ':',
            ks => block_char(
                *ks.iter()
                    .find(|k| **k != BlockKind::Used)
                    .unwrap_or(&BlockKind::Used),
            ),
        });
    }
    pic
}

pub fn map(
    t: &Target,
    width: usize,
    lines: usize,
    runs: bool,
    out: &mut Vec<u8>,
) -> Result<u8, Failure> {
    if width == 0 || lines == 0 {
        return Err(Failure::usage(
            "--width and --lines must be at least 1".into(),
        ));
    }
    let p = target::probe(t)?;
    let view = target::open(&p)?;
    let blocks = view.blocks().map_err(Failure::from_open)?;
    let (Some(first), Some(last)) = (blocks.first(), blocks.last()) else {
        let _ = writeln!(out, "{}: no blocks", t.display());
        return Ok(0);
    };
    let (start, mut end) = (first.offset, last.offset + last.size);
    // A free tail larger than what comes before it is said, not drawn: the picture then
    // shows the part where blocks are.
    let tail = blocks
        .iter()
        .rev()
        .take_while(|b| b.kind == BlockKind::Free)
        .map(|b| b.size)
        .sum::<u64>();
    if tail > (end - start - tail).max(1) {
        end -= tail;
    }
    // Figures from the command line: a product past `usize` means "as many as it takes".
    let cells = width.saturating_mul(lines);
    let cell = (end - start)
        .div_ceil(cells as u64)
        .next_multiple_of(8)
        .max(8);
    let cells = (end - start).div_ceil(cell).min(cells as u64) as usize;
    let pic = picture(&blocks, start, cell, cells);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: blocks from offset {start:#x} to {end:#x} ({}), one cell = {}",
        t.display(),
        human(end - start),
        human(cell)
    );
    for (n, row) in pic.chunks(width).enumerate() {
        let line: String = row.iter().collect();
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let _ = writeln!(s, "{:>8x} |{line}", start + (n * width) as u64 * cell);
    }
    if end < last.offset + last.size {
        let _ = writeln!(
            s,
            "{:>8x} |then {} free to the end",
            end,
            human(last.offset + last.size - end)
        );
    }
    let mut totals: Vec<(BlockKind, u64, u64)> = Vec::new();
    for b in &blocks {
        match totals.iter_mut().find(|(k, _, _)| *k == b.kind) {
            Some(t) => {
                t.1 += 1;
                t.2 += b.size;
            }
            None => totals.push((b.kind, 1, b.size)),
        }
    }
    let legend: Vec<String> = totals
        .iter()
        .map(|(k, n, bytes)| {
            format!(
                "{} {} {n} ({})",
                block_char(*k),
                block_name(*k),
                human(*bytes)
            )
        })
        .collect();
    let _ = writeln!(
        s,
        "legend: {}; : free and used in one cell",
        legend.join(", ")
    );
    if runs {
        let mut i = 0;
        while i < blocks.len() {
            let kind = blocks[i].kind;
            let (from, mut bytes, mut n) = (blocks[i].offset, 0, 0);
            while i < blocks.len() && blocks[i].kind == kind {
                bytes += blocks[i].size;
                n += 1;
                i += 1;
            }
            let _ = writeln!(
                s,
                "{from:>10x}  {:<8} {n:>5} block(s) {}",
                block_name(kind),
                human(bytes)
            );
        }
    }
    out.extend_from_slice(s.as_bytes());
    Ok(0)
}

// ----- rm and gc ----------------------------------------------------------------------------

/// Whether `p`'s name still leads to the device that was probed (not one removed and
/// created anew, or replaced by another file, since).
fn same_device(p: &Probed) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (std::fs::metadata(&p.device), p.file.metadata()) {
        (Ok(now), Ok(then)) => now.dev() == then.dev() && now.ino() == then.ino(),
        _ => false,
    }
}

/// Removes the probed segment by its name, if the name still leads to it: what was judged
/// (a shmkit segment; for `gc`, an abandoned one) is what goes. (Between this look and the
/// unlink a replacement can still slip in: the kernel removes by name only.)
fn remove(p: &Probed) -> Result<(), Failure> {
    if !same_device(p) {
        return Err(Failure::usage(format!(
            "{}: removed or replaced since it was examined; not removed",
            p.target.display()
        )));
    }
    let removed = match &p.target {
        Target::Shm(name) => ManagedSharedMemory::remove(name.as_str()),
        Target::File(path) => ManagedMappedFile::remove(path),
        // By id: the key may have been reused since the probe only if the segment was
        // removed, and then its id is gone too ("already gone").
        Target::Xsi(_) => match p.xsi {
            Some(seg) => ManagedXsiSharedMemory::remove_id(seg.id),
            None => Ok(false),
        },
    }
    .map_err(Failure::runtime)?;
    if removed {
        Ok(())
    } else {
        Err(Failure::usage(format!(
            "{}: already gone",
            p.target.display()
        )))
    }
}

pub fn rm(segments: &[String], out: &mut Vec<u8>) -> Result<u8, Failure> {
    let mut code = 0;
    for arg in segments {
        let result = Target::parse(arg)
            .and_then(|t| target::probe(&t))
            .and_then(|p| {
                let attached = p.attachments()?;
                remove(&p)?;
                Ok((p.target, attached))
            });
        match result {
            Ok((t, a)) if a.nobody() => {
                let _ = writeln!(out, "removed {}", t.display());
            }
            Ok((t, a)) => {
                let _ = writeln!(
                    out,
                    "removed {} ({} owner(s) still attached keep their memory until they unmap)",
                    t.display(),
                    a.owners.len()
                );
            }
            Err(f) => {
                let _ = std::io::stdout().write_all(crate::printable(out).as_bytes());
                out.clear();
                eprintln!(
                    "shmkit: {}{}",
                    crate::printable(f.message.as_bytes()),
                    if f.code == 1 { " (not removed)" } else { "" }
                );
                code = code.max(f.code);
            }
        }
    }
    Ok(code)
}

/// Whether nobody can still use the segment: nothing attached and its creator dead. An XSI
/// segment also needs the kernel's attachment count at 0, asked now: attachments made
/// outside shmkit hold no lock on its companion.
fn abandoned(p: &Probed) -> Result<bool, Failure> {
    let a = p.attachments()?;
    let finished = matches!(p.header.state, "ready" | "corrupted");
    let unattached = match p.xsi {
        Some(seg) => XsiSharedMemory::stat_id(seg.id)
            .map_err(Failure::runtime)?
            .is_some_and(|st| st.attachments == 0),
        None => true,
    };
    Ok(finished && unattached && a.nobody() && !p.alive(p.header.creator))
}

pub fn gc(yes: bool, only: &[String], out: &mut Vec<u8>) -> Result<u8, Failure> {
    let mut code = 0;
    let mut found = 0;
    let candidates = if only.is_empty() {
        shm_segments()
    } else {
        let mut probed = Vec::new();
        for arg in only {
            match Target::parse(arg).and_then(|t| target::probe(&t)) {
                Ok(p) => probed.push(p),
                Err(f) => {
                    eprintln!("shmkit: {}", crate::printable(f.message.as_bytes()));
                    code = code.max(f.code);
                }
            }
        }
        probed
    };
    for p in candidates {
        if !abandoned(&p)? {
            continue;
        }
        found += 1;
        let what = format!(
            "{} ({}, creator owner {} dead, nothing attached)",
            p.target.display(),
            human(p.header.size),
            p.header.creator
        );
        if !yes {
            let _ = writeln!(out, "abandoned {what}");
            continue;
        }
        // Look again just before removing: a process may have attached meanwhile.
        match abandoned(&p).and_then(|again| {
            if again {
                remove(&p).map(|()| true)
            } else {
                Ok(false)
            }
        }) {
            Ok(true) => {
                let _ = writeln!(out, "removed {what}");
            }
            Ok(false) => {
                let _ = writeln!(
                    out,
                    "kept {} (a process attached meanwhile)",
                    p.target.display()
                );
            }
            Err(f) => {
                eprintln!("shmkit: {}", crate::printable(f.message.as_bytes()));
                code = code.max(f.code);
            }
        }
    }
    if found == 0 {
        let _ = writeln!(out, "no abandoned segments");
    } else if !yes {
        let _ = writeln!(out, "{found} abandoned; `shmkit gc --yes` removes them");
    }
    Ok(code)
}
