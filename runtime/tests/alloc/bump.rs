//! A memory algorithm written outside the crate, with nothing but the public API: a bump
//! allocator (Boost's "writing a new memory allocation algorithm" example, redone). It
//! proves the seam is usable by a user: segments, named objects, containers' allocations
//! and the thread caches all run on it unchanged.

use shmkit_runtime::algorithm::{
    size_in, Heap, MemoryAlgorithm, SeqFit, Tlsf, ALGORITHM_BIT, FREE, MARKS, MIN_BLOCK,
};
use shmkit_runtime::{AlignedBuffer, Error, ManagedHeapMemory};

/// Hands out blocks from a cursor that only moves up; freed blocks are marked free and
/// counted, never reused (until a crash recovery, which has nothing to reuse either). The
/// state's first word is the cursor: where the free tail starts (the end when none).
/// Neither `Send` nor `Sync` (the raw pointer): an algorithm is a type, never a value, so a
/// segment using it is both all the same.
struct Bump(std::marker::PhantomData<*const ()>);

const CURSOR: usize = 0;

// SAFETY: a block is handed out only from the free tail at the cursor, which no used block
// overlaps; its header is written after the tail's new header, so the chain stays walkable
// at every write; `check` and `rebuild` read only headers through the heap's checked
// accessors.
unsafe impl MemoryAlgorithm for Bump {
    const NAME: &'static str = "bump";
    const KIND: u64 = 0xB0B0;

    fn init(heap: &mut Heap) {
        let (start, end) = (heap.start(), heap.end());
        heap.set_word(start, (end - start) | FREE);
        heap.set_free_bytes(end - start);
        heap.set_algorithm_word(CURSOR, start);
    }

    fn allocate(heap: &mut Heap, size: u64) -> Option<u64> {
        let (at, end) = (heap.algorithm_word(CURSOR), heap.end());
        let have = end - at;
        if have < size {
            return None;
        }
        let taken = if have - size >= MIN_BLOCK as u64 {
            heap.set_word(at + size, (have - size) | FREE);
            size
        } else {
            have
        };
        heap.set_word(at, taken);
        heap.set_algorithm_word(CURSOR, at + taken);
        heap.set_free_bytes(heap.free_bytes() - taken);
        Some(at)
    }

    fn deallocate(heap: &mut Heap, off: u64) {
        let size = size_in(heap.word(off));
        heap.set_word(off, size | FREE);
        heap.set_free_bytes(heap.free_bytes() + size);
    }

    fn check(heap: &Heap) -> Result<(), String> {
        let cursor = heap.algorithm_word(CURSOR);
        let tail = heap
            .blocks()
            .find(|(b, _)| b.offset >= cursor)
            .map(|(b, h)| (b.offset, h & FREE != 0, b.offset + b.size));
        match tail {
            None if cursor == heap.end() => Ok(()),
            Some((off, true, end)) if off == cursor && end == heap.end() => Ok(()),
            _ => Err(format!(
                "the cursor {cursor} is not the start of the free tail"
            )),
        }
    }

    fn rebuild(heap: &mut Heap) -> Result<(), String> {
        // The cursor goes to the first block of the free run that reaches the end; that
        // run becomes one block.
        let blocks: Vec<_> = heap.blocks().collect();
        let reached = blocks
            .last()
            .map_or(heap.start(), |(b, _)| b.offset + b.size);
        if reached != heap.end() {
            return Err(format!("the chain stops at {reached}"));
        }
        let run = blocks
            .iter()
            .rev()
            .take_while(|(_, h)| h & FREE != 0)
            .last()
            .map_or(heap.end(), |(b, _)| b.offset);
        if run < heap.end() {
            heap.set_word(run, (heap.end() - run) | FREE);
        }
        heap.set_algorithm_word(CURSOR, run);
        let free = heap
            .blocks()
            .filter(|(_, h)| h & FREE != 0)
            .map(|(b, _)| b.size)
            .sum();
        heap.set_free_bytes(free);
        Ok(())
    }
}

type BumpHeap = ManagedHeapMemory<shmkit_runtime::HashIndex, Bump>;

fn bump(size: usize) -> BumpHeap {
    ManagedHeapMemory::options()
        .algorithm::<Bump>()
        .create(size)
        .unwrap()
}

#[test]
fn a_user_written_algorithm_runs_a_segment() {
    let seg = bump(64 * 1024);
    assert_eq!(seg.memory_algorithm().name(), "bump");
    let first = seg.allocate(100).unwrap();
    let second = seg.allocate(100).unwrap();
    // Bumped: each block comes after the one before.
    assert!(second.as_ptr() > first.as_ptr());
    // SAFETY: both are live allocations of this segment, freed once.
    unsafe {
        seg.deallocate(first).unwrap();
        seg.deallocate(second).unwrap();
    }
    // Named objects live in its blocks like in any other segment.
    seg.construct("counter", 8u64).unwrap();
    assert_eq!(seg.find::<u64>("counter").unwrap().copied(), Some(8));
    seg.memory_algorithm().check().unwrap();
    // Every byte taken is accounted for: what is not free is in use.
    let stats = seg.memory_algorithm().stats();
    assert_eq!(stats.name, "bump");
    assert!(stats.free < stats.managed);
}

#[test]
fn a_user_written_algorithm_runs_out_cleanly_and_keeps_its_state_consistent() {
    let seg = bump(8 * 1024);
    let mut blocks = Vec::new();
    loop {
        match seg.allocate(1000) {
            Ok(p) => blocks.push(p),
            Err(Error::OutOfMemory { .. }) => break,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert!(
        blocks.len() >= 4,
        "{} blocks of 1000 bytes in 8 KiB",
        blocks.len()
    );
    for p in blocks {
        // SAFETY: live allocations of this segment, freed once.
        unsafe { seg.deallocate(p).unwrap() };
    }
    seg.memory_algorithm().check().unwrap();
    // Freed but never reused: a bump allocator is full once its cursor reaches the end.
    assert!(matches!(seg.allocate(1000), Err(Error::OutOfMemory { .. })));
}

#[test]
fn a_segment_refuses_to_open_with_another_algorithm_than_it_was_made_with() {
    let mut seg = bump(16 * 1024);
    seg.construct("x", 1u32).unwrap();
    let image = AlignedBuffer::from_image(seg.image());
    let err = ManagedHeapMemory::from_image(&image).unwrap_err();
    assert!(
        matches!(&err, Error::AlgorithmMismatch { expected: "tlsf", found, .. } if found.contains("0xb0b0")),
        "{err}"
    );
    let err = ManagedHeapMemory::options()
        .algorithm::<SeqFit>()
        .from_image(&image)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::AlgorithmMismatch {
                expected: "seqfit",
                ..
            }
        ),
        "{err}"
    );
    // With its own algorithm the copy opens, and is checked in full on the way.
    let copy = ManagedHeapMemory::options()
        .algorithm::<Bump>()
        .from_image(&image)
        .unwrap();
    assert_eq!(copy.find::<u32>("x").unwrap().copied(), Some(1));
    // And a TLSF segment refuses the bump algorithm.
    let mut tlsf = ManagedHeapMemory::new(16 * 1024).unwrap();
    let err = ManagedHeapMemory::options()
        .algorithm::<Bump>()
        .from_image(&AlignedBuffer::from_image(tlsf.image()))
        .unwrap_err();
    assert!(
        matches!(&err, Error::AlgorithmMismatch { expected: "bump", found, .. } if found == "tlsf"),
        "{err}"
    );
}

#[test]
fn a_segment_of_an_algorithm_that_is_not_send_is_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<BumpHeap>();
    let seg = bump(16 * 1024);
    let p = std::thread::scope(|s| {
        s.spawn(|| seg.allocate(64).map(|p| p.as_ptr().addr()))
            .join()
    })
    .unwrap()
    .unwrap();
    assert!(seg.contains(p as *const u8));
}

#[test]
fn the_block_format_constants_are_what_the_documentation_says() {
    assert_eq!(FREE, 1);
    assert_eq!(ALGORITHM_BIT, 2);
    assert_eq!(MARKS & (FREE | ALGORITHM_BIT), 0);
    assert_eq!(size_in(48 | FREE | ALGORITHM_BIT), 48);
    assert_eq!(<Tlsf as MemoryAlgorithm>::KIND, 0);
}
