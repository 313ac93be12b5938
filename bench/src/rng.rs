//! xorshift64 (Marsaglia 2003, shifts 13/7/17), the generator of every randomised
//! workload, started from the same seed as the peer's `XorShift64(kSeed)`.

/// The seed of every randomised workload (the peer's `kSeed`).
pub const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// The peer's `XorShift64`: `s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s;`.
#[derive(Clone, Debug)]
pub struct XorShift64 {
    state: u64,
}

impl XorShift64 {
    /// A generator starting from `seed` (must be non-zero to be useful).
    pub fn new(seed: u64) -> Self {
        XorShift64 { state: seed }
    }

    /// A generator starting from [`SEED`], as every workload does.
    pub fn seeded() -> Self {
        Self::new(SEED)
    }

    /// The next output.
    #[inline(always)]
    pub fn next_u64(&mut self) -> u64 {
        let mut s = self.state;
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        self.state = s;
        s
    }

    /// The current state (to confirm that two runs drew the same number of values).
    pub fn state(&self) -> u64 {
        self.state
    }
}

/// `keys[i]` = i-th output of a fresh generator; all distinct (xorshift64 is a bijection
/// on non-zero 64-bit values).
pub fn make_keys(n: usize) -> Vec<u64> {
    let mut rng = XorShift64::seeded();
    (0..n).map(|_| rng.next_u64()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_five_outputs_match_the_readme() {
        let mut rng = XorShift64::seeded();
        let got: Vec<u64> = (0..5).map(|_| rng.next_u64()).collect();
        assert_eq!(
            got,
            [
                0xdc1b_77ae_0bf3_4dad,
                0x64f0_eeb9_026e_6076,
                0x7b07_ce91_e590_6136,
                0x305f_050c_368d_cc74,
                0x2ceb_16e0_a1c5_4aec,
            ]
        );
    }

    #[test]
    fn keys_are_the_generator_outputs() {
        let keys = make_keys(3);
        assert_eq!(keys[0], 0xdc1b_77ae_0bf3_4dad);
        assert_eq!(keys[2], 0x7b07_ce91_e590_6136);
    }
}
