//! The seed images, built once per process, and what the mutators aim at in them.

use std::ops::Range;
use std::sync::OnceLock;

use shmkit_containers::{Vec, VecExt};
use shmkit_runtime::ManagedHeapMemory;

use crate::objects;

/// The size of a seed segment (smaller under Miri, where every byte costs).
pub const SIZE: usize = if cfg!(miri) { 16 << 10 } else { 64 << 10 };

/// The high 16 bits of an owner tag (runtime `segment::owned`).
pub const TAG_MARK: u64 = 0x5EA1;

/// A valid segment image holding every seed object, and where its structure is.
pub struct Seed {
    pub name: &'static str,
    pub image: std::vec::Vec<u8>,
    /// Where the objects and the blocks they own lie: what mutations aim at most.
    pub area: Range<usize>,
    /// The words of the area that aim inside the image as a self-relative pointer would,
    /// with their targets: container pointers, mostly.
    pub pointers: std::vec::Vec<(usize, usize)>,
    /// The words of the area that are owner tags.
    pub tags: std::vec::Vec<usize>,
}

impl Seed {
    /// The word at `at`.
    pub fn word(image: &[u8], at: usize) -> u64 {
        u64::from_ne_bytes(image[at..at + 8].try_into().expect("8 bytes"))
    }
}

/// The seeds: the objects grown over two rounds, and (not under Miri) over six.
pub fn seeds() -> &'static [Seed] {
    static SEEDS: OnceLock<std::vec::Vec<Seed>> = OnceLock::new();
    SEEDS.get_or_init(|| match cfg!(miri) {
        true => vec![build("two rounds", 2)],
        false => vec![build("two rounds", 2), build("six rounds", 6)],
    })
}

/// A scratch vector, grown along with the objects and destroyed at the end: free gaps
/// between their blocks.
const SCRATCH: &str = "scratch";

/// Every seed object constructed, then grown round by round (each round touches every
/// object, so their blocks interleave; growth moves buffers and tables, leaving gaps).
fn build(name: &'static str, rounds: u64) -> Seed {
    let mut seg = ManagedHeapMemory::new(SIZE).expect("a seed segment");
    seg.construct(SCRATCH, Vec::<u64>::new())
        .expect("the scratch vector fits");
    objects::construct(&seg).expect("the seed objects fit");
    for round in 0..rounds {
        objects::grow(&mut seg, round).expect("the seed objects grow");
        let mut scratch = seg.find_mut::<Vec<u64>>(SCRATCH).unwrap().unwrap();
        scratch
            .extend(0..4 << round)
            .expect("the scratch vector grows");
    }
    assert!(seg.destroy::<Vec<u64>>(SCRATCH).unwrap());
    seg.check().expect("a seed is sound");
    let first = seg.find::<Vec<u64>>("vec").unwrap().unwrap() as *const Vec<u64>;
    let start = (first as usize - seg.base_address().as_ptr() as usize).saturating_sub(256);
    let (image, words) = bytes(&mut seg);
    let end = words
        .iter()
        .rposition(|&w| w != 0)
        .map_or(image.len(), |i| (8 * i + 64).min(image.len()));
    let allocator = block_words(&words, start / 8);
    let (mut pointers, mut tags) = (std::vec::Vec::new(), std::vec::Vec::new());
    let first = start.div_ceil(8);
    for (i, &w) in words.iter().enumerate().take(end / 8 - 1).skip(first) {
        let at = 8 * i;
        if allocator.binary_search(&at).is_ok() {
            continue;
        }
        let target = at.wrapping_add(w as usize);
        if w >> 48 == TAG_MARK {
            tags.push(at);
        } else if (w as i64).unsigned_abs() >= 32 && w % 8 == 0 && target < image.len() {
            pointers.push((at, target));
        }
    }
    Seed {
        name,
        image,
        area: start..end,
        pointers,
        tags,
    }
}

/// The allocator's words among the blocks, in order: each block's header (its size and
/// flags) and a free block's footer, found as the chain of headers that leads, block by
/// block, from before word `start` to the zero-sized end sentinel (runtime
/// `alloc::tlsf`); offsets in bytes. Mutations leave them to the runtime's fuzzer: they
/// would mostly make a writable open refuse the image.
fn block_words(words: &[u64], start: usize) -> std::vec::Vec<usize> {
    const FREE: u64 = 1;
    const FLAGS: u64 = 7 | 1 << 63;
    (1..start)
        .find_map(|first| {
            let mut found = std::vec::Vec::new();
            let mut i = first;
            while let Some(&w) = words.get(i) {
                let size = (w & !FLAGS) as usize / 8;
                if size == 0 {
                    return (found.len() > 16).then_some(found);
                }
                if size < 4 || i + size >= words.len() {
                    return None;
                }
                found.push(8 * i);
                if w & FREE != 0 {
                    found.push(8 * (i + size - 1));
                }
                i += size;
            }
            None
        })
        .unwrap_or_default()
}

/// The segment's bytes, and as native-endian words: natively through the kernel
/// (test-support's `image_bytes`), which reads the padding of stored values as whatever
/// it holds.
#[cfg(not(miri))]
fn bytes(seg: &mut ManagedHeapMemory) -> (std::vec::Vec<u8>, std::vec::Vec<u64>) {
    let image = shmkit_test_support::image_bytes(seg);
    let words = image
        .chunks_exact(8)
        .map(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")))
        .collect();
    (image, words)
}

/// The segment's bytes, and as words. Miri maps no memfd; the seed values hold no
/// padding, so every byte is initialised (Miri would report reading one that is not).
/// Copied whole: byte by byte costs Miri seconds.
#[cfg(miri)]
fn bytes(seg: &mut ManagedHeapMemory) -> (std::vec::Vec<u8>, std::vec::Vec<u64>) {
    let image = seg.image();
    let (bytes, words) = (image.as_ptr(), image.len() / 8);
    // SAFETY: the image's bytes, borrowed from `seg` for these copies, and aligned for
    // words (a segment is aligned to a page); a heap segment is zeroed when made, and the
    // seed stores no value with padding or uninitialised parts.
    unsafe {
        (
            std::slice::from_raw_parts(bytes.cast::<u8>(), image.len()).to_vec(),
            std::slice::from_raw_parts(bytes.cast::<u64>(), words).to_vec(),
        )
    }
}
