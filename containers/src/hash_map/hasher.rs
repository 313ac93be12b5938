//! [`FixedHasher`]: the one hash function of every segment [`HashMap`](super::HashMap), the
//! same in every process and program.
//!
//! A table in a segment is shared by processes and kept in files, and where a key sits
//! depends on its hash: so the hash cannot have a per-process random seed (std's
//! `RandomState`), and it is part of the segment format ([`VERSION`] is in the map's type
//! fingerprint: a program hashing differently finds the map as a type mismatch, never a
//! table whose lookups silently miss).
//!
//! The mixing step is the folded multiply of foldhash and wyhash: the 128-bit product of
//! two words, its halves XORed, which spreads every input bit over the whole word (the
//! table takes its position from the low bits and a 7-bit tag from the top ones).
//! - Integers (and everything `Hash` feeds as integers: lengths, discriminants, tuples of
//!   integers) cost one folded multiply each, about as cheap as rustc's FxHasher but
//!   without its weak low bits.
//! - Byte strings (`str`, `[u8]`) are read 16 bytes per folded multiply, with the length
//!   mixed in, as wyhash does.
//!
//! # HashDoS
//!
//! The seed is fixed and public, so whoever chooses the keys can choose keys that collide
//! and make every operation on the map linear in its length (hash flooding). A map that
//! takes keys from an untrusted party should bound its size, or hash such keys with a
//! secret of the application first (and store the keyed digest). Collisions cost time
//! only: probing visits every group once at most, so it ends and never panics, whatever
//! the keys and whatever bytes a table holds.

use core::hash::{BuildHasher, Hash, Hasher};

/// The hasher's version, part of the segment format: bumped whenever [`FixedHasher`]
/// hashes any value differently, or the table layout changes.
pub const VERSION: u64 = 2;

/// Words of pi's digits: fixed, arbitrary, without structure a key could line up with,
/// and odd, so that the low half of a product is a bijection of the input's low bits
/// (sequential integers then spread evenly over a table's positions).
const SEED: u64 = 0x243f_6a88_85a3_08d3;
const K1: u64 = 0x4528_21e6_38d0_1377;
const K2: u64 = 0xc0ac_29b7_c97c_50dd;
const K3: u64 = 0x3f84_d5b5_b547_0917;

/// The 128-bit product of `x` and `y`, its two halves XORed.
#[inline(always)]
const fn folded_multiply(x: u64, y: u64) -> u64 {
    let full = (x as u128).wrapping_mul(y as u128);
    (full as u64) ^ ((full >> 64) as u64)
}

/// The hash function of segment hash maps (see the [module docs](self)): deterministic,
/// cheap for integers, strong enough for strings, with no seed to choose.
///
/// ```
/// use core::hash::BuildHasher;
/// use shmkit_containers::hash_map::FixedState;
///
/// // The same in every process, so it can be checked against a constant.
/// assert_eq!(FixedState.hash_one(42u64), FixedState.hash_one(42u64));
/// assert_ne!(FixedState.hash_one("a"), FixedState.hash_one("b"));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct FixedHasher {
    acc: u64,
}

impl FixedHasher {
    /// A hasher in its initial state.
    #[inline(always)]
    pub const fn new() -> Self {
        FixedHasher { acc: SEED }
    }
}

impl Default for FixedHasher {
    #[inline(always)]
    fn default() -> Self {
        FixedHasher::new()
    }
}

impl Hasher for FixedHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.acc = hash_bytes(self.acc, bytes);
    }

    #[inline(always)]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    #[inline(always)]
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }

    #[inline(always)]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    #[inline(always)]
    fn write_u64(&mut self, i: u64) {
        self.acc = folded_multiply(self.acc ^ i, K1);
    }

    #[inline(always)]
    fn write_u128(&mut self, i: u128) {
        self.write_u64(i as u64);
        self.write_u64((i >> 64) as u64);
    }

    /// As a `u64`, so that a length hashes the same in 32- and 64-bit processes.
    #[inline(always)]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    #[inline(always)]
    fn finish(&self) -> u64 {
        self.acc
    }
}

/// Little-endian words of `b` (so the hash is the same on every machine).
#[inline(always)]
fn word(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

#[inline(always)]
fn half(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u64::from(u32::from_le_bytes(w))
}

/// Continues `acc` over `bytes`: one folded multiply per 16 bytes, the length mixed in.
#[inline]
fn hash_bytes(acc: u64, bytes: &[u8]) -> u64 {
    let len = bytes.len();
    let mut s = folded_multiply(acc ^ len as u64, K2);
    let (a, b) = if len <= 16 {
        if len >= 8 {
            (word(bytes, 0), word(bytes, len - 8))
        } else if len >= 4 {
            (half(bytes, 0), half(bytes, len - 4))
        } else if len > 0 {
            let (first, mid, last) = (bytes[0], bytes[len / 2], bytes[len - 1]);
            (u64::from(first), u64::from(mid) << 8 | u64::from(last))
        } else {
            (0, 0)
        }
    } else {
        let mut at = 0;
        while len - at > 16 {
            s = folded_multiply(word(bytes, at) ^ K3, word(bytes, at + 8) ^ s);
            at += 16;
        }
        (word(bytes, len - 16), word(bytes, len - 8))
    };
    folded_multiply(a ^ K3, b ^ s)
}

/// The [`BuildHasher`] of [`FixedHasher`]: every hasher it builds starts alike.
#[derive(Clone, Copy, Debug, Default)]
pub struct FixedState;

impl BuildHasher for FixedState {
    type Hasher = FixedHasher;

    #[inline(always)]
    fn build_hasher(&self) -> FixedHasher {
        FixedHasher::new()
    }
}

/// The hash of `value` as segment maps compute it.
#[inline(always)]
pub(super) fn hash_one<Q: Hash + ?Sized>(value: &Q) -> u64 {
    let mut h = FixedHasher::new();
    value.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash is part of the segment format: these values must never change without
    /// bumping [`VERSION`].
    #[test]
    fn hashes_are_fixed() {
        let seen = [
            hash_one(&0u64),
            hash_one(&1u64),
            hash_one(&u64::MAX),
            hash_one(""),
            hash_one("a"),
            hash_one("hello, segment"),
            hash_one("a string longer than sixteen bytes, to take the loop"),
            hash_one(&(1u32, 2u8)),
        ];
        let expected: [u64; 8] = [
            0x46ea_c034_bcfa_bb47,
            0x003d_221e_640a_d7cc,
            0x50ea_8cbb_3afa_b250,
            0xeefe_3b74_261d_3c18,
            0x7551_8deb_e97e_b67f,
            0x6362_ee20_6ddd_c4e7,
            0xd3b4_f774_dd64_0d5a,
            0x8a56_b562_2878_2bf4,
        ];
        assert_eq!(seen, expected);
    }

    /// Every length of a byte string and every byte in it changes the hash, and so does
    /// every bit of an integer, in the top 7 bits (the tag) and the low bits (the position).
    /// (Safe arithmetic only: nothing for Miri to check, slowly.)
    #[test]
    #[cfg_attr(miri, ignore)]
    fn bytes_and_bits_spread() {
        let bytes: std::vec::Vec<u8> = (0..64).collect();
        let mut seen = std::collections::HashSet::new();
        for len in 0..=64 {
            assert!(seen.insert(hash_one(&bytes[..len])), "length {len}");
            for i in 0..len {
                let mut flipped = bytes[..len].to_vec();
                flipped[i] ^= 0x10;
                assert!(seen.insert(hash_one(&flipped[..])), "byte {i} of {len}");
            }
        }
        let mut tags = std::collections::HashSet::new();
        let mut low = std::collections::HashSet::new();
        for i in 0..4096u64 {
            let h = hash_one(&i);
            tags.insert(h >> 57);
            low.insert(h & 0xfff);
        }
        assert_eq!(tags.len(), 128, "every tag comes up for sequential keys");
        assert!(
            low.len() > 2400,
            "positions of 4096 sequential keys: {}",
            low.len()
        );
    }
}
