//! Mutants of the seed images. Mostly structure-aware: a word that aims like a
//! self-relative pointer re-aimed (at another pointer's target: two owners; near its own
//! target; at a tag or block header; at itself, null, the image's end, past it), a word
//! next to one (a length, a capacity, a count) set small, huge or nudged, an owner tag
//! naming another owner, a pointer stolen with its tag; then the runtime fuzzer's
//! plausible words, byte flips in the objects' area, and bytes anywhere.

use std::fmt;

use shmkit_test_support::fuzz::{interesting, Choices};

use crate::seed::{seeds, Seed, TAG_MARK};

/// One change to an image.
#[derive(Clone, Copy, Debug)]
pub enum Edit {
    Word(usize, u64),
    Byte(usize, u8),
    /// `len` bytes copied from `from` to `to`.
    Copy {
        from: usize,
        to: usize,
        len: usize,
    },
}

impl Edit {
    pub fn apply(self, image: &mut [u8]) {
        match self {
            Edit::Word(at, v) => image[at..at + 8].copy_from_slice(&v.to_ne_bytes()),
            Edit::Byte(at, v) => image[at] = v,
            Edit::Copy { from, to, len } => image.copy_within(from..from + len, to),
        }
    }
}

impl fmt::Display for Edit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Edit::Word(at, v) => write!(f, "word {at}={v:#x}"),
            Edit::Byte(at, v) => write!(f, "byte {at}={v:#x}"),
            Edit::Copy { from, to, len } => write!(f, "copy {len} {from}->{to}"),
        }
    }
}

/// A mutant of a seed: its bytes and the edits that made them.
pub struct Mutant {
    pub seed: &'static Seed,
    pub image: std::vec::Vec<u8>,
    pub edits: std::vec::Vec<Edit>,
}

impl fmt::Display for Mutant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seed \"{}\":", self.seed.name)?;
        for e in &self.edits {
            write!(f, " {e};")?;
        }
        Ok(())
    }
}

/// A mutant of a seed chosen by `c`: mostly one mutation, sometimes two or three.
pub fn mutant(c: &mut impl Choices) -> Mutant {
    let seeds = seeds();
    let seed = &seeds[c.below(seeds.len() as u64) as usize];
    let mut image = seed.image.clone();
    let mut edits = std::vec::Vec::new();
    for _ in 0..[1, 1, 1, 2, 3][c.below(5) as usize] {
        let start = edits.len();
        mutation(&image, seed, c, &mut edits);
        for e in &edits[start..] {
            e.apply(&mut image);
        }
    }
    Mutant { seed, image, edits }
}

fn pick<T: Copy>(items: &[T], c: &mut impl Choices) -> Option<T> {
    (!items.is_empty()).then(|| items[c.below(items.len() as u64) as usize])
}

/// An aligned word position in the objects' area.
fn in_area(seed: &Seed, c: &mut impl Choices) -> usize {
    let words = (seed.area.len() / 8).saturating_sub(1).max(1) as u64;
    seed.area.start.next_multiple_of(8) + 8 * c.below(words) as usize
}

/// Self-relative: the word at `at` that aims at `target`.
fn rel(at: usize, target: usize) -> u64 {
    (target as u64).wrapping_sub(at as u64)
}

fn mutation(image: &[u8], seed: &Seed, c: &mut impl Choices, edits: &mut std::vec::Vec<Edit>) {
    let len = image.len();
    match c.below(20) {
        0..=6 => {
            if let Some((at, target)) = pick(&seed.pointers, c) {
                edits.push(Edit::Word(at, aim(image, seed, at, target, c)));
            }
        }
        7..=9 => {
            if let Some((p, _)) = pick(&seed.pointers, c) {
                let at = (p + 8 * c.below(5) as usize)
                    .saturating_sub(16)
                    .min(len - 8);
                edits.push(Edit::Word(at, count(Seed::word(image, at), c)));
            }
        }
        10 => {
            if let Some(at) = pick(&seed.tags, c) {
                edits.push(Edit::Word(at, tag(image, seed, at, c)));
            }
        }
        11 => {
            // A pointer takes another's target, and the tag before that target (where
            // the block starts, for elements of alignment up to 8) names the thief.
            if let (Some((thief, _)), Some((_, target))) =
                (pick(&seed.pointers, c), pick(&seed.pointers, c))
            {
                edits.push(Edit::Word(thief, rel(thief, target)));
                if let Some(block) = target.checked_sub(8) {
                    edits.push(Edit::Word(block, names(block, thief)));
                }
            }
        }
        12..=14 => {
            let at = in_area(seed, c);
            edits.push(Edit::Word(at, interesting(image, at, c)));
        }
        15..=16 => {
            let at = in_area(seed, c) + c.below(8) as usize;
            edits.push(Edit::Byte(at, image[at] ^ 1 << c.below(8)));
        }
        17 => {
            // A header copied over another: two containers with one pointer value (which,
            // self-relative, aims elsewhere from the new place) and one length.
            if let (Some((from, _)), Some((to, _))) =
                (pick(&seed.pointers, c), pick(&seed.pointers, c))
            {
                let n = (8 * (1 + c.below(4)) as usize).min(len - from.max(to));
                edits.push(Edit::Copy { from, to, len: n });
            }
        }
        _ => {
            let at = c.below(len as u64) as usize;
            edits.push(Edit::Byte(at, c.below(256) as u8));
        }
    }
}

/// A new value for the pointer at `at`, which aims at `target`.
fn aim(image: &[u8], seed: &Seed, at: usize, target: usize, c: &mut impl Choices) -> u64 {
    let step = 8 * (1 + c.below(4) as usize);
    match c.below(11) {
        0 | 1 => rel(at, pick(&seed.pointers, c).map_or(target, |p| p.1)),
        2 => rel(at, target + step),
        3 => rel(at, target.saturating_sub(step)),
        4 => rel(at, pick(&seed.tags, c).unwrap_or(target)),
        5 => rel(at, in_area(seed, c)),
        6 => c.below(2),
        7 => rel(at, image.len() - step + 8),
        8 => rel(at, image.len() + step - 8),
        9 => Seed::word(image, at) ^ 1 << c.below(64),
        _ => [
            u64::MAX,
            i64::MIN as u64,
            i64::MAX as u64,
            8,
            8u64.wrapping_neg(),
        ][c.below(5) as usize],
    }
}

/// A new value for a length, capacity or count word holding `old`.
fn count(old: u64, c: &mut impl Choices) -> u64 {
    match c.below(9) {
        0 => 0,
        1 => 1 + c.below(16),
        2 => old.wrapping_add(1),
        3 => old.wrapping_sub(1),
        4 => old.wrapping_mul(2).wrapping_add(c.below(2)),
        5 => u64::MAX,
        6 => 1 << (16 + c.below(48)),
        7 => [u64::from(u32::MAX), 1 << 32, isize::MAX as u64, 1 << 63][c.below(4) as usize],
        _ => old ^ 1 << c.below(64),
    }
}

/// The owner tag of a block at `block` that names the owner at `owner`.
fn names(block: usize, owner: usize) -> u64 {
    TAG_MARK << 48 | (owner as u64).wrapping_sub(block as u64) & ((1 << 48) - 1)
}

/// A new value for the owner tag at `at`: naming another owner, another tag's word,
/// none, or a near miss.
fn tag(image: &[u8], seed: &Seed, at: usize, c: &mut impl Choices) -> u64 {
    match c.below(4) {
        0 => names(at, pick(&seed.pointers, c).map_or(at, |p| p.0)),
        1 => Seed::word(image, pick(&seed.tags, c).unwrap_or(at)),
        2 => 0,
        _ => Seed::word(image, at) ^ 1 << c.below(48),
    }
}
