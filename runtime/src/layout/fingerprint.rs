//! The one hash behind every fingerprint: FNV-1a (64-bit), usable in `const` so that
//! fingerprints are computed at compile time. Two uses: [`type_fingerprint_of`] (plain FNV-1a
//! over a type's name, size and alignment) and the layout fingerprints of
//! [`Schema`](super::Schema), [`leaf_fingerprint`] and [`compound_fingerprint`], which
//! hash each part followed by a separator.

/// FNV-1a's offset basis: the hash of nothing.
pub(crate) const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01B3;

/// FNV-1a: continues the hash `h` over `bytes`.
const fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        h = (h ^ bytes[i] as u64).wrapping_mul(FNV_PRIME);
        i += 1;
    }
    h
}

/// Continues `h` over `bytes`, then a separator, so that ("ab", "c") and ("a", "bc") differ.
pub(crate) const fn hash_bytes(h: u64, bytes: &[u8]) -> u64 {
    (fnv1a(h, bytes) ^ 0xFF).wrapping_mul(FNV_PRIME)
}

/// Continues `h` over `v` as little-endian bytes (and a separator).
pub(crate) const fn hash_u64(h: u64, v: u64) -> u64 {
    hash_bytes(h, &v.to_le_bytes())
}

/// FNV-1a over `name`, then `size` and `align` as little-endian `u64`s: the default
/// [`ShmSafe::type_fingerprint`](super::ShmSafe::type_fingerprint).
pub const fn type_fingerprint_of(name: &str, size: usize, align: usize) -> u64 {
    let h = fnv1a(FNV_OFFSET, name.as_bytes());
    let h = fnv1a(h, &(size as u64).to_le_bytes());
    fnv1a(h, &(align as u64).to_le_bytes())
}

/// The fingerprint of a leaf type (a primitive, an atomic): its name, size and alignment.
pub const fn leaf_fingerprint(name: &str, size: usize, align: usize) -> u64 {
    let h = hash_bytes(FNV_OFFSET, b"leaf");
    let h = hash_bytes(h, name.as_bytes());
    hash_u64(hash_u64(h, size as u64), align as u64)
}

/// The fingerprint of a compound type built from `parts` (an array: the element and its
/// length; a tuple: its fields; an `OffsetPtr`: its target's size and alignment).
pub const fn compound_fingerprint(kind: &str, parts: &[u64]) -> u64 {
    let mut h = hash_bytes(FNV_OFFSET, b"compound");
    h = hash_bytes(h, kind.as_bytes());
    let mut i = 0;
    while i < parts.len() {
        h = hash_u64(h, parts[i]);
        i += 1;
    }
    h
}

/// A field's fingerprint: its type's `layout` fingerprint and, when the written type holds
/// `PhantomData`s, their parameters as written without module paths (`phantom`). A
/// `PhantomData` has no bytes and its parameter need not be `ShmSafe`, so its own fingerprint
/// cannot tell `PhantomData<Raw>` from `PhantomData<Validated>`; the derive passes what it
/// reads in the field type.
pub const fn field_fingerprint(layout: u64, phantom: &[&str]) -> u64 {
    if phantom.is_empty() {
        return layout;
    }
    let mut h = hash_bytes(FNV_OFFSET, b"phantom");
    h = hash_u64(h, layout);
    let mut i = 0;
    while i < phantom.len() {
        h = hash_bytes(h, phantom[i].as_bytes());
        i += 1;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        // From the FNV reference (draft-eastlake-fnv): "" and "a".
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xCBF2_9CE4_8422_2325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xAF63_DC4C_8601_EC8C);
    }

    #[test]
    fn separators_keep_split_strings_apart() {
        let ab_c = hash_bytes(hash_bytes(FNV_OFFSET, b"ab"), b"c");
        let a_bc = hash_bytes(hash_bytes(FNV_OFFSET, b"a"), b"bc");
        assert_ne!(ab_c, a_bc);
        assert_ne!(leaf_fingerprint("u32", 4, 4), leaf_fingerprint("i32", 4, 4));
    }
}
