//! Read-only inspection for tools (the `shmkit` inspector): plain report structs about a
//! segment, never a way to change one.
//!
//! Two levels:
//! - **The device alone**, without mapping it: [`read_header`] reads the header with
//!   `pread` (bytes copied by the kernel: no mapping, no reference, so any bytes are
//!   harmless, and a racing writer can at worst give a stale figure), and [`attachments`]
//!   and [`owner_alive`] ask the kernel which open-file-description locks others hold on
//!   it (`F_OFD_GETLK`, which needs only a readable descriptor and takes nothing).
//! - **A mapped segment** (any backing and mode): [`usage`], [`block_map`], [`cache_slots`]
//!   and [`objects`] read as the segment's own inspection methods do, under its locks in
//!   a writable mapping (taken briefly, changing nothing), from a read-only mapping's
//!   snapshot otherwise (no writer maps the segment meanwhile). Values are rendered from
//!   the schemas the segment stores for derived types (structs and enums, nested, and
//!   arrays of them, down to plain scalars, and the containers they hold, from their
//!   descriptors), each scalar read with one atomic (or, read-only, volatile) load of its
//!   own width: bytes that another process may be writing under a lock (a `Mutex`'s
//!   value) are never read, and a bare container changes only under `&mut`, which this
//!   mapping's presence rules out (see `Renderer::container`).
//!
//! Every offset read from the segment is bounds-checked before it is followed, as on
//! any untrusted bytes; a corrupt segment gives an error, never a wild read.

use std::collections::HashMap;
use std::fs::File;
use std::mem::{offset_of, size_of};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use super::managed::{Backing, ManagedSegment};
use super::mode::Mode;
use crate::alloc::block::{HeapState, ENTRY, INTERNAL};
use crate::alloc::AlgorithmStats;
use crate::alloc::MemoryAlgorithm;
use crate::error::{Error, Result};
use crate::layout::{
    compound_fingerprint, payload_start, variant_field_offset, ShmSafe, StoredField, StoredSchema,
};
use crate::manager::header::{self, state, words, SegmentHeader, MAGIC};
use crate::objects::ops::{self, Listed, StoredBytes, NAMED, UNIQUE};
use crate::objects::space::Space;
use crate::objects::{IndexKind, ObjectKind};
use crate::robust::{decode_word, owner};

/// The format version this build reads and writes.
pub const FORMAT_VERSION: u32 = header::FORMAT_VERSION;

// ----- the device alone ---------------------------------------------------------------------

/// The state of one of the segment's internal locks, as its word reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockWord {
    /// Nobody holds it.
    Free,
    /// Held by this lock owner id (see [`owner_alive`]).
    Held(u32),
    /// Poisoned for good: a recovery found damage it could not repair.
    Poisoned,
}

impl LockWord {
    fn of(word: u32) -> Self {
        match decode_word(word) {
            None => LockWord::Poisoned,
            Some(None) => LockWord::Free,
            Some(Some(id)) => LockWord::Held(id),
        }
    }

    /// The holder's owner id, if held.
    pub fn holder(self) -> Option<u32> {
        match self {
            LockWord::Held(id) => Some(id),
            _ => None,
        }
    }
}

/// What a segment's header says, read from its device without mapping it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeaderFigures {
    /// The format version of the writer ([`FORMAT_VERSION`] is this build's).
    pub version: u32,
    /// Whether this build reads that version.
    pub supported: bool,
    /// Whether the segment was written on a machine of the other endianness.
    pub foreign_endian: bool,
    /// `usize::BITS` of the creator.
    pub pointer_width: u32,
    /// The creation state: `uninitialised`, `initialising`, `ready`, `corrupted`, or
    /// `unknown`.
    pub state: &'static str,
    /// The creator's lock owner id (see [`owner_alive`]).
    pub creator: u32,
    /// Size of the segment in bytes, as the header says.
    pub size: u64,
    /// Size of the device in bytes.
    pub device_size: u64,
    /// Bytes in the allocator's free blocks, headers included (thread caches not counted
    /// as free), as the header says.
    pub free_bytes: u64,
    /// The segment lock (allocator).
    pub segment_lock: LockWord,
    /// The index lock (objects).
    pub index_lock: LockWord,
    /// The index kind chosen at creation, as [`IndexKind::KIND`].
    pub index_kind: u32,
    /// Its name (`hash`, `ordered`, `null`, or a note on an unknown one).
    pub index_name: String,
    /// The memory algorithm chosen at creation, as
    /// [`MemoryAlgorithm::KIND`].
    pub algorithm_kind: u64,
    /// Its name (`tlsf`, `seqfit`, or a note on one this build does not know).
    pub algorithm_name: String,
    /// Named objects, as counted in the header.
    pub named: u64,
    /// Unique objects, as counted in the header.
    pub unique: u64,
    /// Anonymous objects (the registry of entries that no index links), as counted in
    /// the header.
    pub anonymous: u64,
    /// Type schemas stored (see [`TypeSchemaReport`]), as counted in the header.
    pub type_schemas: u64,
    /// Whether the segment has a thread-cache table.
    pub thread_caches: bool,
}

/// Reads the header of the segment on `file` (a shared memory object or a mapped file)
/// without mapping it. [`Error::NotASegment`] when the bytes are not a shmkit segment
/// header (too short, wrong magic), [`Error::Truncated`] when the device is shorter than
/// the header; the other figures are reported as found, for the caller to judge (they
/// are bytes from outside: nothing here trusts them).
pub fn read_header(file: &File, what: &str) -> Result<HeaderFigures> {
    let os = |e: std::io::Error| Error::Os {
        op: "pread",
        what: what.to_string(),
        source: e,
    };
    let device_size = file.metadata().map_err(os)?.len();
    let mut bytes = vec![0u8; size_of::<SegmentHeader>()];
    let mut got = 0;
    while got < bytes.len() {
        match file.read_at(&mut bytes[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(os(e)),
        }
    }
    bytes.truncate(got);
    header_figures(&bytes, device_size, what)
}

/// The figures of a header whose first `bytes` were read (fewer than a header's when the
/// device is shorter), from a device of `device_size` bytes.
fn header_figures(bytes: &[u8], device_size: u64, what: &str) -> Result<HeaderFigures> {
    let got = bytes.len();
    if got < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        return Err(Error::NotASegment {
            what: what.to_string(),
            reason: if got < MAGIC.len() {
                format!("{got} bytes is shorter than the magic bytes")
            } else {
                "wrong magic bytes".into()
            },
        });
    }
    if got < size_of::<SegmentHeader>() {
        return Err(Error::Truncated {
            what: what.to_string(),
            expected: size_of::<SegmentHeader>() as u64,
            actual: got as u64,
        });
    }
    let u32_at = |off: usize| u32::from_ne_bytes(bytes[off..off + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |off: usize| u64::from_ne_bytes(bytes[off..off + 8].try_into().unwrap_or([0; 8]));
    let word = |i: usize| u64_at(offset_of!(SegmentHeader, reserved) + 8 * i);
    let version = u32_at(offset_of!(SegmentHeader, version));
    let index_kind = word(words::INDEX_KIND) as u32;
    Ok(HeaderFigures {
        version,
        supported: version == FORMAT_VERSION,
        foreign_endian: u32_at(offset_of!(SegmentHeader, endian)) != header::ENDIAN_MARK,
        pointer_width: u32_at(offset_of!(SegmentHeader, pointer_width)),
        state: match u32_at(offset_of!(SegmentHeader, state)) {
            state::UNINITIALISED => "uninitialised",
            state::INITIALISING => "initialising",
            state::READY => "ready",
            state::CORRUPTED => "corrupted",
            _ => "unknown",
        },
        creator: u32_at(offset_of!(SegmentHeader, creator)),
        size: u64_at(offset_of!(SegmentHeader, size)),
        device_size,
        free_bytes: u64_at(offset_of!(SegmentHeader, heap) + HeapState::FREE_BYTES_OFFSET),
        segment_lock: LockWord::of(u32_at(offset_of!(SegmentHeader, lock))),
        index_lock: LockWord::of(word(words::INDEX_LOCK) as u32),
        index_kind,
        index_name: crate::objects::index_kind_name(u64::from(index_kind)),
        algorithm_kind: word(words::ALGORITHM_KIND),
        algorithm_name: crate::manager::header::algorithm_name(word(words::ALGORITHM_KIND)),
        named: word(words::NAMED_COUNT),
        unique: word(words::UNIQUE_COUNT),
        anonymous: word(words::ENTRIES_COUNT),
        type_schemas: word(words::SCHEMA_COUNT),
        thread_caches: u64_at(offset_of!(SegmentHeader, cache_table)) != 0,
    })
}

/// Whether lock owner `id` (from a lock word, the creator word or a cache slot of the
/// segment on `file`) is alive: some description of the device holds its byte. The
/// kernel's answer, so reused pids and pid namespaces cannot fool it. (For shm objects and
/// files; an XSI or anonymous segment's owners hold their bytes on a companion.)
pub fn owner_alive(file: &File, id: u32) -> Result<bool> {
    owner::held_elsewhere(file.as_fd(), id)
}

/// An XSI shared memory segment as the kernel lists it (`/proc/sysvipc/shm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct XsiListed {
    /// Its key (0, `IPC_PRIVATE`, for private segments and removed ones).
    pub key: i32,
    /// Its id.
    pub id: i32,
    /// Its size in bytes.
    pub size: u64,
    /// The pid of the process that created it (the kernel's, which pid reuse can fool).
    pub creator_pid: u32,
    /// Attachments in all processes (`shm_nattch`).
    pub attachments: u64,
}

/// Where Linux lists the XSI shared memory segments.
const SYSVIPC_SHM: &str = "/proc/sysvipc/shm";

/// The XSI shared memory segments the kernel lists, shmkit's or not; lines that do not
/// parse are skipped (the file's format is the kernel's, not ours to trust blindly).
pub fn xsi_listed() -> Result<Vec<XsiListed>> {
    let text = std::fs::read_to_string(SYSVIPC_SHM).map_err(|e| Error::Os {
        op: "read",
        what: SYSVIPC_SHM.into(),
        source: e,
    })?;
    let mut lines = text.lines();
    // The header line names the columns, so their order is read rather than assumed.
    let columns: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let col = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(key), Some(id), Some(size), Some(cpid), Some(nattch)) = (
        col("key"),
        col("shmid"),
        col("size"),
        col("cpid"),
        col("nattch"),
    ) else {
        return Ok(Vec::new());
    };
    Ok(lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(XsiListed {
                key: f.get(key)?.parse().ok()?,
                id: f.get(id)?.parse().ok()?,
                size: f.get(size)?.parse().ok()?,
                creator_pid: f.get(cpid)?.parse().ok()?,
                attachments: f.get(nattch)?.parse().ok()?,
            })
        })
        .collect())
}

/// The path of XSI segment `id`'s companion lock file: the device that its mappings'
/// attachment and owner locks are on, so [`attachments`] and [`owner_alive`] take it (see
/// [`ManagedXsiSharedMemory`](super::ManagedXsiSharedMemory)). Only shmkit makes one.
pub fn xsi_companion(id: i32) -> std::path::PathBuf {
    std::path::Path::new("/dev/shm").join(super::backing::xsi::companion_name(id))
}

/// Reads the header of XSI segment `seg`, as [`read_header`] does a device's: attached
/// read-only just for the copy (XSI memory has no `pread`), while holding the attach byte
/// of its opened `companion` shared, as every mapping does, so that an opener counts this
/// attachment as one whose locks it can see. `InUse` while a process holds the segment
/// alone (an offline resize or destroy).
pub fn read_xsi_header(seg: &XsiListed, companion: &File, what: &str) -> Result<HeaderFigures> {
    use crate::os::{MapMode, XsiKey, XsiSharedMemory};
    let fd = companion.as_fd();
    if !crate::os::ofd::lock_shared_raw(std::os::fd::AsRawFd::as_raw_fd(&fd), owner::ATTACH) {
        return Err(Error::InUse {
            what: what.to_string(),
            reason: "a process holds it alone (an offline resize or destroy)".into(),
        });
    }
    let copied = XsiSharedMemory::with_id(seg.id, XsiKey::from_raw(seg.key))
        .attach(MapMode::ReadOnly)
        .map(|region| {
            let n = region.len().min(size_of::<SegmentHeader>());
            (0..n)
                // SAFETY: `i` is below the attachment's length, which the kernel mapped
                // readable; a volatile byte load, as a writer may be changing the word.
                .map(|i| unsafe { region.as_ptr().add(i).read_volatile() })
                .collect::<Vec<u8>>()
        });
    // Best effort: the description closes with `companion`, which releases it anyway.
    crate::os::ofd::unlock_byte_fd(fd, owner::ATTACH);
    header_figures(&copied?, seg.size, what)
}

/// One mapping's lock owner id found attached to a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttachedOwner {
    /// The owner id (one per process and mode for shared mappings, one per exclusive
    /// mapping).
    pub id: u32,
    /// Whether it vouches for the segment (a read-write mapping that validated, created
    /// or trusted it).
    pub vouched: bool,
}

/// Who is attached to a device, from the open-file-description locks others hold on it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attachments {
    /// The lock owner ids held (writable mappings claim one at their first lock or trusted
    /// open), in ascending order.
    pub owners: Vec<AttachedOwner>,
    /// False when more were held than the search looked for (then `owners` is partial).
    pub complete: bool,
    /// Whether some mapping holds the attach byte (every mapping does, once attached).
    pub attached: bool,
    /// Whether read-only or copy-on-write mappings are attached.
    pub readers: bool,
    /// Whether shared read-write mappings are attached.
    pub writers: bool,
    /// Whether an exclusive mapping (or an offline resize, an in-place destroy) holds the
    /// segment alone.
    pub exclusive: bool,
}

impl Attachments {
    /// Whether nothing at all is attached: no mapping, no owner.
    pub fn nobody(&self) -> bool {
        !self.attached && !self.readers && !self.writers && self.owners.is_empty()
    }
}

/// How many owner locks [`attachments`] looks for at most.
const MAX_OWNER_STEPS: u32 = 4096;

/// Who is attached to the segment on `file` (see [`Attachments`]), asking the kernel; takes
/// no lock.
pub fn attachments(file: &File) -> Result<Attachments> {
    use crate::os::ofd::{conflicting_fd, LockKind};
    let fd = file.as_fd();
    let os = |e: std::io::Error| Error::Os {
        op: "fcntl(F_OFD_GETLK)",
        what: "the segment's attachment locks".into(),
        source: e,
    };
    let held = owner::holders(fd, MAX_OWNER_STEPS)?;
    let any = |byte| conflicting_fd(fd, byte, LockKind::Exclusive).map_err(os);
    Ok(Attachments {
        complete: held.is_some(),
        owners: held
            .unwrap_or_default()
            .into_iter()
            .map(|h| AttachedOwner {
                id: h.id,
                vouched: h.vouched,
            })
            .collect(),
        attached: any(owner::ATTACH)?.is_some(),
        readers: any(owner::READERS)?.is_some(),
        writers: any(owner::WRITERS)?.is_some(),
        exclusive: conflicting_fd(fd, owner::ATTACH, LockKind::Shared)
            .map_err(os)?
            .is_some(),
    })
}

// ----- a mapped segment ---------------------------------------------------------------------

/// Free blocks of one size class (sizes up to a power of two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FreeClass {
    /// Blocks of more than half this size and at most this size (headers included).
    pub up_to: u64,
    /// How many free blocks.
    pub blocks: u64,
    /// Their bytes, headers included.
    pub bytes: u64,
}

/// What a segment's memory is used for.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Usage {
    /// Size of the segment.
    pub size: usize,
    /// Free bytes, thread caches included (the segment's `free_memory`).
    pub free_memory: usize,
    /// Bytes held in thread caches (counted as free).
    pub cached_memory: usize,
    /// The memory algorithm's own counters (largest free block among them).
    pub algorithm: AlgorithmStats,
    /// Used blocks, of every kind.
    pub used_blocks: u64,
    /// Free blocks.
    pub free_blocks: u64,
    /// `1 - largest free block / free bytes` of the algorithm (0 when nothing or one block
    /// is free): how far the free memory is from one piece.
    pub fragmentation: f64,
    /// Free blocks by size class, smallest first, classes with blocks only.
    pub free_classes: Vec<FreeClass>,
}

/// What a run of blocks holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BlockKind {
    /// Free.
    Free,
    /// Allocated (raw allocations, containers' buffers).
    Used,
    /// Held in a thread cache: used to the allocator, free to the segment's figures (a
    /// thread hands it out again without the lock).
    Cached,
    /// An object entry (named, unique or anonymous).
    Object,
    /// The segment's own tables (indexes, registry, type records, thread-cache table).
    Internal,
}

/// One block of the allocator's chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BlockRun {
    /// Offset of the block (its header) in the segment.
    pub offset: u64,
    /// Its size, header included.
    pub size: u64,
    /// What it holds.
    pub kind: BlockKind,
}

/// The allocator's blocks in address order; the chain ends early at a header that does not
/// check out (run `check` for what is wrong). Which blocks are cached is a snapshot: a
/// thread of a live writer moves blocks in and out of its cache without any lock.
pub fn block_map<B: Backing, M: Mode, I: IndexKind, A: MemoryAlgorithm>(
    seg: &ManagedSegment<B, M, I, A>,
) -> Result<Vec<BlockRun>> {
    let core = seg.mapped()?;
    let cached: std::collections::HashSet<u64> = core.cached_blocks().into_iter().collect();
    Ok(core
        .chain_blocks()
        .into_iter()
        .map(|(offset, size, free, marks)| BlockRun {
            offset,
            size,
            kind: if free {
                BlockKind::Free
            } else if cached.contains(&offset) {
                BlockKind::Cached
            } else if marks & ENTRY != 0 {
                BlockKind::Object
            } else if marks & INTERNAL != 0 {
                BlockKind::Internal
            } else {
                BlockKind::Used
            },
        })
        .collect())
}

/// The allocator's figures (see [`Usage`]).
pub fn usage<B: Backing, M: Mode, I: IndexKind, A: MemoryAlgorithm>(
    seg: &ManagedSegment<B, M, I, A>,
) -> Result<Usage> {
    let blocks = block_map(seg)?;
    let algorithm = seg.mapped()?.algorithm_stats();
    let mut classes: Vec<FreeClass> = Vec::new();
    let (mut used_blocks, mut free_blocks) = (0, 0);
    for b in &blocks {
        if b.kind != BlockKind::Free {
            used_blocks += 1;
            continue;
        }
        free_blocks += 1;
        let up_to = b.size.max(1).next_power_of_two();
        match classes.iter_mut().find(|c| c.up_to == up_to) {
            Some(c) => {
                c.blocks += 1;
                c.bytes += b.size;
            }
            None => classes.push(FreeClass {
                up_to,
                blocks: 1,
                bytes: b.size,
            }),
        }
    }
    classes.sort_by_key(|c| c.up_to);
    let fragmentation = if algorithm.free == 0 || free_blocks <= 1 {
        0.0
    } else {
        1.0 - algorithm.largest_free as f64 / algorithm.free as f64
    };
    Ok(Usage {
        size: seg.size(),
        free_memory: seg.free_memory(),
        cached_memory: seg.cached_memory(),
        algorithm,
        used_blocks,
        free_blocks,
        fragmentation: fragmentation.max(0.0),
        free_classes: classes,
    })
}

/// A thread-cache slot in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheSlot {
    /// The lock owner id of the mapping whose thread owns it (see [`owner_alive`]).
    pub owner: u32,
    /// That mapping's id within its process.
    pub mapping: u32,
    /// The owning thread's kernel id.
    pub thread: u64,
    /// Bytes cached in it.
    pub cached: u64,
}

/// The thread-cache slots in use (empty for segments without caches): a snapshot of
/// atomic words.
pub fn cache_slots<B: Backing, M: Mode, I: IndexKind, A: MemoryAlgorithm>(
    seg: &ManagedSegment<B, M, I, A>,
) -> Result<Vec<CacheSlot>> {
    Ok(seg
        .mapped()?
        .cache_slots()
        .into_iter()
        .map(|(owner, mapping, thread, cached)| CacheSlot {
            owner,
            mapping,
            thread,
            cached,
        })
        .collect())
}

/// The shape of one index (named or unique objects), as its kind keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexShape {
    /// The hash index: its table's slots (0 while the index is empty; the table doubles
    /// when 13/16 full).
    Table {
        /// Slots in the table.
        buckets: u64,
    },
    /// The ordered index: a treap, expected depth O(log n).
    Tree {
        /// Entries on the longest path from the root (0 when empty).
        depth: u64,
    },
    /// The null index keeps no names.
    None,
}

/// One index's figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexFigures {
    /// Objects linked in it, as its count says.
    pub objects: u64,
    /// Its shape.
    pub shape: IndexShape,
}

impl IndexFigures {
    /// Objects per slot of a hash table (None for other kinds and empty tables): how full
    /// the table is, so how long probes run.
    pub fn load_factor(&self) -> Option<f64> {
        match self.shape {
            IndexShape::Table { buckets } if buckets > 0 => {
                Some(self.objects as f64 / buckets as f64)
            }
            _ => None,
        }
    }
}

/// The named and unique indexes' figures, one snapshot under the index lock (writable
/// mappings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexLoad {
    /// The named objects' index.
    pub named: IndexFigures,
    /// The unique objects' index.
    pub unique: IndexFigures,
}

/// How full and how deep the segment's indexes are (see [`IndexLoad`]).
pub fn index_load<B: Backing, M: Mode, I: IndexKind, A: MemoryAlgorithm>(
    seg: &ManagedSegment<B, M, I, A>,
) -> Result<IndexLoad> {
    seg.indexed(|s| {
        let figures = |root: crate::objects::Root| -> Result<IndexFigures> {
            Ok(IndexFigures {
                objects: s.read_word(root.count),
                shape: I::shape(s, root)?,
            })
        };
        Ok(IndexLoad {
            named: figures(NAMED)?,
            unique: figures(UNIQUE)?,
        })
    })
}

/// A value rendered from a segment's bytes and a stored description of its type.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// An unsigned integer (or an atomic one).
    Unsigned(u64),
    /// A signed integer (or an atomic one).
    Signed(i64),
    /// A floating-point number.
    Float(f64),
    /// A `bool` (or `AtomicBool`).
    Bool(bool),
    /// A `char`.
    Char(char),
    /// Bytes that are no value of the type (a `bool` of 2, an enum tag of no variant), or
    /// a stored schema that cannot describe them (unreadable, or at odds with the value):
    /// what is wrong, said.
    Invalid(String),
    /// A struct's fields, in order (from its stored schema).
    Struct(Vec<(String, Value)>),
    /// An enum's variant and its fields, in order (from its stored schema).
    Enum {
        /// The variant's name.
        variant: String,
        /// Its fields.
        fields: Vec<(String, Value)>,
    },
    /// Elements (an array object or field, a `Vec`'s, a `List`'s), the first
    /// [`MAX_ELEMENTS`] at most (a stored schema's bytes, 64 KiB).
    Array {
        /// The elements rendered.
        elements: Vec<Value>,
        /// How many there are.
        length: usize,
    },
    /// A `String`'s text (the first 64 KiB at most).
    Text(String),
    /// A map's entries (a `Map`'s in key order, a `HashMap`'s in bucket order), the first
    /// [`MAX_ELEMENTS`] at most.
    Map {
        /// The keys and values rendered.
        entries: Vec<(Value, Value)>,
        /// How many there are.
        length: usize,
    },
    /// A `Mutex`: who holds it, from its owner word (see [`owner_alive`]). Its value is not
    /// read: another process may be writing it under the lock, and taking the lock to read
    /// it would make a read-only tool a lock holder, stalling the program that needs it
    /// (and a read-only mapping has no owner id to take it with).
    Lock(LockWord),
    /// Not rendered: a type whose layout the segment does not describe (pointers, `Deque`,
    /// `Arc`, sets, locks other than `Mutex`, objects that are bare containers or locks,
    /// types of programs that stored no schema).
    Opaque {
        /// The type, as the writer spelled it.
        ty: String,
        /// Its size in bytes.
        size: usize,
    },
}

/// Elements of an array object that [`objects`] renders at most.
pub const MAX_ELEMENTS: usize = 64;

/// How deep [`objects`] follows nested types (a forged schema may contain itself).
const MAX_DEPTH: usize = 32;

/// Values [`objects`] renders at most per object (a forged schema may multiply them).
const MAX_VALUES: usize = 100_000;

/// Values [`objects`] renders at most in all (four objects' worth: forged deep values
/// print some 200 bytes each as indented JSON).
const MAX_TOTAL_VALUES: usize = 4 * MAX_VALUES;

/// Bytes of text read, or hash buckets scanned, that cost as much as one value.
const BYTES_PER_UNIT: usize = 64;

/// One object, as the inspector lists it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ObjectReport {
    /// Its name (unique objects: their type's; anonymous ones: empty).
    pub name: String,
    /// Named, unique or anonymous.
    pub kind: ObjectKind,
    /// Number of elements.
    pub length: usize,
    /// Offset of the first element in the segment.
    pub offset: u64,
    /// Bytes of the elements (`length` × the element size).
    pub bytes: u64,
    /// The element type, as `std::any::type_name` spelled it in the writer.
    pub type_name: String,
    /// The element type's fingerprint.
    pub fingerprint: u64,
    /// For a root (a named object `__shmkit_root::N` beside its stored schema), `N`.
    pub root: Option<String>,
    /// The schema the segment stores for the element type (a derived type's; None for
    /// other types, or when it is unreadable: then `value` says why).
    pub schema: Option<StoredSchema>,
    /// The value, as far as the segment describes it.
    pub value: Value,
}

const ROOT_PREFIX: &str = "__shmkit_root::";
const SCHEMA_PREFIX: &str = "__shmkit_schema::";

/// How a plain scalar type is read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scalar {
    Unsigned,
    Signed,
    Float,
    Bool,
    Char,
}

/// A scalar type the inspector renders: its layout fingerprint (what a schema's field
/// records), its type fingerprint (what an object's entry records), name (an enum's
/// `repr` names its tag's type), size and reading.
struct Plain {
    layout: u64,
    object: u64,
    name: &'static str,
    size: usize,
    scalar: Scalar,
}

fn plain<T: ShmSafe>(scalar: Scalar) -> Plain {
    Plain {
        layout: T::LAYOUT_FINGERPRINT,
        object: T::type_fingerprint(),
        name: std::any::type_name::<T>(),
        size: size_of::<T>(),
        scalar,
    }
}

fn plain_types() -> Vec<Plain> {
    use std::sync::atomic::*;
    use Scalar::*;
    vec![
        plain::<u8>(Unsigned),
        plain::<u16>(Unsigned),
        plain::<u32>(Unsigned),
        plain::<u64>(Unsigned),
        plain::<usize>(Unsigned),
        plain::<i8>(Signed),
        plain::<i16>(Signed),
        plain::<i32>(Signed),
        plain::<i64>(Signed),
        plain::<isize>(Signed),
        plain::<f32>(Float),
        plain::<f64>(Float),
        plain::<bool>(Bool),
        plain::<char>(Char),
        plain::<AtomicU8>(Unsigned),
        plain::<AtomicU16>(Unsigned),
        plain::<AtomicU32>(Unsigned),
        plain::<AtomicU64>(Unsigned),
        plain::<AtomicUsize>(Unsigned),
        plain::<AtomicI8>(Signed),
        plain::<AtomicI16>(Signed),
        plain::<AtomicI32>(Signed),
        plain::<AtomicI64>(Signed),
        plain::<AtomicIsize>(Signed),
        plain::<AtomicBool>(Bool),
    ]
}

/// Reads the scalar at `off` (bounds and alignment checked by `read_scalar`).
fn scalar(s: &Space, off: u64, p: &Plain) -> Value {
    let Some(raw) = s.read_scalar(off, p.size) else {
        return Value::Invalid(format!(
            "{} bytes at offset {off}: out of bounds or misaligned",
            p.size
        ));
    };
    let bits = (p.size * 8) as u32;
    match p.scalar {
        Scalar::Unsigned => Value::Unsigned(raw),
        Scalar::Signed => {
            let shift = 64 - bits;
            Value::Signed(((raw << shift) as i64) >> shift)
        }
        Scalar::Float if p.size == 4 => Value::Float(f64::from(f32::from_bits(raw as u32))),
        Scalar::Float => Value::Float(f64::from_bits(raw)),
        Scalar::Bool => match raw {
            0 | 1 => Value::Bool(raw == 1),
            _ => Value::Invalid(format!("bool byte {raw}")),
        },
        Scalar::Char => match char::from_u32(raw as u32) {
            Some(c) => Value::Char(c),
            None => Value::Invalid(format!("char {raw:#x}")),
        },
    }
}

/// The schemas a segment stores, by the layout fingerprint they are stored under: parsed,
/// or why they cannot be read.
type Schemas = HashMap<u64, std::result::Result<StoredSchema, String>>;

/// Stored schema bytes parsed (`what` names them for errors): checked against the
/// fingerprint they are stored under (`expected`), if any.
fn parse_schema(
    bytes: Option<&[u8]>,
    what: &str,
    expected: Option<u64>,
) -> Result<StoredSchema, String> {
    let unreadable = || format!("its stored schema {what} is unreadable");
    let schema = bytes.and_then(StoredSchema::parse).ok_or_else(unreadable)?;
    match expected {
        Some(fp) if fp != schema.fingerprint => Err(format!(
            "its stored schema {what} describes another type (fingerprint {:016x})",
            schema.fingerprint
        )),
        _ => Ok(schema),
    }
}

/// An entry of the schema table parsed.
fn table_schema(t: &StoredBytes) -> (Option<u64>, Result<StoredSchema, String>) {
    let fp = u64::from_str_radix(&t.key, 16).ok();
    let what = format!("of type {}", t.key);
    (fp, parse_schema(t.bytes.as_deref(), &what, fp))
}

/// The bytes of a root's stored schema object (`__shmkit_schema::N`), parsed.
fn root_schema(s: &Space, l: &Listed) -> Result<StoredSchema, String> {
    let bytes = (l.fingerprint == u8::type_fingerprint())
        .then(|| s.checked(l.data, l.info.length))
        .flatten()
        // SAFETY: `length` bytes in bounds (checked); a stored schema is written once,
        // before its name can be found, and never changes while it is linked (the index
        // lock, or a read-only mapping, covers the copy).
        .map(|p| unsafe { std::slice::from_raw_parts(p, l.info.length) });
    parse_schema(bytes, &format!("`{}`", l.info.name), None)
}

/// Every schema the segment stores: each derived type's (the schema table), and the
/// roots' (from segments written before the table).
fn schemas(s: &Space, table: &[StoredBytes], listed: &[Listed]) -> Schemas {
    let mut out: Schemas = table
        .iter()
        .filter_map(|t| {
            let (fp, schema) = table_schema(t);
            Some((fp?, schema))
        })
        .collect();
    let roots = listed
        .iter()
        .filter(|l| l.info.kind == ObjectKind::Named && l.info.name.starts_with(SCHEMA_PREFIX));
    for l in roots {
        if let Ok(schema) = root_schema(s, l) {
            out.entry(schema.fingerprint).or_insert(Ok(schema));
        }
    }
    out
}

/// One type schema the segment stores: constructing an object of a derived type stores
/// its type's and those of the derived types it holds by value, once per type, in a table
/// of their own (no object lists them), never freed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TypeSchemaReport {
    /// The key it is stored under: the type's layout fingerprint in hex.
    pub key: String,
    /// Offset of its bytes in the segment.
    pub offset: u64,
    /// Its bytes (the text of [`Schema::encode`](crate::Schema::encode) when sound; empty
    /// when the entry holds no bytes).
    pub bytes: Vec<u8>,
    /// The schema parsed, or why it cannot be.
    pub schema: std::result::Result<StoredSchema, String>,
}

/// The type schemas the segment stores (see [`TypeSchemaReport`]), as one snapshot like
/// [`objects`].
pub fn type_schemas<B: Backing, M: Mode, I: IndexKind, A: MemoryAlgorithm>(
    seg: &ManagedSegment<B, M, I, A>,
) -> Result<Vec<TypeSchemaReport>> {
    let table = seg.indexed(ops::stored_schemas::<I>)?;
    Ok(table
        .into_iter()
        .map(|t| TypeSchemaReport {
            schema: table_schema(&t).1,
            key: t.key,
            offset: t.offset,
            bytes: t.bytes.unwrap_or_default(),
        })
        .collect())
}

/// Renders values from the segment's bytes and its stored schemas alone. Every read is
/// one bounds- and alignment-checked scalar load inside the object's element (a field is
/// read only when its stored offset and size fit in its container, and a nested type
/// only when its stored size is its field's); forged schemas give `Invalid` values, and
/// nesting and counts are bounded.
struct Renderer<'a> {
    s: &'a Space,
    plains: &'a [Plain],
    schemas: &'a Schemas,
    /// Values still to render for the current object.
    budget: std::cell::Cell<usize>,
}

impl Renderer<'_> {
    /// Element `i` of object `l` (type fingerprint `l.fingerprint`).
    fn element(&self, l: &Listed, i: usize) -> Value {
        let off = l.data + (i * l.element_size) as u64;
        if let Some(p) = self.plains.iter().find(|p| p.object == l.fingerprint) {
            return scalar(self.s, off, p);
        }
        match self.schemas.get(&l.fingerprint) {
            Some(_) => self.value(off, l.fingerprint, l.element_size, &l.info.type_name, 0),
            None => Value::Opaque {
                ty: l.info.type_name.clone(),
                size: l.element_size,
            },
        }
    }

    /// Takes `units` from the object's budget (a value is one, and so are each
    /// [`BYTES_PER_UNIT`] bytes of text read and each [`BYTES_PER_UNIT`] hash buckets
    /// scanned: a forged segment may point many containers at the same long text or
    /// sparse table); `false` once it is spent.
    fn spend(&self, units: usize) -> bool {
        let left = self.budget.get();
        self.budget.set(left.saturating_sub(units));
        left >= units
    }

    /// The `size` bytes at `off`, of the type whose layout fingerprint is `fp` (`ty` as
    /// the writer spelled it), `depth` types deep.
    fn value(&self, off: u64, fp: u64, size: usize, ty: &str, depth: usize) -> Value {
        let left = self.budget.get();
        if left == 0 {
            return Value::Invalid(format!("not rendered: over {MAX_VALUES} values"));
        }
        self.budget.set(left - 1);
        if depth > MAX_DEPTH {
            return Value::Invalid(format!(
                "nested over {MAX_DEPTH} deep (a stored schema contains itself?)"
            ));
        }
        if let Some(p) = self
            .plains
            .iter()
            .find(|p| p.layout == fp && p.size == size)
        {
            return scalar(self.s, off, p);
        }
        match self.schemas.get(&fp) {
            Some(Ok(schema)) if schema.size != size => Value::Invalid(format!(
                "the stored schema of {} says {} bytes, the value has {size}",
                schema.name, schema.size
            )),
            Some(Ok(schema)) if schema.kind == "container" => self.container(off, schema, depth),
            Some(Ok(schema)) if !schema.variants.is_empty() || schema.repr.is_some() => {
                self.enumeration(off, schema, depth)
            }
            Some(Ok(schema)) => Value::Struct(
                schema
                    .fields
                    .iter()
                    .map(|f| {
                        let v = match f.offset {
                            Some(o) if o.checked_add(f.size).is_some_and(|e| e <= size) => {
                                self.value(off + o as u64, f.fingerprint, f.size, &f.ty, depth + 1)
                            }
                            _ => outside(f),
                        };
                        (f.name.clone(), v)
                    })
                    .collect(),
            ),
            Some(Err(why)) => Value::Invalid(why.clone()),
            None => self.array(off, fp, size, depth).unwrap_or(Value::Opaque {
                ty: ty.to_string(),
                size,
            }),
        }
    }

    /// An array of scalars or of a stored type: the element whose array of `size` bytes
    /// has fingerprint `fp`, if one does.
    fn array(&self, off: u64, fp: u64, size: usize, depth: usize) -> Option<Value> {
        let plains = self.plains.iter().map(|p| (p.layout, p.size, p.name));
        let stored = self.schemas.iter().filter_map(|(fp, s)| {
            let s = s.as_ref().ok()?;
            Some((*fp, s.size, s.name.as_str()))
        });
        let (element, each, ty) = plains.chain(stored).find(|&(e, each, _)| {
            each != 0
                && size % each == 0
                && compound_fingerprint("array", &[e, (size / each) as u64]) == fp
        })?;
        let length = size / each;
        let elements = (0..length.min(MAX_ELEMENTS))
            .map(|i| self.value(off + (i * each) as u64, element, each, ty, depth + 1))
            .collect();
        Some(Value::Array { elements, length })
    }

    /// An enum: its tag read as its stored `repr` says, the variant of that discriminant,
    /// and that variant's fields where the `repr` puts them (RFC 2195's layouts).
    fn enumeration(&self, off: u64, schema: &StoredSchema, depth: usize) -> Value {
        let repr = schema.repr.as_deref().unwrap_or_default();
        let (c, int) = match repr.strip_prefix("C, ") {
            Some(int) => (true, int),
            None => (false, repr),
        };
        let Some(tag_type) = self
            .plains
            .iter()
            .find(|p| p.name == int && matches!(p.scalar, Scalar::Unsigned | Scalar::Signed))
        else {
            return Value::Invalid(format!(
                "enum {} has a repr this inspector cannot read: `{repr}`",
                schema.name
            ));
        };
        let tag = match scalar(self.s, off, tag_type) {
            Value::Unsigned(u) => i128::from(u),
            Value::Signed(i) => i128::from(i),
            other => return other,
        };
        let Some(variant) = schema.variants.iter().find(|v| v.discriminant == tag) else {
            return Value::Invalid(format!("tag {tag} is no variant of {}", schema.name));
        };
        // Aligns that are powers of two and sizes within the enum keep the offsets'
        // arithmetic from overflowing (the stored figures are untrusted).
        let sound = |f: &StoredField| f.align.is_power_of_two() && f.size <= schema.size;
        let all = schema.variants.iter().flat_map(|v| &v.fields);
        if !all.clone().all(sound) {
            return Value::Invalid(format!(
                "the stored schema of {} has fields of impossible sizes or alignments",
                schema.name
            ));
        }
        let start = if c {
            payload_start(tag_type.size, &all.map(|f| f.align).collect::<Vec<_>>())
        } else {
            tag_type.size
        };
        let layout: Vec<(usize, usize)> =
            variant.fields.iter().map(|f| (f.size, f.align)).collect();
        let fields = variant
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let o = variant_field_offset(start, &layout, i);
                let v = if o.checked_add(f.size).is_some_and(|e| e <= schema.size) {
                    self.value(off + o as u64, f.fingerprint, f.size, &f.ty, depth + 1)
                } else {
                    outside(f)
                };
                (f.name.clone(), v)
            })
            .collect();
        Value::Enum {
            variant: variant.name.clone(),
            fields,
        }
    }
}

/// Where the offset pointer at `at` aims: `None` for null (the offset 1, or 0, which
/// would aim at the pointer itself and which a list's links use for null too). The
/// target is not checked here: callers bounds-check what they read there.
fn aim(s: &Space, at: u64) -> std::result::Result<Option<u64>, String> {
    let off = s
        .read_scalar(at, 8)
        .ok_or_else(|| format!("a pointer at offset {at}: out of bounds or misaligned"))?
        as i64;
    match off {
        0 | 1 => Ok(None),
        _ => at
            .checked_add_signed(off)
            .map(Some)
            .ok_or_else(|| format!("a pointer at offset {at} aims outside the segment")),
    }
}

/// Bytes of a `String` that [`objects`] renders at most.
const MAX_TEXT: usize = 1 << 16;

impl Renderer<'_> {
    /// A library container, read as its stored descriptor says (see
    /// [`SchemaKind::Container`](crate::SchemaKind::Container)).
    ///
    /// Sound on a live segment: a bare container (a `Vec`, a `List` held by value) changes
    /// only through `&mut` (`ShmMut`, the containers' `…Ext` traits), which a segment hands
    /// out only to a mapping with `ExclusiveAccess` (`find_mut`, `root_mut`): an exclusive
    /// one, which keeps every other mapping out (the attach byte's OFD lock), this
    /// inspector's included, or a copy-on-write one, whose writes are private pages. One
    /// being built is not linked yet, and this walk runs under the index lock that links
    /// it. A container inside a lock may change while the lock is held: a lock's value is
    /// not read (see [`Value::Lock`]).
    fn container(&self, off: u64, schema: &StoredSchema, depth: usize) -> Value {
        let rendered = match schema.repr.as_deref() {
            Some(layout @ ("sequence" | "text")) => self.sequence(off, schema, layout, depth),
            Some("list") => self.list(off, schema, depth),
            Some("btree") => self.btree(off, schema, depth),
            Some("hash") => self.hash(off, schema, depth),
            Some("lock") => part(schema, "word", 4, schema.size).and_then(|(_, at)| {
                let w = self.s.read_scalar(off + at as u64, 4);
                w.map(|w| Value::Lock(LockWord::of(w as u32)))
                    .ok_or_else(|| "its owner word is out of bounds or misaligned".into())
            }),
            other => Err(format!("a layout this inspector cannot read: {other:?}")),
        };
        rendered
            .unwrap_or_else(|why| Value::Invalid(format!("{} {}: {why}", schema.kind, schema.name)))
    }

    /// `len` elements where `ptr` aims, as text for a `"text"` layout, or, without `len`
    /// (a box), the one value itself (`None` when null). The whole range is bounds-checked
    /// before the first read.
    fn sequence(
        &self,
        off: u64,
        schema: &StoredSchema,
        layout: &str,
        depth: usize,
    ) -> std::result::Result<Value, String> {
        let (element, ptr_at) = part(schema, "ptr", 8, schema.size)?;
        let single = !schema.fields.iter().any(|f| f.name == "len");
        let length = if single { 1 } else { self.count(off, schema)? };
        let Some(start) = aim(self.s, off + ptr_at as u64)? else {
            return match length {
                _ if single => Ok(Value::Enum {
                    variant: "None".into(),
                    fields: Vec::new(),
                }),
                0 if layout == "text" => Ok(Value::Text(String::new())),
                0 => Ok(Value::Array {
                    elements: Vec::new(),
                    length: 0,
                }),
                _ => Err(format!("{length} elements behind a null pointer")),
            };
        };
        let bytes = length.checked_mul(element.size);
        if bytes.and_then(|b| self.s.checked(start, b)).is_none() {
            return Err(format!(
                "{length} elements of {} bytes at offset {start}: outside the segment",
                element.size
            ));
        }
        let at = |i: usize| start + (i * element.size) as u64;
        let read = |i: usize| {
            self.value(
                at(i),
                element.fingerprint,
                element.size,
                &element.ty,
                depth + 1,
            )
        };
        if single {
            return Ok(read(0));
        }
        if layout == "text" {
            if !self.spend(length.min(MAX_TEXT) / BYTES_PER_UNIT) {
                return Err(format!("not rendered: over {MAX_VALUES} values"));
            }
            let bytes: Option<Vec<u8>> = (0..length.min(MAX_TEXT))
                .map(|i| self.s.read_scalar(at(i), 1).map(|b| b as u8))
                .collect();
            let mut bytes = bytes.ok_or("its bytes are out of bounds")?;
            if length > MAX_TEXT {
                // Cut where the last whole character ends (the cut may split one).
                let whole = std::str::from_utf8(&bytes).map_or_else(|e| e.valid_up_to(), str::len);
                bytes.truncate(whole);
            }
            return String::from_utf8(bytes)
                .map(Value::Text)
                .map_err(|e| format!("not UTF-8 from byte {}", e.utf8_error().valid_up_to()));
        }
        let elements = (0..length.min(MAX_ELEMENTS)).map(read).collect();
        Ok(Value::Array { elements, length })
    }

    /// The container's element count, its `len` part.
    fn count(&self, off: u64, schema: &StoredSchema) -> std::result::Result<usize, String> {
        let (_, at) = part(schema, "len", 8, schema.size)?;
        self.s
            .read_scalar(off + at as u64, 8)
            .map(|n| n as usize)
            .ok_or_else(|| "its length is out of bounds or misaligned".into())
    }

    /// The value a part `f` describes, at `base + at`.
    fn part_value(&self, base: u64, (f, at): (&StoredField, usize), depth: usize) -> Value {
        self.value(base + at as u64, f.fingerprint, f.size, &f.ty, depth + 1)
    }

    /// A linked list: `len` nodes from `head`, each read only once its whole node is
    /// found in bounds, and at most [`MAX_ELEMENTS`] of them; a node met twice (a forged
    /// cycle) or a chain shorter than `len` makes the list invalid.
    fn list(
        &self,
        off: u64,
        schema: &StoredSchema,
        depth: usize,
    ) -> std::result::Result<Value, String> {
        let (head, head_at) = part(schema, "head", 8, schema.size)?;
        let node_size = head.size;
        let (_, next_at) = part(schema, "node.next", 8, node_size)?;
        let value = part(schema, "node.value", 0, node_size)?;
        let length = self.count(off, schema)?;
        let mut node = aim(self.s, off + head_at as u64)?;
        let mut seen = std::collections::HashSet::new();
        let mut elements = Vec::new();
        for i in 0..length.min(MAX_ELEMENTS) {
            let n = node.ok_or_else(|| format!("the chain ends after {i} of {length} nodes"))?;
            if self.s.checked(n, node_size).is_none() {
                return Err(format!("node {i} at offset {n}: outside the segment"));
            }
            if !seen.insert(n) {
                return Err(format!("node {i} at offset {n} was met before (a cycle)"));
            }
            elements.push(self.part_value(n, value, depth));
            node = aim(self.s, n + next_at as u64)?;
        }
        Ok(Value::Array { elements, length })
    }

    /// A sorted map: its nodes from `root`, in order (an internal node's edges around its
    /// keys); [`MAX_ELEMENTS`] entries at most.
    fn btree(
        &self,
        off: u64,
        schema: &StoredSchema,
        depth: usize,
    ) -> std::result::Result<Value, String> {
        let (_, root_at) = part(schema, "root", 8, schema.size)?;
        let length = self.count(off, schema)?;
        let mut entries = Vec::new();
        if let Some(root) = aim(self.s, off + root_at as u64)? {
            let mut seen = std::collections::HashSet::new();
            self.btree_node(schema, root, None, &mut seen, &mut entries, depth)?;
        }
        Ok(Value::Map { entries, length })
    }

    /// The entries of the node at `n` (`level` levels above the leaves, as its parent
    /// says: None for the root), appended to `out` until it holds [`MAX_ELEMENTS`]. A
    /// node is read only once it is found whole in bounds, with a key count within its
    /// arrays; each child is one level below its parent (so the walk goes no deeper than
    /// the root's level, at most [`MAX_DEPTH`], and each level counts in `depth`, so maps
    /// nested in maps stay [`MAX_DEPTH`] frames deep in all) and a node met twice (`seen`) is refused,
    /// so a forged tree of empty nodes costs at most one visit per node the segment holds.
    fn btree_node(
        &self,
        schema: &StoredSchema,
        n: u64,
        level: Option<u64>,
        seen: &mut std::collections::HashSet<u64>,
        out: &mut Vec<(Value, Value)>,
        depth: usize,
    ) -> std::result::Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "nested over {MAX_DEPTH} deep with the levels of its B-trees"
            ));
        }
        let (leaf, _) = part(schema, "root", 8, schema.size)?;
        let (internal, edges_at) = part(schema, "node.edges", 8, usize::MAX)?;
        let (_, level_at) = part(schema, "node.level", 2, leaf.size)?;
        let (_, len_at) = part(schema, "node.len", 2, leaf.size)?;
        let key = part(schema, "node.keys", 0, leaf.size)?;
        let value = part(schema, "node.vals", 0, leaf.size)?;
        // `n` is not bounds-checked yet and the parts' offsets are untrusted: checked sums.
        let read = |at: usize, size| {
            n.checked_add(at as u64)
                .and_then(|a| self.s.read_scalar(a, size))
        };
        let found = read(level_at, 2);
        let level = match (found, level) {
            (Some(l), None) if l <= MAX_DEPTH as u64 => l,
            (Some(l), Some(want)) if l == want => l,
            _ => {
                return Err(format!(
                    "the node at offset {n} is not where its parent says"
                ))
            }
        };
        let size = if level == 0 { leaf.size } else { internal.size };
        if self.s.checked(n, size).is_none() {
            return Err(format!("a node at offset {n}: outside the segment"));
        }
        if !seen.insert(n) {
            return Err(format!("the node at offset {n} was met before"));
        }
        let keys = read(len_at, 2).unwrap_or(u64::MAX) as usize;
        let fits = |at: usize, each: usize, count: usize| {
            count
                .checked_mul(each)
                .and_then(|b| b.checked_add(at))
                .is_some_and(|e| e <= size)
        };
        if !fits(key.1, key.0.size, keys)
            || !fits(value.1, value.0.size, keys)
            || (level > 0 && !fits(edges_at, 8, keys + 1))
        {
            return Err(format!(
                "the node at offset {n} claims {keys} keys, more than it holds"
            ));
        }
        for i in 0..=keys {
            if level > 0 {
                let edge = n + (edges_at + 8 * i) as u64;
                let child = aim(self.s, edge)?
                    .ok_or_else(|| format!("a null edge in the node at offset {n}"))?;
                // A level down is a level deeper: the walk's frames and the values'
                // nesting share one bound (a map of maps, each 32 levels high, would
                // otherwise nest 32 x 32 frames deep).
                self.btree_node(schema, child, Some(level - 1), seen, out, depth + 1)?;
            }
            if i == keys || out.len() >= MAX_ELEMENTS {
                break;
            }
            let k = (key.0, key.1 + i * key.0.size);
            let v = (value.0, value.1 + i * value.0.size);
            out.push((self.part_value(n, k, depth), self.part_value(n, v, depth)));
        }
        Ok(())
    }

    /// A hash map: the full buckets of its table (control byte's top bit clear), in
    /// bucket order, after the whole table is found in bounds; [`MAX_ELEMENTS`] entries
    /// at most, and the scan stops once `len` are found.
    fn hash(
        &self,
        off: u64,
        schema: &StoredSchema,
        depth: usize,
    ) -> std::result::Result<Value, String> {
        let (_, table_at) = part(schema, "table", 8, schema.size)?;
        let (_, mask_at) = part(schema, "table.mask", 8, usize::MAX)?;
        let (group, ctrl_at) = part(schema, "table.ctrl", 0, usize::MAX)?;
        let (bucket, _) = part(schema, "bucket", 0, usize::MAX)?;
        let key = part(schema, "bucket.key", 0, bucket.size)?;
        let value = part(schema, "bucket.value", 0, bucket.size)?;
        let length = self.count(off, schema)?;
        let Some(table) = aim(self.s, off + table_at as u64)? else {
            return Ok(Value::Map {
                entries: Vec::new(),
                length,
            });
        };
        let mask = table
            .checked_add(mask_at as u64)
            .and_then(|at| self.s.read_scalar(at, 8))
            .ok_or_else(|| format!("the table at offset {table}: out of bounds"))?;
        let buckets = mask.checked_add(1).filter(|b| b.is_power_of_two());
        let align = bucket.align.max(1);
        // Header, control bytes (and the trailing group's), then the buckets, aligned.
        let layout = buckets.and_then(|b| {
            let b = usize::try_from(b).ok()?;
            let data = ctrl_at
                .checked_add(b)?
                .checked_add(group.size)?
                .checked_next_multiple_of(align)?;
            Some((b, data, data.checked_add(b.checked_mul(bucket.size)?)?))
        });
        let Some((buckets, data, _)) = layout.filter(|l| self.s.checked(table, l.2).is_some())
        else {
            return Err(format!(
                "the table at offset {table} with mask {mask}: outside the segment"
            ));
        };
        let mut entries = Vec::new();
        let mut full = 0;
        for i in 0..buckets {
            if full == length || entries.len() >= MAX_ELEMENTS {
                break;
            }
            if i % BYTES_PER_UNIT == BYTES_PER_UNIT - 1 && !self.spend(1) {
                return Err(format!("not rendered: over {MAX_VALUES} values"));
            }
            let ctrl = self
                .s
                .read_scalar(table + (ctrl_at + i) as u64, 1)
                .unwrap_or(0xff);
            if ctrl & 0x80 != 0 {
                continue;
            }
            full += 1;
            let b = table + (data + i * bucket.size) as u64;
            entries.push((
                self.part_value(b, key, depth),
                self.part_value(b, value, depth),
            ));
        }
        Ok(Value::Map { entries, length })
    }
}

/// The part `name` of a container's descriptor and its offset, which with `size` more
/// bytes (the part's own size when 0) must lie within `within` bytes (the container's,
/// or its node's or bucket's).
fn part<'s>(
    schema: &'s StoredSchema,
    name: &str,
    size: usize,
    within: usize,
) -> std::result::Result<(&'s StoredField, usize), String> {
    let f = schema
        .fields
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| format!("its descriptor has no `{name}`"))?;
    let size = if size == 0 { f.size } else { size };
    match f.offset {
        Some(o) if o.checked_add(size).is_some_and(|e| e <= within) => Ok((f, o)),
        _ => Err(format!("its descriptor puts `{name}` outside its place")),
    }
}

/// A field that its stored schema puts outside the value.
fn outside(f: &StoredField) -> Value {
    Value::Invalid(format!(
        "its stored schema puts `{}` ({} bytes) outside the value",
        f.name, f.size
    ))
}

/// The named, unique and anonymous objects of the segment, in that order, with their values
/// as far as the segment describes them: scalars, derived types (structs and enums, nested,
/// from the schemas the segment stores for them), arrays of those, and in derived types
/// the containers (from their descriptors) and `Mutex`es (their holders). Taken as one
/// snapshot under the index lock (writable mappings).
pub fn objects<B: Backing, M: Mode, I: IndexKind, A: MemoryAlgorithm>(
    seg: &ManagedSegment<B, M, I, A>,
) -> Result<Vec<ObjectReport>> {
    let plains = plain_types();
    seg.indexed(|s| {
        let mut listed = ops::list_detailed::<I>(s, NAMED)?;
        listed.extend(ops::list_detailed::<I>(s, UNIQUE)?);
        listed.extend(ops::list_anonymous::<I>(s)?);
        let schemas = schemas(s, &ops::stored_schemas::<I>(s)?, &listed);
        let r = Renderer {
            s,
            plains: &plains,
            schemas: &schemas,
            budget: std::cell::Cell::new(0),
        };
        let mut out = Vec::with_capacity(listed.len());
        // Values left for the whole snapshot: a forged segment of many objects, each
        // spending its own budget, would otherwise cost their number times it, in time
        // and in memory.
        let mut total = MAX_TOTAL_VALUES;
        for l in &listed {
            let budget = MAX_VALUES.min(total);
            r.budget.set(budget);
            let root = (l.info.kind == ObjectKind::Named)
                .then(|| l.info.name.strip_prefix(ROOT_PREFIX))
                .flatten()
                .map(str::to_string);
            // A stored schema's bytes are given whole (a tool shows them as text).
            let schema_bytes = l.info.name.starts_with(SCHEMA_PREFIX);
            let max = if schema_bytes { 1 << 16 } else { MAX_ELEMENTS };
            let value = if budget == 0 {
                Value::Invalid(format!(
                    "not rendered: over {MAX_TOTAL_VALUES} values in all objects"
                ))
            } else if l.info.length == 1 {
                r.element(l, 0)
            } else {
                Value::Array {
                    elements: (0..l.info.length.min(max))
                        .map(|i| r.element(l, i))
                        .collect(),
                    length: l.info.length,
                }
            };
            total -= budget - r.budget.get();
            out.push(ObjectReport {
                name: l.info.name.clone(),
                kind: l.info.kind,
                length: l.info.length,
                offset: l.data,
                bytes: (l.element_size as u64).saturating_mul(l.info.length as u64),
                type_name: l.info.type_name.clone(),
                fingerprint: l.fingerprint,
                root,
                schema: schemas.get(&l.fingerprint).and_then(|s| s.clone().ok()),
                value,
            });
        }
        Ok(out)
    })
}

/// Runs [`check`](ManagedSegment::check) and the object layer's check of every entry:
/// the full validation of a cold open, on request.
pub fn check<B: Backing, M: Mode, I: IndexKind, A: MemoryAlgorithm>(
    seg: &ManagedSegment<B, M, I, A>,
) -> Result<()> {
    seg.check()
}
