//! The one error type of the runtime. Every variant names what it is about (a segment
//! name, a path, a size) so that a message read in a log is enough to act on.

use std::fmt;
use std::io;
use std::ops::Range;

/// What went wrong, with the segment, path or object it concerns.
///
/// A field named `what` always names the thing concerned as a message would (`shared
/// memory "name"`, a path, `segment at 0x…`, an object); `reason` says why in words.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The named segment, file or object does not exist.
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// Create-only was asked for, but the segment or file already exists.
    AlreadyExists {
        /// What exists already.
        what: String,
    },
    /// The OS refused access (mode bits, a read-only file, a foreign owner).
    PermissionDenied {
        /// What could not be accessed.
        what: String,
    },
    /// A name the backend cannot use (empty, too long, containing '/', …).
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A size that cannot work: zero, too small for the segment header, too large.
    InvalidSize {
        /// The size as given.
        size: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The bytes are not a shmkit segment (wrong magic, foreign endianness or pointer width).
    NotASegment {
        /// The device or buffer.
        what: String,
        /// What gave it away.
        reason: String,
    },
    /// The device is shorter than the segment header says: it was truncated.
    Truncated {
        /// The device.
        what: String,
        /// Bytes the segment needs.
        expected: u64,
        /// Bytes there are.
        actual: u64,
    },
    /// A shmkit segment written by an incompatible format version.
    IncompatibleVersion {
        /// The device.
        what: String,
        /// The segment's format version.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The segment's internal structures are inconsistent (or its creator died mid-way).
    Corrupted {
        /// The segment.
        what: String,
        /// What is inconsistent.
        reason: String,
    },
    /// Another process is still creating the segment and did not finish in time.
    Timeout {
        /// The segment.
        what: String,
        /// Who was waited for, and how long.
        reason: String,
    },
    /// Other mappings keep the segment from being opened or changed this way: an exclusive
    /// mapping holds it, or it is mapped while an exclusive open, a resize or an in-place
    /// destruction needs it alone, or read-only and writable shared mappings would mix.
    InUse {
        /// The segment.
        what: String,
        /// Who holds it, and what waits.
        reason: String,
    },
    /// The segment has no free block large enough.
    OutOfMemory {
        /// Bytes asked for.
        requested: usize,
        /// Alignment asked for.
        align: usize,
        /// Bytes free in all, in blocks of any size.
        free: usize,
    },
    /// `allocation_command` could not reach even `limit` bytes.
    AllocationCommandFailed {
        /// The least acceptable size asked for.
        limit: usize,
        /// The size wished for.
        preferred: usize,
        /// A limit that might succeed in a new call (0 when nothing would).
        possible: usize,
    },
    /// An alignment that is not a power of two.
    InvalidAlignment {
        /// The alignment as given.
        align: usize,
    },
    /// `allocation_command` flags or sizes that contradict each other.
    InvalidCommand {
        /// Which rule the request breaks.
        reason: &'static str,
    },
    /// An operation that needs the segment's allocator lock, run by the thread that holds
    /// it (inside `with_lock`): waiting for it would deadlock.
    LockReentered {
        /// The segment.
        what: String,
    },
    /// A pointer given back to the allocator (freed, resized, asked about) that is not a
    /// live allocation of the segment: foreign, freed already, or not the start of a block.
    NotAnAllocation {
        /// The pointer's address.
        addr: usize,
        /// The segment.
        what: String,
    },
    /// A pointer given to `destroy_ptr` that is not the first element of a live object of
    /// the type asked for in the segment.
    NotAnObject {
        /// The pointer's address.
        addr: usize,
        /// The type asked for.
        ty: &'static str,
    },
    /// The iterator given to `construct_from_iter` ended before the length it reported.
    IteratorTooShort {
        /// The object being constructed.
        what: String,
        /// The length the iterator reported.
        expected: usize,
        /// Elements it yielded.
        yielded: usize,
    },
    /// An `OffsetPtr` tag that needs more bits than the pointer has for tags.
    TagTooLarge {
        /// The tag as given.
        tag: usize,
        /// The pointer's tag bits.
        bits: u32,
        /// The pointer's target type.
        ty: &'static str,
    },
    /// An address that cannot be used as asked (null, or not as far past a page boundary as
    /// the offset to map there).
    InvalidAddress {
        /// The address.
        addr: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A mapping to register that partly overlaps one already registered (nested or equal
    /// ranges are fine).
    MappingOverlap {
        /// The addresses of the new mapping.
        range: Range<usize>,
        /// The addresses of the registered one.
        registered: Range<usize>,
    },
    /// A byte range that does not lie inside the region it is about.
    RangeOutOfBounds {
        /// Start of the range in the region.
        offset: usize,
        /// Length of the range.
        len: usize,
        /// Length of the region.
        size: usize,
    },
    /// An XSI key that cannot be used as asked.
    InvalidKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An operation the backend cannot do (XSI memory mapped copy-on-write).
    Unsupported {
        /// The operation and the backend.
        what: &'static str,
    },
    /// The caller's buffer cannot hold a segment.
    BufferTooSmall {
        /// The buffer's length.
        len: usize,
        /// The least a segment needs.
        min: usize,
    },
    /// The caller's buffer is not aligned enough for the segment header.
    BufferMisaligned {
        /// The buffer's address.
        addr: usize,
        /// The alignment a segment needs.
        align: usize,
    },
    /// An object was found, or is being destroyed, as another type than it was
    /// constructed with (or as a single value while it is an array).
    TypeMismatch {
        /// The object.
        what: String,
        /// The type asked for.
        expected: String,
        /// What the object holds.
        found: String,
    },
    /// An object's bytes are not a valid value of its type (a `bool` byte that is 2, an enum
    /// tag naming no variant): bytes from outside, checked before the first reference.
    InvalidValue {
        /// The object.
        what: String,
        /// The path to the offending field (`flags[2].on`; empty for the value itself).
        field: String,
        /// Its offset in bytes from the start of the object's data.
        offset: usize,
        /// What a valid value would be.
        expected: &'static str,
    },
    /// A segment root (`root::<T>()`) is stored with another layout than `T` has.
    SchemaMismatch {
        /// The root.
        what: String,
        /// The fields added, removed, retyped or moved, one per line.
        diff: String,
    },
    /// The segment was created with another kind of object index than it is opened with.
    IndexMismatch {
        /// The segment.
        what: String,
        /// The index kind it was opened with.
        expected: &'static str,
        /// The index kind it was created with.
        found: String,
    },
    /// The segment was created with another memory algorithm than it is opened with.
    AlgorithmMismatch {
        /// The segment.
        what: String,
        /// The algorithm it was opened with.
        expected: &'static str,
        /// The algorithm it was created with.
        found: String,
    },
    /// The file system or `/dev/shm` has no room for the storage a segment reserves
    /// (`ENOSPC`, `EDQUOT`, or `EFBIG` past the process's file size limit, from `fallocate`):
    /// reported at creation or growth instead of a
    /// `SIGBUS` at the first write into a page that has no storage.
    OutOfSpace {
        /// The device.
        what: String,
        /// Bytes it had to hold.
        size: u64,
    },
    /// A thread tried to take a lock it holds already: waiting for itself would never end.
    WouldDeadlock {
        /// The lock.
        what: String,
    },
    /// A lock whose last holder panicked or died while holding it: what it protects may be
    /// half-updated. (The lock's own `PoisonError` gives access to the data anyway.)
    Poisoned {
        /// The lock.
        what: String,
        /// How its holder ended: "panicked" or "died".
        cause: &'static str,
    },
    /// An element index past the end of a container (inserting past its length).
    IndexOutOfBounds {
        /// The index asked for.
        index: usize,
        /// The container's length.
        len: usize,
    },
    /// A counter at its maximum, which one more step would wrap (a semaphore posted
    /// `u32::MAX` times without a wait).
    Overflow {
        /// The counter.
        what: String,
        /// Its maximum.
        max: u64,
    },
    /// A message longer than its queue's largest message: nothing was sent.
    MessageTooLarge {
        /// The message's length.
        size: usize,
        /// The queue's largest message.
        max: usize,
    },
    /// A receive buffer shorter than the next message: nothing was taken.
    ReceiveBufferTooSmall {
        /// The buffer's length.
        len: usize,
        /// The length of the message waiting.
        needed: usize,
    },
    /// Any other OS failure, with the operation and the errno.
    Os {
        /// The system call or operation.
        op: &'static str,
        /// What it was applied to.
        what: String,
        /// The OS error.
        source: io::Error,
    },
}

/// `Result` with the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Maps an OS error of `op` on `what` to the specific variant when there is one
    /// (ENOENT → NotFound, EEXIST → AlreadyExists, EACCES/EPERM → PermissionDenied).
    pub fn from_os(op: &'static str, what: impl Into<String>, err: io::Error) -> Self {
        let what = what.into();
        match err.kind() {
            io::ErrorKind::NotFound => Error::NotFound { what },
            io::ErrorKind::AlreadyExists => Error::AlreadyExists { what },
            io::ErrorKind::PermissionDenied => Error::PermissionDenied { what },
            _ => Error::Os {
                op,
                what,
                source: err,
            },
        }
    }

    /// The raw errno of an OS error, if this error came from the OS.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Os { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound { what } => write!(f, "{what}: not found"),
            Error::AlreadyExists { what } => write!(f, "{what}: already exists"),
            Error::PermissionDenied { what } => write!(f, "{what}: permission denied"),
            Error::InvalidName { name, reason } => write!(f, "invalid name {name:?}: {reason}"),
            Error::InvalidSize { size, reason } => write!(f, "invalid size {size}: {reason}"),
            Error::NotASegment { what, reason } => {
                write!(f, "{what}: not a shmkit segment ({reason})")
            }
            Error::Truncated {
                what,
                expected,
                actual,
            } => write!(
                f,
                "{what}: truncated: the segment needs {expected} bytes but only {actual} are there"
            ),
            Error::IncompatibleVersion {
                what,
                found,
                supported,
            } => write!(
                f,
                "{what}: segment format version {found}, this build reads version {supported}"
            ),
            Error::Corrupted { what, reason } => write!(f, "{what}: corrupted segment: {reason}"),
            Error::WouldDeadlock { what } => write!(
                f,
                "{what}: this thread holds it already; waiting for itself would never end"
            ),
            Error::Poisoned { what, cause } => write!(
                f,
                "{what}: poisoned: its last holder {cause} while holding it, so what it \
                 protects may be half-updated (the lock's PoisonError gives access anyway, \
                 and clear_poison() marks it repaired)"
            ),
            Error::Overflow { what, max } => {
                write!(
                    f,
                    "{what}: at its maximum {max}, one more would wrap around"
                )
            }
            Error::Timeout { what, reason } => write!(f, "{what}: {reason}"),
            Error::MessageTooLarge { size, max } => write!(
                f,
                "a message of {size} bytes is longer than the queue's largest ({max} bytes): \
                 nothing was sent"
            ),
            Error::ReceiveBufferTooSmall { len, needed } => write!(
                f,
                "the next message has {needed} bytes, more than the receive buffer's {len}: \
                 nothing was taken"
            ),
            Error::InUse { what, reason } => write!(f, "{what} is in use: {reason}"),
            Error::OutOfMemory {
                requested,
                align,
                free,
            } => write!(
                f,
                "segment out of memory: no block of {requested} bytes aligned to {align} \
                 ({free} bytes free in all)"
            ),
            Error::AllocationCommandFailed {
                limit,
                preferred,
                possible,
            } => write!(
                f,
                "allocation_command failed: wanted {preferred} bytes, at least {limit}; \
                 {possible} might be possible"
            ),
            Error::InvalidAlignment { align } => {
                write!(f, "alignment {align} is not a power of two")
            }
            Error::InvalidCommand { reason } => write!(f, "allocation_command: {reason}"),
            Error::LockReentered { what } => write!(
                f,
                "{what}: this thread already holds the segment's allocator lock (inside \
                 `with_lock`); only cached small blocks can be allocated or freed there, and \
                 no object can be made, found or destroyed"
            ),
            Error::NotAnAllocation { addr, what } => {
                write!(f, "{addr:#x} is not a live allocation of the {what}")
            }
            Error::NotAnObject { addr, ty } => write!(
                f,
                "{addr:#x} is not the first element of a live object of type {ty} in this segment"
            ),
            Error::IteratorTooShort {
                what,
                expected,
                yielded,
            } => write!(
                f,
                "{what}: the iterator ended after {yielded} of {expected} elements"
            ),
            Error::TagTooLarge { tag, bits, ty } => write!(
                f,
                "tag {tag} does not fit in the {bits} tag bit(s) of OffsetPtr<{ty}>"
            ),
            Error::InvalidAddress { addr, reason } => write!(f, "address {addr:#x}: {reason}"),
            Error::MappingOverlap { range, registered } => write!(
                f,
                "mapping {:#x}..{:#x} overlaps the registered mapping {:#x}..{:#x}",
                range.start, range.end, registered.start, registered.end
            ),
            Error::RangeOutOfBounds { offset, len, size } => write!(
                f,
                "{len} bytes from offset {offset} do not fit in a {size}-byte region"
            ),
            Error::InvalidKey { reason } => write!(f, "invalid XSI key: {reason}"),
            Error::Unsupported { what } => write!(f, "not supported: {what}"),
            Error::BufferTooSmall { len, min } => write!(
                f,
                "buffer of {len} bytes is too small for a segment (at least {min} needed)"
            ),
            Error::BufferMisaligned { addr, align } => write!(
                f,
                "buffer at {addr:#x} is not aligned to {align} bytes as a segment needs"
            ),
            Error::TypeMismatch {
                what,
                expected,
                found,
            } => write!(f, "{what}: asked for as {expected}, but it holds {found}"),
            Error::InvalidValue {
                what,
                field,
                offset,
                expected,
            } => {
                let field = if field.is_empty() {
                    "the value itself"
                } else {
                    field
                };
                write!(
                    f,
                    "{what}: invalid value at byte {offset} ({field}): expected {expected}"
                )
            }
            Error::SchemaMismatch { what, diff } => write!(
                f,
                "{what}: the segment holds another layout of this type \
                 (from the stored layout to this program's):\n{diff}"
            ),
            Error::IndexMismatch {
                what,
                expected,
                found,
            } => write!(
                f,
                "{what}: opened with a {expected}, but the segment was created with a {found}"
            ),
            Error::AlgorithmMismatch {
                what,
                expected,
                found,
            } => write!(
                f,
                "{what}: opened with memory algorithm {expected}, but the segment was created \
                 with {found}"
            ),
            Error::OutOfSpace { what, size } => write!(
                f,
                "{what}: no space left to reserve {size} bytes for the segment"
            ),
            Error::IndexOutOfBounds { index, len } => write!(
                f,
                "index {index} is out of bounds for a container of {len} elements"
            ),
            Error::Os { op, what, source } => write!(f, "{op} {what}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Os { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_they_are_about() {
        let cases = [
            (Error::InvalidAlignment { align: 3 }, "alignment 3"),
            (
                Error::NotAnAllocation {
                    addr: 0x1000,
                    what: "segment at 0x0".into(),
                },
                "0x1000 is not a live allocation of the segment at 0x0",
            ),
            (
                Error::LockReentered {
                    what: "segment at 0x0".into(),
                },
                "segment at 0x0: this thread already holds",
            ),
            (
                Error::MappingOverlap {
                    range: 0x10..0x30,
                    registered: 0x20..0x40,
                },
                "0x10..0x30 overlaps the registered mapping 0x20..0x40",
            ),
            (
                Error::TagTooLarge {
                    tag: 4,
                    bits: 2,
                    ty: "u32",
                },
                "tag 4 does not fit in the 2 tag bit(s) of OffsetPtr<u32>",
            ),
            (
                Error::OutOfSpace {
                    what: "file /mnt/db".into(),
                    size: 4096,
                },
                "file /mnt/db: no space left to reserve 4096 bytes",
            ),
        ];
        for (err, expected) in cases {
            let text = err.to_string();
            assert!(text.contains(expected), "{text:?} lacks {expected:?}");
        }
    }
}
