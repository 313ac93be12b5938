//! The one table of std types that cannot live in a segment and what replaces each: the
//! derive's rejection messages and `#[shm_segment]`'s rewriting both read it.

use syn::TypePath;

/// A std type that cannot live in shared memory.
pub struct StdType {
    /// Its name: the last segment of its path (`Vec` in `std::vec::Vec<T>`).
    pub name: &'static str,
    /// What to use instead.
    pub replacement: Replacement,
}

/// What replaces a std type in a segment.
pub enum Replacement {
    /// A segment container of shmkit with the same role, which `#[shm_segment]` rewrites the
    /// std type into; `otherwise` is the other advice.
    Container {
        name: &'static str,
        otherwise: &'static str,
    },
    /// No drop-in counterpart: what to use instead, in words.
    Advice(&'static str),
}

/// A segment container that shmkit has.
const fn available(name: &'static str, otherwise: &'static str) -> Replacement {
    Replacement::Container { name, otherwise }
}

const CELLS: &str =
    "atomics (`AtomicU32`, `AtomicU64`, …) or the segment's robust `Mutex` (shmkit sync)";
const LOCKS: &str = "the segment's process-shared robust `Mutex`/`RwLock`/`Condvar` (shmkit \
                     sync); std's only work within one process";
const OS_HANDLES: &str = "an identifier the processes agree on (a path, a port number): OS \
                          handles are per process";
const TEXT: &str = "the segment `String` (shmkit containers), or a fixed-size `[u8; N]` buffer";

/// Names of std types that shmkit has a type of its own by (`shmkit::sync::Mutex`): spelled
/// bare they are taken for shmkit's (imported with `use`), and if they are std's after all,
/// the field's `ShmSafe` bound refuses them.
const SHMKIT_HAS: &[&str] = &["Mutex", "RwLock", "Condvar"];

/// Every std type the macros know, with its replacement.
pub const TABLE: &[StdType] = &[
    t(
        "Box",
        available(
            "Box",
            "an `OffsetPtr<T>` to a value allocated in the segment",
        ),
    ),
    t("Vec", available("Vec", "a fixed-size array `[T; N]`")),
    t(
        "String",
        available("String", "a fixed-size `[u8; N]` buffer"),
    ),
    t("Rc", available("Arc", "an `OffsetPtr<T>`")),
    t("Arc", available("Arc", "an `OffsetPtr<T>`")),
    t("Weak", available("Weak", "an `OffsetPtr<T>`")),
    t(
        "HashMap",
        available("HashMap", "a fixed-size array of pairs"),
    ),
    t("HashSet", available("HashSet", "a fixed-size array")),
    t("BTreeSet", available("Set", "a fixed-size array")),
    t("BTreeMap", available("Map", "a fixed-size array of pairs")),
    t("LinkedList", available("List", "`OffsetPtr<T>` links")),
    t(
        "VecDeque",
        available("Deque", "a fixed-size ring buffer `[T; N]`"),
    ),
    t(
        "BinaryHeap",
        Replacement::Advice("the segment `Vec` (shmkit containers) kept as a heap"),
    ),
    t("Cell", Replacement::Advice(CELLS)),
    t("RefCell", Replacement::Advice(CELLS)),
    t("UnsafeCell", Replacement::Advice(CELLS)),
    t("OnceCell", Replacement::Advice(CELLS)),
    t("Mutex", Replacement::Advice(LOCKS)),
    t("RwLock", Replacement::Advice(LOCKS)),
    t("Condvar", Replacement::Advice(LOCKS)),
    t("Barrier", Replacement::Advice(LOCKS)),
    t("Once", Replacement::Advice(LOCKS)),
    t("OnceLock", Replacement::Advice(LOCKS)),
    t("LazyLock", Replacement::Advice(LOCKS)),
    t(
        "NonNull",
        Replacement::Advice("`OffsetPtr<T>` (a self-relative pointer into the segment)"),
    ),
    t("CString", Replacement::Advice(TEXT)),
    t("OsString", Replacement::Advice(TEXT)),
    t("PathBuf", Replacement::Advice(TEXT)),
    t("File", Replacement::Advice(OS_HANDLES)),
    t("TcpStream", Replacement::Advice(OS_HANDLES)),
    t("TcpListener", Replacement::Advice(OS_HANDLES)),
    t("UdpSocket", Replacement::Advice(OS_HANDLES)),
    t("Thread", Replacement::Advice(OS_HANDLES)),
    t("JoinHandle", Replacement::Advice(OS_HANDLES)),
];

const fn t(name: &'static str, replacement: Replacement) -> StdType {
    StdType { name, replacement }
}

impl StdType {
    /// The replacement, in words, for the derive's rejection message.
    pub fn advice(&self) -> String {
        match &self.replacement {
            Replacement::Container { name, otherwise } => {
                format!("the segment `{name}` (shmkit containers), or {otherwise}")
            }
            Replacement::Advice(advice) => (*advice).to_string(),
        }
    }
}

/// What the derive refuses: the std type [`lookup`] finds, unless it is spelled bare and
/// has a segment container. A bare `Vec<u64>` is then taken for the segment
/// `Vec` imported with `use`, as the names in [`SHMKIT_HAS`] are; if it is std's after all,
/// the field's `ShmSafe` bound refuses it. `std::vec::Vec<u64>` is refused here.
pub fn refused(p: &TypePath) -> Option<&'static StdType> {
    let std = lookup(p)?;
    let bare = p.path.segments.len() == 1 && p.path.leading_colon.is_none();
    match std.replacement {
        Replacement::Container { .. } if bare => None,
        _ => Some(std),
    }
}

/// The std type a path names, if any: a bare name (`Vec<u8>`; not one of [`SHMKIT_HAS`]) or
/// one under `std`/`core`/`alloc` (`std::sync::Mutex<u8>`). A type spelled with another path
/// is the user's own. `#[shm_segment]` rewrites what it finds into the segment container.
pub fn lookup(p: &TypePath) -> Option<&'static StdType> {
    if p.qself.is_some() {
        return None;
    }
    let segs = &p.path.segments;
    let last = segs.last()?;
    let bare = segs.len() == 1 && p.path.leading_colon.is_none();
    let under_std =
        segs.len() > 1 && matches!(segs[0].ident.to_string().as_str(), "std" | "core" | "alloc");
    if !(bare || under_std) || (bare && SHMKIT_HAS.iter().any(|n| last.ident == n)) {
        return None;
    }
    TABLE.iter().find(|s| last.ident == s.name)
}
