//! The mutation fuzzer over valid segment images: seed images with objects of every kind,
//! mutations aimed at the bytes that matter (single bytes, aligned words with plausible
//! values, lock words, counts, copied structures, truncations), every way of opening the
//! bytes, and the operation mix run on whatever opened. The runtime's fuzz test (through
//! its child binary) and the cargo-fuzz targets (`fuzz/`) both drive it: the test with a
//! seeded [`Rng`], libFuzzer with its input bytes as a [`Script`] of choices. (A leaf
//! module: the runtime's child binary compiles it too, see the crate doc.)

use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;
use std::time::Duration;

use shmkit_runtime::algorithm::{MemoryAlgorithm, SeqFit, Tlsf};
use shmkit_runtime::segment::{Backing, Lends, Mode, Writable};
use shmkit_runtime::sync::SeqLock;
use shmkit_runtime::test_hooks::SegmentHeader;
use shmkit_runtime::{
    inspect, AlignedBuffer, Anonymous, Error, FieldSchema, HashIndex, IndexKind,
    ManagedExternalBuffer, ManagedHeapMemory, ManagedMappedFile, ManagedSegment,
    ManagedSharedMemory, MappedFileObserver, NamedIndex, OrderedIndex, Schema, SchemaKind, ShmSafe,
    Unique,
};

use crate::guards::{ShmGuard, TempPath};
use crate::rng::Rng;

/// Where the fuzzer's decisions come from.
pub trait Choices {
    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64;
    /// Any 64-bit value.
    fn word(&mut self) -> u64;
}

impl Choices for Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.range(0, n)
    }
    fn word(&mut self) -> u64 {
        self.next_u64()
    }
}

/// Choices read from a libFuzzer input, as few bytes as each choice needs; zero once the
/// input runs out, so every input is a valid script.
pub struct Script<'a>(pub &'a [u8]);

impl Script<'_> {
    fn take(&mut self, n: usize) -> u64 {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head.iter().fold(0, |acc, &b| acc << 8 | u64::from(b))
    }
}

impl Choices for Script<'_> {
    fn below(&mut self, n: u64) -> u64 {
        let bytes = (64 - n.saturating_sub(1).leading_zeros()).div_ceil(8) as usize;
        self.take(bytes) % n
    }
    fn word(&mut self) -> u64 {
        self.take(8)
    }
}

/// The element types of seed objects. Every bit pattern of each is valid: a mutant's
/// values are garbage but never invalid (value validity is the validators' business).
#[derive(Clone, Copy, Debug)]
enum Ty {
    U64,
    U32,
    Bytes,
}

type Bytes = [u8; 16];

/// One object of a seed: named, or unique when `name` is None, with `len` elements.
#[derive(Clone, Debug)]
struct Obj {
    name: Option<String>,
    ty: Ty,
    len: usize,
}

/// The index a seed was created with; it opens only with the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Index {
    Hash,
    Ordered,
}

/// The memory algorithm a seed was created with; it opens only with the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Tlsf,
    SeqFit,
}

/// A valid segment image and what lives in it.
pub struct Seed {
    pub name: &'static str,
    pub index: Index,
    pub algorithm: Algorithm,
    pub image: Vec<u8>,
    objects: Vec<Obj>,
    /// End of the part of the image in use (header, allocator table, live blocks and the
    /// header of the free block after them): where a mutation hits structure.
    extent: usize,
}

/// Element `i` of the seed object `name`.
fn value(name: Option<&str>, i: usize) -> u64 {
    let salt = name.map_or(7, |n| {
        n.bytes()
            .fold(1u64, |h, b| h.wrapping_mul(31) + u64::from(b))
    });
    salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i as u64
}

/// The seed images, built once per process.
pub fn seeds() -> &'static [Seed] {
    static SEEDS: OnceLock<Vec<Seed>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        vec![
            build::<HashIndex, Tlsf>("tiny-hash", 768, 1, false),
            build::<HashIndex, Tlsf>("small-hash", 4096, 8, true),
            build::<OrderedIndex, Tlsf>("small-ordered", 4096, 8, true),
            build::<HashIndex, Tlsf>("medium-hash", 64 * 1024, 48, true),
            build::<OrderedIndex, Tlsf>("large-ordered", 1024 * 1024, 30, true),
            build::<HashIndex, SeqFit>("tiny-seqfit", 768, 1, false),
            build::<OrderedIndex, SeqFit>("small-seqfit-ordered", 4096, 8, true),
            build::<HashIndex, SeqFit>("medium-seqfit", 16 * 1024, 24, true),
        ]
    })
}

/// A heap segment of `size` bytes (index `I`, memory algorithm `A`) with `named` named objects (singles and arrays of every
/// element type), every third one destroyed again so that free blocks lie between live
/// ones, and with `extras` two unique and three anonymous objects (one of a type with a
/// stored schema) and an undone construction (on a hash index its entry stays on the
/// retired list), as an image.
fn build<I: NamedIndex, A: MemoryAlgorithm>(
    name: &'static str,
    size: usize,
    named: usize,
    extras: bool,
) -> Seed {
    let mut seg = ManagedHeapMemory::options()
        .index::<I>()
        .algorithm::<A>()
        .create(size)
        .expect("create a seed segment");
    let mut objects: Vec<Obj> = (0..named)
        .map(|i| Obj {
            name: Some(format!("object-{i}")),
            ty: [Ty::U64, Ty::U32, Ty::Bytes][i % 3],
            len: if i % 2 == 0 { 1 } else { 1 + i % 7 * 3 },
        })
        .collect();
    if extras {
        objects.extend([Ty::U64, Ty::Bytes].map(|ty| Obj {
            name: None,
            ty,
            len: 1,
        }));
    }
    for obj in &objects {
        construct(&seg, obj).expect("the seed objects fit");
    }
    if extras {
        seg.construct(GAUGE, AtomicU64::new(0x6A))
            .expect("a gauge fits");
        seg.construct(QUOTE, SeqLock::new([0x9u64, 0x10]))
            .expect("a seqlock fits");
        seg.construct(Anonymous, 0xA11u64).expect("anonymous fits");
        seg.construct(Anonymous, Described(0xD5))
            .expect("a described object fits");
        seg.construct_array(Anonymous, 5, 0xA12u32)
            .expect("an anonymous array fits");
    }
    let mut i = 0;
    objects.retain(|obj| {
        i += 1;
        let keep = i % 3 != 2 || obj.name.is_none();
        if !keep {
            destroy(&mut seg, obj).expect("destroy a seed object");
        }
        keep
    });
    if extras {
        let undone = seg.construct_from_iter("undone", ShortIter(0));
        assert!(matches!(undone, Err(Error::IteratorTooShort { .. })));
    }
    seg.check().expect("a seed is sound");
    let image = crate::internals::image_bytes(&mut seg);
    let extent = image[..image.len() - 64]
        .iter()
        .rposition(|&b| b != 0)
        .map_or(image.len(), |p| (p + 64).next_multiple_of(64));
    Seed {
        name,
        index: if I::KIND == HashIndex::KIND {
            Index::Hash
        } else {
            Index::Ordered
        },
        algorithm: if A::KIND == SeqFit::KIND {
            Algorithm::SeqFit
        } else {
            Algorithm::Tlsf
        },
        image,
        objects,
        extent,
    }
}

/// The observable objects of a seed with extras (what an observer reads, see
/// [`observe_mix`]): an `AtomicU64` and a `SeqLock<[u64; 2]>`.
const GAUGE: &str = "gauge";
const QUOTE: &str = "quote";

/// A type with a schema, as `#[derive(ShmSafe)]` gives one (the derive's crate is not a
/// dependency here): constructing it fills the table of type schemas that mutants forge.
#[repr(C)]
struct Described(u64);

const DESCRIBED: Schema = Schema {
    name: "Described",
    kind: SchemaKind::TupleStruct,
    size: 8,
    align: 8,
    fields: &[FieldSchema {
        name: "0",
        ty: "u64",
        offset: Some(0),
        size: 8,
        align: 8,
        fingerprint: u64::LAYOUT_FINGERPRINT,
    }],
    variants: &[],
    generics: &[],
};

// SAFETY: plain data (one `u64`), every bit pattern a valid value.
unsafe impl ShmSafe for Described {
    const ALL_BIT_PATTERNS_VALID: bool = true;
    const SCHEMA: Option<&'static Schema> = Some(&DESCRIBED);
}

/// Yields one element but claims two: the construction is undone.
struct ShortIter(u8);

impl Iterator for ShortIter {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        self.0 += 1;
        (self.0 == 1).then_some(1)
    }
}

impl ExactSizeIterator for ShortIter {
    fn len(&self) -> usize {
        2
    }
}

fn construct<B: Backing, M: Writable, I: NamedIndex, A: MemoryAlgorithm>(
    seg: &ManagedSegment<B, M, I, A>,
    obj: &Obj,
) -> shmkit_runtime::Result<()> {
    let name = obj.name.as_deref();
    let u64_at = |i| value(name, i);
    let u32_at = |i| value(name, i) as u32;
    let bytes_at = |i| -> Bytes { [value(name, i) as u8; 16] };
    match (name, obj.ty) {
        (Some(n), Ty::U64) => seg.construct_array_with(n, obj.len, u64_at).map(drop),
        (Some(n), Ty::U32) => seg.construct_array_with(n, obj.len, u32_at).map(drop),
        (Some(n), Ty::Bytes) => seg.construct_array_with(n, obj.len, bytes_at).map(drop),
        (None, Ty::U64) => seg.construct(Unique, u64_at(0)).map(drop),
        (None, Ty::U32) => seg.construct(Unique, u32_at(0)).map(drop),
        (None, Ty::Bytes) => seg.construct(Unique, bytes_at(0)).map(drop),
    }
}

fn destroy<B: Backing, M: Writable, I: NamedIndex, A: MemoryAlgorithm>(
    seg: &mut ManagedSegment<B, M, I, A>,
    obj: &Obj,
) -> shmkit_runtime::Result<bool> {
    match (obj.name.as_deref(), obj.ty) {
        (Some(n), Ty::U64) => seg.destroy::<u64>(n),
        (Some(n), Ty::U32) => seg.destroy::<u32>(n),
        (Some(n), Ty::Bytes) => seg.destroy::<Bytes>(n),
        (None, Ty::U64) => seg.destroy::<u64>(Unique),
        (None, Ty::U32) => seg.destroy::<u32>(Unique),
        (None, Ty::Bytes) => seg.destroy::<Bytes>(Unique),
    }
}

/// Modes that lend every seed object type (all of them do: the types are plain data).
trait Reads: Mode + Lends<u64> + Lends<u32> + Lends<Bytes> {}
impl<M: Mode + Lends<u64> + Lends<u32> + Lends<Bytes>> Reads for M {}

/// Looks `obj` up with its own type and reads every element; None when it is not there.
fn find<B: Backing, M: Reads, I: NamedIndex, A: MemoryAlgorithm>(
    seg: &ManagedSegment<B, M, I, A>,
    obj: &Obj,
) -> shmkit_runtime::Result<Option<u64>> {
    fn sum<T>(found: Option<&[T]>, f: impl Fn(&T) -> u64) -> Option<u64> {
        found.map(|s| s.iter().map(f).fold(0, u64::wrapping_add))
    }
    let bytes = |b: &Bytes| u64::from(b[0]);
    Ok(match (obj.name.as_deref(), obj.ty) {
        (Some(n), Ty::U64) => sum(seg.find_slice::<u64>(n)?, |&v| v),
        (Some(n), Ty::U32) => sum(seg.find_slice::<u32>(n)?, |&v| v.into()),
        (Some(n), Ty::Bytes) => sum(seg.find_slice::<Bytes>(n)?, bytes),
        (None, Ty::U64) => seg.find_unique::<u64>()?.copied(),
        (None, Ty::U32) => seg.find_unique::<u32>()?.map(|&v| v.into()),
        (None, Ty::Bytes) => seg.find_unique::<Bytes>()?.map(bytes),
    })
}

/// How a mutant is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// `ManagedHeapMemory::from_image`.
    Heap,
    /// `ManagedExternalBuffer::open` on an `AlignedBuffer`.
    Buffer,
    /// `ManagedExternalBuffer::options().read_only().open`.
    ReadOnlyBuffer,
    /// A mapped file, read-write.
    File,
    /// A mapped file, read-only.
    ReadOnlyFile,
    /// A mapped file, copy-on-write.
    CopyOnWriteFile,
    /// A POSIX shared memory object, read-write.
    Shm,
    /// A mapped file, through a `MappedFileObserver`.
    ObservedFile,
}

impl Path {
    /// Every path, in-memory ones first; the devices are slower and drawn less often.
    pub const ALL: [Path; 8] = [
        Path::Heap,
        Path::Buffer,
        Path::ReadOnlyBuffer,
        Path::File,
        Path::ReadOnlyFile,
        Path::CopyOnWriteFile,
        Path::Shm,
        Path::ObservedFile,
    ];

    fn pick(c: &mut impl Choices) -> Path {
        match c.below(33) {
            0..=9 => Path::Heap,
            10..=19 => Path::Buffer,
            20..=27 => Path::ReadOnlyBuffer,
            28 => Path::File,
            29 => Path::ReadOnlyFile,
            30 => Path::CopyOnWriteFile,
            31 => Path::ObservedFile,
            _ => Path::Shm,
        }
    }
}

/// One mutant: which seed, how it is opened, its bytes, and what was done to them.
pub struct Case {
    pub seed: &'static Seed,
    pub path: Path,
    pub image: Vec<u8>,
    /// The mutations, one per `;`, to reproduce or minimise a finding.
    pub log: String,
}

/// A mutant of a seed chosen by `c`, opened through a path chosen by `c`.
pub fn case(c: &mut impl Choices) -> Case {
    let path = Path::pick(c);
    case_on(path, c)
}

/// A mutant of a seed chosen by `c`, to be opened through `path` (a TLSF seed for
/// [`Path::ObservedFile`]: an observer maps TLSF segments only).
pub fn case_on(path: Path, c: &mut impl Choices) -> Case {
    let seeds: Vec<&'static Seed> = seeds()
        .iter()
        .filter(|s| path != Path::ObservedFile || s.algorithm == Algorithm::Tlsf)
        .collect();
    let seed = seeds[c.below(seeds.len() as u64) as usize];
    let mut image = seed.image.clone();
    let mut log = String::new();
    // Mostly one mutation: a mutant that still opens tests the most.
    for _ in 0..[1, 1, 1, 2][c.below(4) as usize] {
        mutate(&mut image, seed, c, &mut log);
    }
    if c.below(40) == 0 {
        let len = c.below(image.len() as u64) as usize;
        let _ = write!(log, "truncate to {len};");
        image.truncate(len);
    }
    Case {
        seed,
        path,
        image,
        log,
    }
}

const HEADER: usize = size_of::<SegmentHeader>();

/// A position in `0..len` of `align`: mostly in the header, else in the part in use, else
/// anywhere.
fn position(seed: &Seed, len: usize, align: usize, c: &mut impl Choices) -> usize {
    let within = match c.below(8) {
        0..=1 => HEADER + 64,
        2..=6 => seed.extent,
        _ => len,
    }
    .min(len);
    (c.below((within / align) as u64) as usize) * align
}

/// A plausible 64-bit value for a word at `at`: boundaries, offsets in and just outside
/// the segment, small counts, lock words of live, dead and poisoned owners, a word copied
/// from elsewhere in the image (a real offset of another structure), the word nudged.
pub fn interesting(image: &[u8], at: usize, c: &mut impl Choices) -> u64 {
    let len = image.len() as u64;
    let old = u64::from_ne_bytes(image[at..at + 8].try_into().expect("8 bytes"));
    match c.below(14) {
        0 => 0,
        1 => 1,
        2 => u64::MAX,
        3 => len - 8 * c.below(4),
        4 => len + 8 * c.below(4),
        5 => c.below(len) & !7,
        6 => c.below(len) & !15 | 8,
        7 => 2 + c.below(62),
        8 => {
            let from = c.below(len / 8) as usize * 8;
            u64::from_ne_bytes(image[from..from + 8].try_into().expect("8 bytes"))
        }
        9 => old.wrapping_add([1, 8, 16, 32, 64][c.below(5) as usize]),
        10 => old.wrapping_sub([1, 8, 16, 32, 64][c.below(5) as usize]),
        11 => old ^ 1 << c.below(64),
        12 => old & !0xFFFF_FFFF | lock_word(c),
        _ => c.word(),
    }
}

/// A 32-bit lock or state word: a dead owner (pid 0x3FFF_FFFF is above any Linux pid), a
/// poisoned lock, the waiters bit, a small state.
fn lock_word(c: &mut impl Choices) -> u64 {
    const WAITERS: u64 = 1 << 31;
    match c.below(5) {
        0 => 0x3FFF_FFFF,
        1 => 0x7FFF_FFFF,
        2 => WAITERS | 0x3FFF_FFFF,
        3 => WAITERS,
        _ => c.below(5),
    }
}

fn mutate(image: &mut [u8], seed: &Seed, c: &mut impl Choices, log: &mut String) {
    let len = image.len();
    match c.below(10) {
        0..=2 => {
            let at = position(seed, len, 1, c);
            let v = match c.below(3) {
                0 => image[at] ^ 1 << c.below(8),
                1 => image[at].wrapping_add(1 + c.below(2) as u8 * 254),
                _ => c.below(256) as u8,
            };
            let _ = write!(log, "byte {at}={v};");
            image[at] = v;
        }
        3..=7 => {
            let at = position(seed, len - 7, 8, c);
            let v = interesting(image, at, c);
            let _ = write!(log, "word {at}={v:#x};");
            image[at..at + 8].copy_from_slice(&v.to_ne_bytes());
        }
        8 => {
            let at = position(seed, len - 3, 4, c);
            let v = lock_word(c) as u32;
            let _ = write!(log, "u32 {at}={v:#x};");
            image[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        }
        _ => {
            let n = 8 * (1 + c.below(8) as usize);
            let from = position(seed, len - n, 8, c);
            let to = position(seed, len - n, 8, c);
            let _ = write!(log, "copy {n} {from}->{to};");
            image.copy_within(from..from + n, to);
        }
    }
}

/// What became of a mutant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Refused at open, with this error.
    Refused(String),
    /// Opened, and an operation of the mix reported this error.
    Failed(String),
    /// Opened and ran the whole mix without an error it did not expect.
    Ran,
}

impl Outcome {
    /// One word for the tallies.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Refused(_) => "refused",
            Outcome::Failed(_) => "failed",
            Outcome::Ran => "ran",
        }
    }
}

/// How long a file or shm open waits for a creator the header says is still at work: the
/// bytes were written whole, so the wait could only end in a timeout.
const DEVICE_INIT_TIMEOUT: Duration = Duration::from_millis(20);

/// Opens the mutant through its path and runs the operation mix on what opened.
pub fn run(case: &Case) -> Outcome {
    match (case.seed.index, case.seed.algorithm) {
        (Index::Hash, Algorithm::Tlsf) => run_with::<HashIndex, Tlsf>(case),
        (Index::Ordered, Algorithm::Tlsf) => run_with::<OrderedIndex, Tlsf>(case),
        (Index::Hash, Algorithm::SeqFit) => run_with::<HashIndex, SeqFit>(case),
        (Index::Ordered, Algorithm::SeqFit) => run_with::<OrderedIndex, SeqFit>(case),
    }
}

/// Opens the mutant with index `I` and memory algorithm `A` (the seed's).
fn run_with<I: NamedIndex, A: MemoryAlgorithm>(case: &Case) -> Outcome {
    let objects = &case.seed.objects;
    match case.path {
        Path::Heap => match ManagedHeapMemory::options()
            .index::<I>()
            .algorithm::<A>()
            .from_image(&case.image)
        {
            Ok(mut seg) => write_mix(&mut seg, objects),
            Err(e) => refused(e),
        },
        Path::Buffer => {
            let mut buf = AlignedBuffer::from_image(&case.image);
            match ManagedExternalBuffer::options()
                .index::<I>()
                .algorithm::<A>()
                .open(&mut buf)
            {
                Ok(mut seg) => write_mix(&mut seg, objects),
                Err(e) => refused(e),
            }
        }
        Path::ReadOnlyBuffer => {
            let buf = AlignedBuffer::from_image(&case.image);
            match ManagedExternalBuffer::options()
                .read_only()
                .index::<I>()
                .algorithm::<A>()
                .open(&buf)
            {
                Ok(seg) => read_mix(&seg, objects).map_or_else(Outcome::Failed, |()| Outcome::Ran),
                Err(e) => refused(e),
            }
        }
        Path::ObservedFile => {
            let file = TempPath::new();
            std::fs::write(file.get(), &case.image).expect("write the mutant to a file");
            match MappedFileObserver::open_timeout(file.get(), DEVICE_INIT_TIMEOUT) {
                Ok(observer) => {
                    observe_mix(&observer, objects).map_or_else(Outcome::Failed, |()| Outcome::Ran)
                }
                Err(e) => refused(e),
            }
        }
        Path::File | Path::ReadOnlyFile | Path::CopyOnWriteFile => {
            let file = TempPath::new();
            std::fs::write(file.get(), &case.image).expect("write the mutant to a file");
            let o = ManagedMappedFile::options()
                .init_timeout(DEVICE_INIT_TIMEOUT)
                .index::<I>()
                .algorithm::<A>();
            let name = file.get();
            match case.path {
                Path::File => match o.open(name) {
                    Ok(mut seg) => write_mix(&mut seg, objects),
                    Err(e) => refused(e),
                },
                Path::ReadOnlyFile => match o.read_only().open(name) {
                    Ok(seg) => {
                        read_mix(&seg, objects).map_or_else(Outcome::Failed, |()| Outcome::Ran)
                    }
                    Err(e) => refused(e),
                },
                _ => match o.copy_on_write().open(name) {
                    Ok(mut seg) => write_mix(&mut seg, objects),
                    Err(e) => refused(e),
                },
            }
        }
        Path::Shm => {
            let shm = ShmGuard::new();
            std::fs::write(
                std::path::Path::new("/dev/shm").join(shm.get()),
                &case.image,
            )
            .expect("write the mutant to a shared memory object");
            match ManagedSharedMemory::options()
                .init_timeout(DEVICE_INIT_TIMEOUT)
                .index::<I>()
                .algorithm::<A>()
                .open(shm.get())
            {
                Ok(mut seg) => write_mix(&mut seg, objects),
                Err(e) => refused(e),
            }
        }
    }
}

fn refused(e: Error) -> Outcome {
    Outcome::Refused(format!("{e:?}"))
}

/// The reading half of the mix: every seed object with its own type and with another,
/// both iterations, the counts, `check`.
fn read_mix<B: Backing, M: Reads, I: NamedIndex, A: MemoryAlgorithm>(
    seg: &ManagedSegment<B, M, I, A>,
    objects: &[Obj],
) -> Result<(), String> {
    let mut errors = Vec::new();
    let mut note = |what: &str, r: shmkit_runtime::Result<()>| {
        if let Err(e) = r {
            errors.push(format!("{what}: {e:?}"));
        }
    };
    for obj in objects {
        note("find", find(seg, obj).map(drop));
    }
    if let Some(Obj {
        name: Some(n),
        ty: Ty::U64 | Ty::Bytes,
        ..
    }) = objects.first()
    {
        // The wrong type: a mismatch (or nothing), never a reinterpretation.
        match seg.find_slice::<u32>(n.as_str()) {
            Ok(_) | Err(Error::TypeMismatch { .. }) => {}
            Err(e) => note("find as another type", Err(e)),
        }
    }
    for listed in [seg.named_objects(), seg.unique_objects()] {
        note(
            "iterate",
            listed.map(|it| {
                for info in it {
                    std::hint::black_box((info.name.len(), info.length, info.type_name.len()));
                }
            }),
        );
    }
    std::hint::black_box((seg.num_named_objects(), seg.num_unique_objects()));
    note("inspect", inspect::objects(seg).map(drop));
    note("type schemas", inspect::type_schemas(seg).map(drop));
    std::hint::black_box((seg.free_memory(), seg.check_sanity()));
    note("check", seg.check());
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// What an observer can do: every seed object looked up as an atomic (a mismatch, or
/// nothing where a mutant lost it), the gauge loaded and the quote read. Waits are short:
/// a forged held index lock would make every look wait its whole timeout.
fn observe_mix(observer: &MappedFileObserver, objects: &[Obj]) -> Result<(), String> {
    const WAIT: Duration = Duration::from_millis(5);
    let mut errors = Vec::new();
    for name in objects.iter().filter_map(|o| o.name.as_deref()) {
        match observer.find_timeout::<AtomicU64>(name, WAIT) {
            Ok(found) => {
                std::hint::black_box(found.map(|a| a.load()));
            }
            Err(Error::TypeMismatch { .. }) => {}
            Err(e) => errors.push(format!("find {name}: {e:?}")),
        }
    }
    match observer.find_timeout::<AtomicU64>(GAUGE, WAIT) {
        Ok(found) => {
            std::hint::black_box(found.map(|a| a.load()));
        }
        Err(e) => errors.push(format!("find the gauge: {e:?}")),
    }
    match observer.find_timeout::<SeqLock<[u64; 2]>>(QUOTE, WAIT) {
        Ok(found) => {
            std::hint::black_box(found.map(|q| q.read_timeout(WAIT)));
        }
        Err(e) => errors.push(format!("find the quote: {e:?}")),
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// The whole mix on a writable mapping: the reading half, then raw allocation and
/// deallocation, destroying seed objects, constructing objects of every kind (and
/// destroying them), and `check` again.
fn write_mix<B: Backing, M: Writable, I: NamedIndex, A: MemoryAlgorithm>(
    seg: &mut ManagedSegment<B, M, I, A>,
    objects: &[Obj],
) -> Outcome {
    let mut errors = Vec::new();
    if let Err(e) = read_mix(seg, objects) {
        errors.push(e);
    }
    let mut note = |what: &str, r: shmkit_runtime::Result<()>| match r {
        Ok(()) | Err(Error::OutOfMemory { .. }) => {}
        Err(e) => errors.push(format!("{what}: {e:?}")),
    };
    let mut blocks = Vec::new();
    for size in [8, 40, 200, 1000] {
        note(
            "allocate",
            seg.allocate(size).map(|p| {
                // SAFETY: a fresh allocation of `size` bytes.
                unsafe { p.as_ptr().write_bytes(0x5A, size) };
                blocks.push(p);
            }),
        );
    }
    note(
        "allocate aligned",
        seg.allocate_aligned(64, 256).map(|p| blocks.push(p)),
    );
    for p in blocks {
        // SAFETY: allocated above from this segment, freed once.
        note("deallocate", unsafe { seg.deallocate(p) });
    }
    for obj in objects.iter().step_by(2) {
        note("destroy", destroy(seg, obj).map(drop));
    }
    let fresh = [
        Obj {
            name: Some("fuzz-single".into()),
            ty: Ty::U64,
            len: 1,
        },
        Obj {
            name: Some("fuzz-array".into()),
            ty: Ty::U32,
            len: 9,
        },
        Obj {
            name: None,
            ty: Ty::U32,
            len: 1,
        },
    ];
    for obj in &fresh {
        match construct(seg, obj) {
            Ok(()) | Err(Error::OutOfMemory { .. } | Error::AlreadyExists { .. }) => {}
            Err(e) => note("construct", Err(e)),
        }
        note("find constructed", find(seg, obj).map(drop));
    }
    match seg.construct(Anonymous, 0xA13u64) {
        Ok(r) => {
            let p: *const u64 = r;
            note("destroy anonymous", seg.destroy_ptr(p));
        }
        Err(e) => note("construct anonymous", Err(e)),
    }
    // Looks its schema up in the (maybe forged) table, and stores it if missing.
    match seg.construct(Anonymous, Described(0xD6)) {
        Ok(r) => {
            let p: *const Described = r;
            note("destroy described", seg.destroy_ptr(p));
        }
        Err(e) => note("construct described", Err(e)),
    }
    for obj in &fresh {
        note("destroy constructed", destroy(seg, obj).map(drop));
    }
    note("check after", seg.check());
    if errors.is_empty() {
        Outcome::Ran
    } else {
        Outcome::Failed(errors.join("; "))
    }
}
