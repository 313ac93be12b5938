//! Helpers that read the runtime's private segment layout: the header's field offsets and
//! words. The only module that names `shmkit_runtime::test_hooks`. (A leaf module:
//! the runtime's child binary compiles it too, see the crate doc.)

use shmkit_runtime::segment::{Backing, Mode};
use shmkit_runtime::test_hooks::SegmentHeader;
use shmkit_runtime::ManagedSegment;

/// Offsets of the header fields the tests patch, from the struct itself.
pub mod offsets {
    use super::SegmentHeader;
    pub const MAGIC: usize = std::mem::offset_of!(SegmentHeader, magic);
    pub const VERSION: usize = std::mem::offset_of!(SegmentHeader, version);
    pub const ENDIAN: usize = std::mem::offset_of!(SegmentHeader, endian);
    pub const POINTER_WIDTH: usize = std::mem::offset_of!(SegmentHeader, pointer_width);
    pub const STATE: usize = std::mem::offset_of!(SegmentHeader, state);
    pub const CREATOR: usize = std::mem::offset_of!(SegmentHeader, creator);
    pub const SIZE: usize = std::mem::offset_of!(SegmentHeader, size);
    /// The offset of the thread-cache table (0: none).
    pub const CACHE_TABLE: usize = std::mem::offset_of!(SegmentHeader, cache_table);
    /// The segment lock's word (the owner's id).
    pub const LOCK: usize = std::mem::offset_of!(SegmentHeader, lock);
    /// The object layer's words, by their index in `reserved` (the runtime's
    /// `header::words`): the index lock's word (the owner's id in the low half) and the
    /// number of named objects.
    pub const INDEX_LOCK: usize = std::mem::offset_of!(SegmentHeader, reserved);
    pub const NAMED_COUNT: usize = std::mem::offset_of!(SegmentHeader, reserved) + 3 * 8;
    /// The root of the named-object index.
    pub const NAMED_ROOT: usize = std::mem::offset_of!(SegmentHeader, reserved) + 2 * 8;
    /// The offset of the registry of entries.
    pub const ENTRIES: usize = std::mem::offset_of!(SegmentHeader, reserved) + 7 * 8;
    /// The head of the retired list (blocks kept for lookups without the index lock).
    pub const RETIRED: usize = std::mem::offset_of!(SegmentHeader, reserved) + 9 * 8;
    /// The root of the table of stored type schemas.
    pub const SCHEMA_ROOT: usize = std::mem::offset_of!(SegmentHeader, reserved) + 12 * 8;
    /// The number of stored type schemas.
    pub const SCHEMA_COUNT: usize = std::mem::offset_of!(SegmentHeader, reserved) + 13 * 8;
    /// The memory algorithm's kind.
    pub const ALGORITHM_KIND: usize = std::mem::offset_of!(SegmentHeader, reserved) + 14 * 8;
}

/// Where an ordered-index entry keeps its left and right child links (two words): after
/// the entry header's tag, kind, state, hash, count word and fingerprint.
pub const ORDERED_LINKS: usize = 24;

/// The header of the segment mapped at `seg`, as a raw pointer: fields are read one by one
/// (the lock holder mutates the allocator state that a `&SegmentHeader` would cover).
fn header_ptr<B: Backing, M: Mode>(seg: &ManagedSegment<B, M>) -> *const SegmentHeader {
    seg.base_address()
        .as_ptr()
        .cast::<SegmentHeader>()
        .cast_const()
}

/// The lock owner id recorded as the segment's creator.
pub fn creator<B: Backing, M: Mode>(seg: &ManagedSegment<B, M>) -> u32 {
    let h = header_ptr(seg);
    // SAFETY: every managed segment starts with its header, mapped while `seg` is
    // borrowed; the field is an aligned 4-byte word, read without making a reference.
    unsafe { (&raw const (*h).creator).cast::<u32>().read_volatile() }
}

/// The lock owner id `seg` takes locks under (claimed now if it has none yet).
pub fn owner_id<B: Backing, M: Mode>(seg: &ManagedSegment<B, M>) -> u32 {
    shmkit_runtime::test_hooks::lock_owner_id(seg).expect("a lock owner id")
}

/// The owner id holding the segment lock, if any.
pub fn lock_owner<B: Backing, M: Mode>(seg: &ManagedSegment<B, M>) -> Option<u32> {
    let h = header_ptr(seg);
    // SAFETY: as in `creator`; the lock is an atomic word, which may be shared by
    // reference while other processes change it.
    unsafe { (*h).lock.owner() }
}

/// The entry count word of the object whose `count` elements have a name of `name_len`
/// bytes (count in the low 48 bits, name length in the high 16).
pub fn entry_count_word(count: u64, name_len: u64) -> [u8; 8] {
    (count | name_len << 48).to_ne_bytes()
}

/// Where the count word of the entry that holds `count` elements under a one-byte name
/// lies in `image` (the first such word).
pub fn entry_count_at(image: &[u8], count: u64) -> usize {
    image
        .windows(8)
        .position(|w| w == entry_count_word(count, 1))
        .expect("the entry's count word")
}

/// Patches the header's memory-algorithm kind to `kind` (a user's algorithm, or a forgery).
pub fn forge_algorithm_kind(image: &mut [u8], kind: u64) {
    image[offsets::ALGORITHM_KIND..offsets::ALGORITHM_KIND + 8]
        .copy_from_slice(&kind.to_ne_bytes());
}

/// Patches the count word of the entry that holds `from` elements under a one-byte name to
/// `to`.
pub fn forge_entry_count(image: &mut [u8], from: u64, to: u64) {
    let at = entry_count_at(image, from);
    image[at..at + 8].copy_from_slice(&entry_count_word(to, 1));
}

/// The bytes of a heap segment as plain bytes, to forge or mutate: written to a memfd and
/// read back, since in memory the padding of stored values is uninitialised and only the
/// kernel may read it as bytes.
pub fn image_bytes<I: shmkit_runtime::IndexKind, A: shmkit_runtime::algorithm::MemoryAlgorithm>(
    seg: &mut shmkit_runtime::ManagedHeapMemory<I, A>,
) -> Vec<u8> {
    use std::io::{Read, Seek};
    let fd = rustix::fs::memfd_create("shmkit-image", rustix::fs::MemfdFlags::CLOEXEC)
        .expect("memfd_create");
    let mut file = std::fs::File::from(fd);
    seg.write_image_to(&file).expect("write the image");
    file.rewind().expect("rewind");
    let mut bytes = Vec::with_capacity(seg.size());
    file.read_to_end(&mut bytes).expect("read the image back");
    bytes
}

/// Overwrites bytes `at..` of a heap segment's memory with `bytes`, as a damaged or forged
/// file would hold them: the tests' stand-in for bytes from outside next to the
/// uninitialised padding of stored values (safe code cannot edit such bytes: a copy of them
/// refuses `AlignedBuffer::write_all_at`). `&mut` proves no reference into the segment is
/// alive. Panics past the segment's end.
pub fn corrupt<I: shmkit_runtime::IndexKind>(
    seg: &mut shmkit_runtime::ManagedHeapMemory<I>,
    at: usize,
    bytes: &[u8],
) {
    assert!(
        at.checked_add(bytes.len())
            .is_some_and(|end| end <= seg.size()),
        "{} bytes at {at} reach past a {}-byte segment",
        bytes.len(),
        seg.size()
    );
    // SAFETY: the range lies in the segment's memory, which the segment owns and lends
    // out only through references that `&mut seg` proves are gone; bytes are written, not
    // read, so whatever they held does not matter.
    unsafe {
        seg.base_address()
            .as_ptr()
            .add(at)
            .copy_from_nonoverlapping(bytes.as_ptr(), bytes.len());
    }
}
