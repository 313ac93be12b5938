//! The seed images, built once per process, and what the mutators aim at in them.

use std::ops::Range;
use std::sync::OnceLock;

use shmkit_containers::{Vec, VecExt};
use shmkit_runtime::ManagedHeapMemory;

use crate::objects;

/// The size of a seed segment.
pub const SIZE: usize = 64 << 10;

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

/// The seeds: the objects grown over two rounds, and over six.
pub fn seeds() -> &'static [Seed] {
    static SEEDS: OnceLock<[Seed; 2]> = OnceLock::new();
    SEEDS.get_or_init(|| [build("two rounds", 2), build("six rounds", 6)])
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
    let image = bytes(&mut seg);
    let end = image
        .iter()
        .rposition(|&b| b != 0)
        .map_or(image.len(), |p| {
            (p + 64).next_multiple_of(8).min(image.len())
        });
    let allocator = block_words(&image, start);
    let (mut pointers, mut tags) = (std::vec::Vec::new(), std::vec::Vec::new());
    for at in (start.next_multiple_of(8)..end.saturating_sub(8)).step_by(8) {
        if allocator.binary_search(&at).is_ok() {
            continue;
        }
        let w = Seed::word(&image, at);
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
/// block, from before `start` to the zero-sized end sentinel (runtime `alloc::tlsf`).
/// Mutations leave them to the runtime's fuzzer: they would mostly make a writable open
/// refuse the image.
fn block_words(image: &[u8], start: usize) -> std::vec::Vec<usize> {
    const FREE: u64 = 1;
    const FLAGS: u64 = 7 | 1 << 63;
    (8..start)
        .step_by(8)
        .find_map(|first| {
            let mut words = std::vec::Vec::new();
            let mut at = first;
            while at + 8 <= image.len() {
                let w = Seed::word(image, at);
                let size = (w & !FLAGS) as usize;
                if size == 0 {
                    return (words.len() > 16).then_some(words);
                }
                if size < 32 || at + size >= image.len() {
                    return None;
                }
                words.push(at);
                if w & FREE != 0 {
                    words.push(at + size - 8);
                }
                at += size;
            }
            None
        })
        .unwrap_or_default()
}

/// The segment's bytes, natively through the kernel (test-support's `image_bytes`), which
/// reads the padding of stored values as whatever it holds.
#[cfg(not(miri))]
fn bytes(seg: &mut ManagedHeapMemory) -> std::vec::Vec<u8> {
    shmkit_test_support::image_bytes(seg)
}

/// The segment's bytes. Miri maps no memfd; the seed values hold no padding, so every
/// byte is initialised (Miri would report reading one that is not).
#[cfg(miri)]
fn bytes(seg: &mut ManagedHeapMemory) -> std::vec::Vec<u8> {
    seg.image()
        .iter()
        // SAFETY: a heap segment is zeroed when made, and the seed stores no value with
        // padding or uninitialised parts.
        .map(|b| unsafe { b.assume_init() })
        .collect()
}
