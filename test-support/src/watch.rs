//! What the watch tests' writer process writes and their watching process checks, so that
//! a torn read of either kind is detectable. (A leaf module: the runtime's child binary
//! compiles it too, see the crate doc.)
//!
//! - Named objects `watched_<n>`: arrays of `u64` whose length and elements derive from
//!   `n`, built in full before they become findable, never changed afterwards.
//! - The root [`Progress`]: a sequence counter and values derived from it, which the one
//!   writer updates seqlock-style with atomics, and the count of objects published.

use std::mem::{align_of, offset_of, size_of};
use std::sync::atomic::{fence, AtomicU64, Ordering};

use shmkit_runtime::{FieldSchema, Schema, SchemaKind, ShmRoot, ShmSafe};

/// The prefix of the writer's object names.
pub const PREFIX: &str = "watched_";

/// The name of object `n`.
pub fn item_name(n: u64) -> String {
    format!("{PREFIX}{n}")
}

/// The number of elements of object `n` (1 to 29).
pub fn item_len(n: u64) -> usize {
    1 + (n % 29) as usize
}

/// Element `j` of object `n`.
pub fn item_value(n: u64, j: usize) -> u64 {
    mix(n << 8 | j as u64)
}

/// Checks that `elements` are what the writer built as `name`; says what differs.
pub fn check_item(name: &str, elements: &[u64]) -> Result<(), String> {
    let n: u64 = name
        .strip_prefix(PREFIX)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("{name:?} is not a name the writer uses"))?;
    if elements.len() != item_len(n) {
        return Err(format!(
            "{name}: {} elements, the writer built {}",
            elements.len(),
            item_len(n)
        ));
    }
    match elements
        .iter()
        .enumerate()
        .find(|&(j, &v)| v != item_value(n, j))
    {
        Some((j, v)) => Err(format!(
            "{name}[{j}] is {v:#x}, the writer built {:#x}",
            item_value(n, j)
        )),
        None => Ok(()),
    }
}

/// The splitmix64 finaliser: a value no partial write of another produces by accident.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The root the writer keeps changing. One writer: `seq` is odd while it changes `count`
/// and `mixed`, and grows by 2 per update, so a consistent snapshot has
/// `count == seq / 2` and `mixed == derived(count)`.
#[repr(C)]
#[derive(Default)]
pub struct Progress {
    seq: AtomicU64,
    count: AtomicU64,
    mixed: AtomicU64,
    /// Objects `watched_0 .. watched_<published>` are built and findable.
    published: AtomicU64,
}

/// One consistent reading of [`Progress`]'s counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub seq: u64,
    pub count: u64,
    pub mixed: u64,
}

impl Snapshot {
    /// Whether the values are those of one update (a torn read mixes two).
    pub fn consistent(&self) -> bool {
        self.seq % 2 == 0 && self.count == self.seq / 2 && self.mixed == derived(self.count)
    }
}

/// The value `mixed` holds along with `count`: 0 for 0 (the root as `Default` built it).
fn derived(count: u64) -> u64 {
    if count == 0 {
        0
    } else {
        mix(count)
    }
}

impl Progress {
    /// One update of the counter and its derived value (the writer's side of the seqlock;
    /// only one process may call it).
    pub fn update(&self) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq + 1, Ordering::Relaxed);
        // Orders the odd `seq` before the data: a reader that sees new data sees it odd.
        fence(Ordering::Release);
        let count = self.count.load(Ordering::Relaxed) + 1;
        self.count.store(count, Ordering::Relaxed);
        self.mixed.store(derived(count), Ordering::Relaxed);
        self.seq.store(seq + 2, Ordering::Release);
    }

    /// The counter as of one update, or None while the writer is in the middle of one
    /// (the reader's side of the seqlock: retry).
    pub fn snapshot(&self) -> Option<Snapshot> {
        let seq = self.seq.load(Ordering::Acquire);
        if seq % 2 == 1 {
            return None;
        }
        let count = self.count.load(Ordering::Relaxed);
        let mixed = self.mixed.load(Ordering::Relaxed);
        // Orders the data reads before the second read of `seq`.
        fence(Ordering::Acquire);
        (self.seq.load(Ordering::Relaxed) == seq).then_some(Snapshot { seq, count, mixed })
    }

    /// Says that objects `0..n` are built.
    pub fn publish(&self, n: u64) {
        self.published.store(n, Ordering::Release);
    }

    /// How many objects are built (all of `watched_0 .. watched_<n>` are findable).
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }
}

/// [`Progress`]'s layout, written by hand: the runtime's tests and child binary cannot use
/// the derive, whose expansion names the `shmkit` facade.
const PROGRESS_SCHEMA: Schema = Schema {
    name: "Progress",
    kind: SchemaKind::Struct,
    size: size_of::<Progress>(),
    align: align_of::<Progress>(),
    fields: &[
        field("seq", offset_of!(Progress, seq)),
        field("count", offset_of!(Progress, count)),
        field("mixed", offset_of!(Progress, mixed)),
        field("published", offset_of!(Progress, published)),
    ],
    variants: &[],
    generics: &[],
};

/// A field of [`Progress`] in its schema.
const fn field(name: &'static str, offset: usize) -> FieldSchema {
    FieldSchema {
        name,
        ty: "AtomicU64",
        offset: Some(offset),
        size: size_of::<AtomicU64>(),
        align: align_of::<AtomicU64>(),
        fingerprint: <AtomicU64 as ShmSafe>::LAYOUT_FINGERPRINT,
    }
}

// SAFETY: `repr(C)`, four `AtomicU64`s and no padding: any bytes are a valid value, with no
// pointer and no drop glue; `relocate` is the default no-op. As the derive does, the type
// is identified by its layout (the parent and the child name it by different paths).
unsafe impl ShmSafe for Progress {
    const ALL_BIT_PATTERNS_VALID: bool = true;
    const SCHEMA: Option<&'static Schema> = Some(&PROGRESS_SCHEMA);
    const LAYOUT_FINGERPRINT: u64 = PROGRESS_SCHEMA.fingerprint();

    fn type_fingerprint() -> u64 {
        Self::LAYOUT_FINGERPRINT
    }
}

impl ShmRoot for Progress {
    const ROOT_NAME: &'static str = "watch_progress";
    const ROOT_SCHEMA: &'static Schema = &PROGRESS_SCHEMA;
}
