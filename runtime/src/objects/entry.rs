//! The in-segment header of every constructed object. One allocation per object, like
//! Boost: the header, the name, then the elements:
//!
//! ```text
//! [ Entry<L> | name bytes | padding | u32 data offset | element 0 | element 1 | … ]
//! ```
//!
//! The name sits at a fixed offset so that a lookup compares it without knowing the stored
//! type. The `u32` right before the data is part of the segment format (version 2) but is
//! never read: it sits next to user data, so a reference finds its entry through the
//! indexes and the registry instead (`ops::verified`).

use std::ptr::NonNull;
use std::sync::atomic::Ordering::Release;

use super::space::Space;
use crate::error::Result;

/// First field of every entry (the low half of the first word, which a block's thread-cache
/// link overwrites once it is freed; entries clear it before that anyway).
pub(crate) const TAG: u16 = 0xB0E5;

/// Longest name of a named object, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 255;
/// Longest key of a unique object (its type's name).
pub(crate) const MAX_KEY_LEN: usize = u16::MAX as usize;
/// Element counts are stored in 48 bits (more than any segment can hold of a sized type).
const COUNT_BITS: u32 = 48;
pub(crate) const MAX_COUNT: u64 = (1 << COUNT_BITS) - 1;

/// Life cycle of an entry; only LIVE entries are found.
pub(crate) mod state {
    /// Allocated and linked, elements being built.
    pub const CONSTRUCTING: u8 = 1;
    pub const LIVE: u8 = 2;
    /// Unlinked, elements being dropped.
    pub const DESTROYING: u8 = 3;
}

/// How an object was constructed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// Constructed under a name; found by that name.
    Named = 1,
    /// At most one per type; found by its type.
    Unique = 2,
    /// Never found; destroyed through a pointer only.
    Anonymous = 3,
}

impl ObjectKind {
    pub(crate) fn from_u8(k: u8) -> Option<Self> {
        match k {
            1 => Some(ObjectKind::Named),
            2 => Some(ObjectKind::Unique),
            3 => Some(ObjectKind::Anonymous),
            _ => None,
        }
    }
}

/// The kind byte of a stored type schema's entry (linked by `ops::SCHEMAS` alone): no
/// [`ObjectKind`], so no lookup, listing or pointer check of user objects takes one.
pub(crate) const SCHEMA_KIND: u8 = 4;

/// The header; `L` is the index's link type.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Entry<L> {
    pub tag: u16,
    pub kind: u8,
    pub state: u8,
    /// Hash of the name (unique objects: of the type's name).
    pub hash: u32,
    /// Element count in the low 48 bits, name length in the high 16.
    pub count_name: u64,
    /// `ShmSafe::type_fingerprint` of the element type.
    pub fingerprint: u64,
    pub link: L,
}

impl<L: Copy> Entry<L> {
    pub const SIZE: usize = size_of::<Self>();

    pub fn new(
        kind: u8,
        hash: u32,
        count: u64,
        name_len: usize,
        fingerprint: u64,
        link: L,
    ) -> Self {
        Entry {
            tag: TAG,
            kind,
            state: state::CONSTRUCTING,
            hash,
            count_name: count | (name_len as u64) << COUNT_BITS,
            fingerprint,
            link,
        }
    }

    #[inline]
    pub fn count(&self) -> u64 {
        self.count_name & MAX_COUNT
    }

    #[inline]
    pub fn name_len(&self) -> usize {
        (self.count_name >> COUNT_BITS) as usize
    }

    /// Offset of the elements from the entry start, for elements aligned to `align`.
    #[inline]
    pub fn data_offset(name_len: usize, align: usize) -> usize {
        (Self::SIZE + name_len + 4).next_multiple_of(align)
    }

    /// Bytes of the whole entry; None when it cannot be that large.
    pub fn total(name_len: usize, size: usize, align: usize, count: u64) -> Option<usize> {
        size.checked_mul(usize::try_from(count).ok()?)?
            .checked_add(Self::data_offset(name_len, align))
    }

    /// Reads the header of the entry at `e`, which must start a block marked as an entry
    /// large enough for a header (checked first: another block's bytes may be padding).
    #[inline]
    pub fn read(s: &Space, e: u64) -> Result<Self> {
        if s.entry_len(e).is_none_or(|len| len < Self::SIZE) {
            return Err(s.corrupt(format!("offset {e} is not an object entry")));
        }
        let p = s.at::<Self>(e)?;
        // SAFETY: bounds and alignment checked; a plain-data header (any bytes are a value).
        Ok(unsafe { p.read() })
    }

    /// The header at `e`, to update a field in place (under the index lock).
    #[inline]
    pub fn ptr(s: &Space, e: u64) -> Result<*mut Self> {
        s.at::<Self>(e)
    }

    /// The name bytes of the entry at `e`.
    #[inline]
    pub fn name(s: &Space, e: u64, name_len: usize) -> Result<&[u8]> {
        let p = s.bytes(e + Self::SIZE as u64, name_len)?;
        // SAFETY: in bounds (checked); names are written once before the entry is linked
        // and never change while it is linked, which the caller's lock (or read-only
        // snapshot) covers for the borrow.
        Ok(unsafe { std::slice::from_raw_parts(p, name_len) })
    }

    /// The first element of the entry at `e`, whose elements are aligned to `align`.
    #[inline]
    pub fn data(s: &Space, e: u64, name_len: usize, align: usize) -> Result<NonNull<u8>> {
        let p = s.bytes(e + Self::data_offset(name_len, align) as u64, 0)?;
        // SAFETY: inside the mapping, hence not null.
        Ok(unsafe { NonNull::new_unchecked(p) })
    }

    /// Writes a fresh entry at `e`: header, name and the data offset.
    ///
    /// # Safety
    /// `e` starts a block of at least `Self::total(..)` bytes that nothing else uses.
    pub unsafe fn write(s: &Space, e: u64, header: Self, name: &[u8], align: usize) -> Result<()> {
        let data_off = Self::data_offset(name.len(), align);
        let p = s.bytes(e, data_off)?;
        // SAFETY: the block holds `data_off` bytes at least (caller), in bounds (checked);
        // the entry start is aligned for the header (a block payload, aligned to 8).
        unsafe {
            p.cast::<Self>().write(header);
            copy_name(p.add(Self::SIZE), name);
            p.add(data_off - 4)
                .cast::<u32>()
                .write_unaligned(data_off as u32);
        }
        Ok(())
    }

    /// Sets the state of the entry at `e`, whose header is `h` (under the index lock, its
    /// only writer). The state shares the header's first word with the tag, kind and hash,
    /// which a reader without the lock loads whole: the word is stored whole too, with
    /// release ordering, so that such a reader who sees LIVE sees the elements built before.
    pub fn set_state(s: &Space, e: u64, h: &Self, st: u8) -> Result<()> {
        let [t0, t1] = h.tag.to_ne_bytes();
        let [h0, h1, h2, h3] = h.hash.to_ne_bytes();
        let first = u64::from_ne_bytes([t0, t1, h.kind, st, h0, h1, h2, h3]);
        s.shared(e)?.store(first, Release);
        Ok(())
    }
}

// The first word of a header, as `set_state` and `from_words` lay it out.
const _: () = {
    assert!(std::mem::offset_of!(Entry<()>, tag) == 0);
    assert!(std::mem::offset_of!(Entry<()>, kind) == 2);
    assert!(std::mem::offset_of!(Entry<()>, state) == 3);
    assert!(std::mem::offset_of!(Entry<()>, hash) == 4);
};

impl Entry<()> {
    /// The header from its three words, as a reader without the lock loads them one by one.
    #[inline]
    pub fn from_words(words: [u64; 3]) -> Self {
        // SAFETY: `Entry<()>` is `repr(C)`, integers only, without padding, and 24 bytes
        // (the transmute checks the size): every bit pattern of three words is a header.
        unsafe { std::mem::transmute::<[u64; 3], Self>(words) }
    }
}

/// The hash of a name: stable across processes and builds (it is stored in segments),
/// eight bytes at a time, with a final avalanche so that its low bits pick buckets well.
#[inline]
pub(crate) fn hash(bytes: &[u8]) -> u32 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h ^ w).wrapping_mul(K).rotate_left(31);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // Little-endian like the chunks, without a call to `memcpy` for a few bytes.
        let tail = rest
            .iter()
            .rev()
            .fold(0u64, |t, &b| (t << 8) | u64::from(b));
        h = (h ^ tail).wrapping_mul(K).rotate_left(31);
    }
    h ^= h >> 32;
    h = h.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    (h >> 32) as u32
}

/// Copies `name` to `dst`; names of 8 to 16 bytes as two words, without a call to
/// `memcpy`.
///
/// # Safety
/// `dst` is valid for `name.len()` bytes of writes and does not overlap `name`.
#[inline]
unsafe fn copy_name(dst: *mut u8, name: &[u8]) {
    let n = name.len();
    let src = name.as_ptr();
    if (8..=16).contains(&n) {
        // SAFETY: both sides hold `n >= 8` bytes, so words at 0 and at `n - 8` are inside.
        unsafe {
            dst.cast::<u64>()
                .write_unaligned(src.cast::<u64>().read_unaligned());
            dst.add(n - 8)
                .cast::<u64>()
                .write_unaligned(src.add(n - 8).cast::<u64>().read_unaligned());
        }
    } else {
        // SAFETY: forwarded contract.
        unsafe { dst.copy_from_nonoverlapping(src, n) };
    }
}

/// Whether the `key.len()` bytes at `stored` are `key`; names of 8 to 16 bytes are compared
/// as two words, without a call to `bcmp`.
///
/// # Safety
/// `stored` points to `key.len()` readable bytes.
#[inline(always)]
pub(crate) unsafe fn same_name(stored: *const u8, key: &[u8]) -> bool {
    let n = key.len();
    let k = key.as_ptr();
    if (8..=16).contains(&n) {
        // SAFETY: both sides hold `n >= 8` bytes, so words at 0 and at `n - 8` are inside.
        unsafe {
            let head = stored.cast::<u64>().read_unaligned() == k.cast::<u64>().read_unaligned();
            let tail = stored.add(n - 8).cast::<u64>().read_unaligned()
                == k.add(n - 8).cast::<u64>().read_unaligned();
            head & tail
        }
    } else {
        // SAFETY: `n` readable bytes (caller).
        unsafe { std::slice::from_raw_parts(stored, n) == key }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_header_is_compact() {
        assert_eq!(Entry::<()>::SIZE, 24);
        assert_eq!(Entry::<[u64; 2]>::SIZE, 40);
        // A u64 named with 9 characters: header, name, data offset, value = 48 bytes.
        assert_eq!(Entry::<()>::total(9, 8, 8, 1), Some(48));
    }

    #[test]
    fn names_compare_by_words_and_bytes() {
        for (a, b) in [
            ("obj_12345", "obj_12345"),
            ("obj_12345", "obj_12346"),
            ("abc", "abc"),
        ] {
            // SAFETY: `a` has `b.len()` bytes (equal lengths here).
            assert_eq!(unsafe { same_name(a.as_ptr(), b.as_bytes()) }, a == b);
        }
        // SAFETY: as above.
        assert!(!unsafe { same_name(b"xbc".as_ptr(), b"abc") });
        // SAFETY: as above.
        assert!(!unsafe { same_name(b"0123456789abcdeX".as_ptr(), b"0123456789abcdef") });
    }

    #[test]
    fn hash_is_stable_and_spreads() {
        assert_eq!(hash(b"obj_1"), hash(b"obj_1"));
        assert_ne!(hash(b"obj_1"), hash(b"obj_2"));
        assert_ne!(hash(b""), hash(b"\0"));
        let buckets: std::collections::HashSet<u32> = (0..1024)
            .map(|i| hash(format!("obj_{i}").as_bytes()) & 1023)
            .collect();
        assert!(
            buckets.len() > 550,
            "{} distinct buckets of 1024",
            buckets.len()
        );
    }
}
