//! [`Group`]: 16 control bytes compared at once, with SSE2 where the target has it (and
//! not under Miri) and with two `u64` words (SWAR) elsewhere. Both see the same 16 bytes
//! and give the same [`BitMask`], so the table's format and probe sequence do not depend
//! on which one a process uses.

/// Control bytes per group: the window a probe examines, and how many control bytes
/// repeat the first ones after the last bucket.
pub(super) const WIDTH: usize = 16;

/// A control byte of a bucket that never held an element since the table was made (or
/// cleared): a lookup may stop at a group that has one.
pub(super) const EMPTY: u8 = 0xFF;

/// A control byte of a bucket whose element was removed where a lookup may have probed
/// past it: it must keep probing.
pub(super) const DELETED: u8 = 0x80;

/// One bit per control byte of a group, bit `i` for byte `i`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct BitMask(pub(super) u16);

impl BitMask {
    /// Whether any bit is set.
    #[inline(always)]
    pub(super) fn any(self) -> bool {
        self.0 != 0
    }

    /// The lowest set bit's index.
    #[inline(always)]
    pub(super) fn lowest(self) -> Option<usize> {
        (self.0 != 0).then(|| self.0.trailing_zeros() as usize)
    }

    /// How many bytes from the start are unset (16 for none set).
    #[inline(always)]
    pub(super) fn trailing_zeros(self) -> u32 {
        self.0.trailing_zeros()
    }

    /// How many bytes from the end are unset (16 for none set).
    #[inline(always)]
    pub(super) fn leading_zeros(self) -> u32 {
        self.0.leading_zeros()
    }

    /// Only the bits of the first `n` bytes.
    #[inline(always)]
    pub(super) fn first(self, n: usize) -> BitMask {
        if n >= WIDTH {
            self
        } else {
            BitMask(self.0 & ((1u16 << n) - 1))
        }
    }
}

impl Iterator for BitMask {
    type Item = usize;

    /// The set bits' indices, lowest first.
    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        let bit = self.lowest()?;
        self.0 &= self.0 - 1;
        Some(bit)
    }
}

#[cfg(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse2",
    not(miri)
))]
mod sse2 {
    #[cfg(target_arch = "x86")]
    use core::arch::x86 as arch;
    #[cfg(target_arch = "x86_64")]
    use core::arch::x86_64 as arch;

    use super::{BitMask, EMPTY};

    /// 16 control bytes in an SSE2 register.
    #[derive(Clone, Copy)]
    pub(in super::super) struct Group(arch::__m128i);

    // The intrinsics below that take no pointer are safe functions where the target has
    // SSE2 in newer compilers, unsafe in older ones (the crate's minimum Rust version).
    #[allow(unused_unsafe)]
    impl Group {
        /// The 16 bytes at `p`.
        ///
        /// # Safety
        /// `p..p + 16` is readable and initialised.
        #[inline(always)]
        pub(in super::super) unsafe fn load(p: *const u8) -> Group {
            // SAFETY: the caller's contract; the load is unaligned.
            Group(unsafe { arch::_mm_loadu_si128(p.cast()) })
        }

        /// The bytes equal to `byte`.
        #[inline(always)]
        pub(in super::super) fn match_byte(self, byte: u8) -> BitMask {
            // SAFETY: SSE2 is enabled for the target (the module's `cfg`).
            let bits = unsafe {
                arch::_mm_movemask_epi8(arch::_mm_cmpeq_epi8(
                    self.0,
                    arch::_mm_set1_epi8(byte as i8),
                ))
            };
            BitMask(bits as u16)
        }

        /// The `EMPTY` bytes.
        #[inline(always)]
        pub(in super::super) fn match_empty(self) -> BitMask {
            self.match_byte(EMPTY)
        }

        /// The bytes with the top bit set: `EMPTY` or `DELETED`.
        #[inline(always)]
        pub(in super::super) fn match_empty_or_deleted(self) -> BitMask {
            // SAFETY: as above.
            BitMask(unsafe { arch::_mm_movemask_epi8(self.0) } as u16)
        }

        /// The bytes with the top bit clear: full buckets.
        #[inline(always)]
        pub(in super::super) fn match_full(self) -> BitMask {
            BitMask(!self.match_empty_or_deleted().0)
        }
    }
}

#[cfg(any(
    test,
    miri,
    not(all(
        any(target_arch = "x86", target_arch = "x86_64"),
        target_feature = "sse2"
    ))
))]
mod swar {
    use super::{BitMask, EMPTY};

    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;

    /// 16 control bytes as two little-endian words (byte `i` of a word in bits `8i..`).
    #[derive(Clone, Copy)]
    pub(in super::super) struct Group {
        lo: u64,
        hi: u64,
    }

    /// The top bit of each byte of `high` (nothing else set) as 8 bits, byte `i` in bit `i`:
    /// the multiplication gathers bit `8i` into bit `56 + i`, and no two partial products
    /// share a bit, so nothing carries.
    #[inline(always)]
    fn gather(high: u64) -> u16 {
        ((high >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u16
    }

    /// The zero bytes of `x`, exactly (no borrow from a neighbour): a byte's top bit after
    /// `(x & 0x7f) + 0x7f` is set when its low 7 bits are not all zero.
    #[inline(always)]
    fn zero_bytes(x: u64) -> u64 {
        !((x & LOW7).wrapping_add(LOW7) | x) & HIGH
    }

    impl Group {
        /// The 16 bytes at `p`.
        ///
        /// # Safety
        /// `p..p + 16` is readable and initialised.
        #[inline(always)]
        pub(in super::super) unsafe fn load(p: *const u8) -> Group {
            // SAFETY: the caller's contract; both reads are unaligned.
            unsafe {
                Group {
                    lo: u64::from_le(p.cast::<u64>().read_unaligned()),
                    hi: u64::from_le(p.add(8).cast::<u64>().read_unaligned()),
                }
            }
        }

        /// Per word, the bytes whose top bit `f` sets, as one mask.
        #[inline(always)]
        fn mask(self, f: impl Fn(u64) -> u64) -> BitMask {
            BitMask(gather(f(self.lo)) | gather(f(self.hi)) << 8)
        }

        /// The bytes equal to `byte`.
        #[inline(always)]
        pub(in super::super) fn match_byte(self, byte: u8) -> BitMask {
            let repeated = u64::from_ne_bytes([byte; 8]);
            self.mask(|w| zero_bytes(w ^ repeated))
        }

        /// The `EMPTY` bytes.
        #[inline(always)]
        pub(in super::super) fn match_empty(self) -> BitMask {
            self.match_byte(EMPTY)
        }

        /// The bytes with the top bit set: `EMPTY` or `DELETED`.
        #[inline(always)]
        pub(in super::super) fn match_empty_or_deleted(self) -> BitMask {
            self.mask(|w| w & HIGH)
        }

        /// The bytes with the top bit clear: full buckets.
        #[inline(always)]
        pub(in super::super) fn match_full(self) -> BitMask {
            self.mask(|w| !w & HIGH)
        }
    }
}

#[cfg(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse2",
    not(miri)
))]
pub(super) use sse2::Group;
#[cfg(not(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse2",
    not(miri)
)))]
pub(super) use swar::Group;

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that exercise every class: full tags, the two special bytes, and the bytes
    /// next to them (a borrow between bytes would show as a wrong match).
    fn bytes(seed: u64) -> [u8; WIDTH] {
        const PICK: [u8; 8] = [0x00, 0x01, 0x7e, 0x7f, DELETED, EMPTY, 0x42, 0x43];
        let mut x = seed | 1;
        core::array::from_fn(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            PICK[(x % 8) as usize]
        })
    }

    /// What each match must give, byte by byte.
    fn expected(b: &[u8; WIDTH], f: impl Fn(u8) -> bool) -> BitMask {
        BitMask((0..WIDTH).filter(|&i| f(b[i])).map(|i| 1u16 << i).sum())
    }

    #[test]
    fn the_word_groups_match_byte_by_byte() {
        for seed in 0..2000 {
            let b = bytes(seed);
            // SAFETY: 16 initialised bytes.
            let g = unsafe { swar::Group::load(b.as_ptr()) };
            for tag in [0x00, 0x01, 0x42, 0x7f] {
                assert_eq!(
                    g.match_byte(tag),
                    expected(&b, |c| c == tag),
                    "{b:x?} {tag}"
                );
            }
            assert_eq!(g.match_empty(), expected(&b, |c| c == EMPTY));
            assert_eq!(g.match_empty_or_deleted(), expected(&b, |c| c >= 0x80));
            assert_eq!(g.match_full(), expected(&b, |c| c < 0x80));
            // SAFETY: as above.
            let native = unsafe { Group::load(b.as_ptr()) };
            assert_eq!(native.match_byte(0x42), g.match_byte(0x42));
            assert_eq!(native.match_full(), g.match_full());
        }
    }

    #[test]
    fn bit_masks_iterate_and_count() {
        let m = BitMask(0b1000_0000_0010_0110);
        assert_eq!(m.collect::<std::vec::Vec<_>>(), [1, 2, 5, 15]);
        assert_eq!((m.trailing_zeros(), m.leading_zeros()), (1, 0));
        assert_eq!(m.first(3), BitMask(0b110));
        assert_eq!(BitMask(0).lowest(), None);
        assert!(!BitMask(0).any() && m.any());
    }
}
