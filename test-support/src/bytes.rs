//! Byte patterns and little helpers for raw bytes. (A leaf module: the runtime's child
//! binary compiles it too, see the crate doc.)

/// `len` bytes of a pattern that differs with `seed`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The native-endian `u32` at `off` of `bytes`.
pub fn read_u32(bytes: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(bytes[off..off + 4].try_into().unwrap())
}

/// Stores `v` native-endian at `off` of `bytes`.
pub fn write_u32(bytes: &mut [u8], off: usize, v: u32) {
    bytes[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}
