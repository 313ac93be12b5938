//! The segment manager's allocation behaviours (Boost's segment-manager and memory-algorithm
//! tests, redone), on heap and external-buffer segments so that Miri can run them:
//! `cargo +nightly miri test -p shmkit-runtime --test alloc`. Compiled once per memory
//! algorithm (`super::Algo`: see `on_tlsf.rs`, `on_seqfit.rs`).

use std::ptr::NonNull;

use shmkit_runtime::Command;
use shmkit_runtime::{
    AlignedBuffer, Error, HashIndex, ImageBytes, ManagedExternalBuffer, ManagedHeapMemory, ReadOnly,
};

use super::Algo;

/// A heap segment of the algorithm under test.
type Heap = ManagedHeapMemory<HashIndex, Algo>;

fn heap_of(size: usize) -> Heap {
    ManagedHeapMemory::options()
        .algorithm::<Algo>()
        .create(size)
        .unwrap()
}

fn heap_from(image: &(impl ImageBytes + ?Sized)) -> Result<Heap, Error> {
    ManagedHeapMemory::options()
        .algorithm::<Algo>()
        .from_image(image)
}

fn buffer_create(
    buf: &mut AlignedBuffer,
) -> Result<ManagedExternalBuffer<'_, shmkit_runtime::Exclusive, HashIndex, Algo>, Error> {
    ManagedExternalBuffer::options()
        .algorithm::<Algo>()
        .create(buf)
}

fn buffer_open(
    buf: &mut AlignedBuffer,
) -> Result<ManagedExternalBuffer<'_, shmkit_runtime::Exclusive, HashIndex, Algo>, Error> {
    ManagedExternalBuffer::options()
        .algorithm::<Algo>()
        .open(buf)
}

/// Smaller sizes under Miri, which is slow.
const SEG: usize = if cfg!(miri) { 64 * 1024 } else { 1024 * 1024 };
const PAGE: usize = 4096;

/// `allocation_command` on blocks these tests own (its `unsafe` contract).
fn command(
    seg: &Heap,
    cmd: Command,
    limit: usize,
    preferred: usize,
    reuse: Option<NonNull<u8>>,
    object_size: usize,
) -> Result<shmkit_runtime::Allocation, Error> {
    // SAFETY: every `reuse` passed by these tests is a live block they own; the one test
    // that passes a foreign pointer checks that it is refused before anything is touched.
    unsafe { seg.allocation_command(cmd, limit, preferred, reuse, object_size) }
}

fn heap() -> Heap {
    heap_of(SEG)
}

/// Fills a block with a byte pattern.
fn fill(p: NonNull<u8>, len: usize, byte: u8) {
    // SAFETY: callers pass a live allocation of at least `len` bytes.
    unsafe { p.as_ptr().write_bytes(byte, len) }
}

fn all_equal(p: NonNull<u8>, len: usize, byte: u8) -> bool {
    // SAFETY: callers pass a live allocation of at least `len` bytes.
    unsafe { std::slice::from_raw_parts(p.as_ptr(), len) }
        .iter()
        .all(|&b| b == byte)
}

/// Allocates blocks of cycling sizes until the segment is full.
fn fill_segment(seg: &Heap) -> Vec<(NonNull<u8>, usize)> {
    let mut blocks = Vec::new();
    for i in 0.. {
        let size = [8, 24, 100, 1000, 3000][i % 5];
        match seg.allocate(size) {
            Ok(p) => blocks.push((p, size)),
            Err(Error::OutOfMemory { .. }) if size == 8 => break,
            Err(Error::OutOfMemory { .. }) => continue,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    blocks
}

#[test]
fn freeing_everything_restores_free_memory_in_any_order() {
    let seg = heap();
    let free0 = seg.free_memory();
    assert!(seg.all_memory_deallocated());
    for order in ["direct", "reverse", "mixed"] {
        let mut blocks = fill_segment(&seg);
        assert!(blocks.len() > 10);
        assert!(!seg.all_memory_deallocated());
        assert!(seg.free_memory() < 8 + 32, "the segment should be full");
        for (i, &(p, size)) in blocks.iter().enumerate() {
            fill(p, size, i as u8);
        }
        match order {
            "reverse" => blocks.reverse(),
            "mixed" => {
                // Every other block first, then the rest.
                let (even, odd): (Vec<_>, Vec<_>) =
                    blocks.iter().enumerate().partition(|(i, _)| i % 2 == 0);
                blocks = even.into_iter().chain(odd).map(|(_, b)| *b).collect();
            }
            _ => {}
        }
        for (p, _) in blocks {
            // SAFETY: allocated above, freed once.
            unsafe { seg.deallocate(p).unwrap() };
        }
        seg.check().unwrap();
        assert_eq!(seg.free_memory(), free0, "{order} order");
        assert!(seg.all_memory_deallocated(), "{order} order");
    }
}

#[test]
fn an_allocation_larger_than_the_segment_fails_and_changes_nothing() {
    let seg = heap();
    let keep = seg.allocate(100).unwrap();
    let free = seg.free_memory();
    for size in [SEG, SEG * 2, free, usize::MAX, usize::MAX / 2] {
        match seg.allocate(size) {
            Err(Error::OutOfMemory { requested, .. }) => assert_eq!(requested, size),
            other => panic!("allocate({size}) gave {other:?}"),
        }
        assert!(seg.try_allocate(size).is_none());
        assert_eq!(seg.free_memory(), free);
    }
    assert!(seg.check_sanity());
    // SAFETY: allocated above.
    unsafe { seg.deallocate(keep).unwrap() };
}

#[test]
fn aligned_blocks_for_every_alignment_up_to_a_quarter_page() {
    let seg = heap();
    let free0 = seg.free_memory();
    let mut align = ManagedHeapMemory::MIN_ALIGN;
    while align <= PAGE / 4 {
        let mut blocks = Vec::new();
        for size in [1, 8, 24, align, align + 8, 3 * align] {
            let p = seg.allocate_aligned(size, align).unwrap();
            assert_eq!(p.as_ptr().addr() % align, 0, "size {size} align {align}");
            assert!(seg.usable_size(p).unwrap() >= size);
            fill(p, size, 0xA5);
            blocks.push(p);
            // Interleave unaligned blocks so the free space is fragmented.
            blocks.push(seg.allocate(40).unwrap());
        }
        seg.check().unwrap();
        for p in blocks {
            // SAFETY: allocated above, freed once.
            unsafe { seg.deallocate(p).unwrap() };
        }
        assert_eq!(seg.free_memory(), free0, "align {align}");
        align *= 2;
    }
}

#[test]
fn alignments_up_to_the_segment_size_work_when_they_fit() {
    // Boost 1.87 could not align beyond half the segment (its issue #250).
    let seg = heap();
    let base = seg.base_address().as_ptr().addr();
    // The block area ends at the 8-byte end sentinel and holds `managed` bytes: it starts
    // after the header and the allocator's table, whose size depends on the segment.
    let end = base + SEG - 8;
    let first_payload = end - seg.memory_algorithm().stats().managed + 8;
    let mut align = PAGE;
    while align <= SEG {
        // The first address aligned to `align` a block can start at: right at the start of
        // the area, or after a leading free block of at least 32 bytes.
        let mut first = first_payload.next_multiple_of(align);
        let could_fit = first + 64 <= end;
        if first != first_payload && first - first_payload < 32 {
            first += align;
        }
        let surely_fits = first + 64 + 32 <= end;
        match seg.allocate_aligned(64, align) {
            Ok(p) => {
                assert!(could_fit, "align {align} should not have fitted");
                assert_eq!(p.as_ptr().addr() % align, 0);
                seg.check().unwrap();
                // SAFETY: allocated just now.
                unsafe { seg.deallocate(p).unwrap() };
            }
            Err(Error::OutOfMemory { align: a, .. }) => {
                assert_eq!(a, align);
                assert!(!surely_fits, "align {align} should have fitted");
            }
            Err(e) => panic!("{e}"),
        }
        align *= 2;
    }
    // Half the segment: the segment is page aligned, so a half-segment boundary lies inside
    // it whenever the base is not itself that aligned.
    assert!(seg.all_memory_deallocated());
    assert!(matches!(
        seg.allocate_aligned(8, 3),
        Err(Error::InvalidAlignment { align: 3 })
    ));
}

#[test]
fn allocate_many_equal_and_listed_sizes() {
    let seg = heap();
    let free0 = seg.free_memory();
    let equal = seg.allocate_many(48, 100).unwrap();
    assert_eq!(equal.len(), 100);
    let sizes: Vec<usize> = (0..10).map(|i| i * 3).collect();
    let listed = seg.allocate_many_sizes(&sizes).unwrap();
    assert_eq!(listed.len(), 10);
    for (i, p) in equal.iter().enumerate() {
        assert!(seg.usable_size(*p).unwrap() >= 48);
        fill(*p, 48, i as u8);
    }
    for (p, s) in listed.iter().zip(&sizes) {
        assert!(seg.usable_size(*p).unwrap() >= *s);
        fill(*p, *s, 0xEE);
    }
    for (i, p) in equal.iter().enumerate() {
        assert!(all_equal(*p, 48, i as u8), "block {i} was overwritten");
    }
    seg.check().unwrap();
    // Each block is freed on its own, in any grouping.
    // SAFETY: allocated above, freed once each.
    unsafe {
        seg.deallocate(equal[50]).unwrap();
        seg.deallocate_many(
            equal[..50]
                .iter()
                .copied()
                .chain(equal[51..].iter().copied()),
        )
        .unwrap();
        seg.deallocate_many(listed).unwrap();
    }
    assert_eq!(seg.free_memory(), free0);
    assert!(seg.all_memory_deallocated());
    assert!(seg.allocate_many(8, 0).unwrap().is_empty());
}

#[test]
fn allocate_many_is_all_or_nothing() {
    let seg = heap();
    let free0 = seg.free_memory();
    let too_many = SEG / 64 + 10;
    assert!(matches!(
        seg.allocate_many(56, too_many),
        Err(Error::OutOfMemory { .. })
    ));
    assert!(seg.allocate_many_sizes(&[16, SEG, 16]).is_err());
    assert_eq!(seg.free_memory(), free0);
    seg.check().unwrap();
}

#[test]
fn allocation_command_allocate_new_prefers_then_settles() {
    let seg = heap();
    let a = command(&seg, Command::ALLOCATE_NEW, 100, 1000, None, 1).unwrap();
    assert!(!a.reused);
    assert!(a.received >= 1000);
    // Preferred too large: falls back to at least the limit.
    let b = command(&seg, Command::ALLOCATE_NEW, 100, SEG * 2, None, 1).unwrap();
    assert!(b.received >= 100 && b.received < SEG);
    // Not even the limit: the error suggests what might work.
    match command(&seg, Command::ALLOCATE_NEW, SEG, SEG * 2, None, 1) {
        Err(Error::AllocationCommandFailed { possible, .. }) => {
            assert!(possible > 0 && possible < SEG);
            let c = command(&seg, Command::ALLOCATE_NEW, possible, possible, None, 1).unwrap();
            assert!(c.received >= possible);
            // SAFETY: allocated above.
            unsafe { seg.deallocate(c.ptr).unwrap() };
        }
        other => panic!("{other:?}"),
    }
    // SAFETY: allocated above.
    unsafe { seg.deallocate_many([a.ptr, b.ptr]).unwrap() };
    assert!(seg.all_memory_deallocated());
}

/// Boost's aligned `allocate_many`: equal and varied sizes, every block aligned, none
/// overlapping, all or nothing.
#[test]
fn allocate_many_aligned_equal_and_varied_sizes() {
    let seg = heap();
    let free0 = seg.free_memory();
    for align in [16, 64, 256, 1024] {
        let equal = seg.allocate_many_aligned(40, 12, align).unwrap();
        let sizes = [1, 100, 17, align, 3 * align + 5];
        let varied = seg.allocate_many_sizes_aligned(&sizes, align).unwrap();
        let blocks: Vec<(NonNull<u8>, usize)> = equal
            .iter()
            .map(|&p| (p, 40))
            .chain(varied.iter().copied().zip(sizes))
            .collect();
        for (i, &(p, n)) in blocks.iter().enumerate() {
            assert_eq!(p.as_ptr().addr() % align, 0, "block {i} at align {align}");
            assert!(seg.usable_size(p).unwrap() >= n);
            fill(p, n, i as u8);
        }
        for (i, &(p, n)) in blocks.iter().enumerate() {
            assert!(all_equal(p, n, i as u8), "block {i} was overwritten");
        }
        seg.check().unwrap();
        // SAFETY: allocated above, each freed once.
        unsafe { seg.deallocate_many(blocks.iter().map(|b| b.0)).unwrap() };
    }
    assert_eq!(seg.free_memory(), free0);
    // Nothing fits: nothing is taken. A bad alignment is named in the error.
    assert!(matches!(
        seg.allocate_many_aligned(SEG / 8, 9, 64),
        Err(Error::OutOfMemory { .. })
    ));
    assert!(seg.allocate_many_sizes_aligned(&[16, SEG, 16], 32).is_err());
    assert!(matches!(
        seg.allocate_many_aligned(8, 2, 48),
        Err(Error::InvalidAlignment { align: 48 })
    ));
    assert_eq!(seg.free_memory(), free0);
    assert!(seg.all_memory_deallocated());
}

#[test]
fn allocate_new_is_the_safe_aligned_allocate_new_command() {
    let seg = heap();
    let a = seg.allocate_new(100, 1000, 256).unwrap();
    assert!(!a.reused && a.received >= 1000);
    assert_eq!(a.ptr.as_ptr().addr() % 256, 0);
    // Preferred too large: at least the limit, still aligned.
    let b = seg.allocate_new(100, SEG * 2, 64).unwrap();
    assert!(b.received >= 100 && b.received < SEG);
    assert_eq!(b.ptr.as_ptr().addr() % 64, 0);
    assert!(matches!(
        seg.allocate_new(SEG, SEG * 2, 16),
        Err(Error::AllocationCommandFailed { .. })
    ));
    assert!(matches!(
        seg.allocate_new(8, 8, 3),
        Err(Error::InvalidAlignment { align: 3 })
    ));
    // SAFETY: allocated above.
    unsafe { seg.deallocate_many([a.ptr, b.ptr]).unwrap() };
    assert!(seg.all_memory_deallocated());
}

#[test]
fn an_aligned_command_keeps_the_alignment_when_it_moves_the_block() {
    let seg = heap();
    let align = 128;
    // Backward expansion moves the start by whole multiples of the alignment (and of the
    // object size).
    let before = seg.allocate(2000).unwrap();
    let b = seg.allocate_aligned(64, align).unwrap();
    // SAFETY: allocated above; makes room before `b`.
    unsafe { seg.deallocate(before).unwrap() };
    let back = command(
        &seg,
        Command::EXPAND_BWD.aligned(align),
        300,
        400,
        Some(b),
        24,
    )
    .unwrap();
    assert!(back.reused && back.ptr < b && back.received >= 300);
    assert_eq!(back.ptr.as_ptr().addr() % align, 0);
    assert_eq!((b.as_ptr().addr() - back.ptr.as_ptr().addr()) % 24, 0);
    // The neighbour is used: expanding fails, and the new block is aligned.
    let block = seg.allocate_aligned(64, align).unwrap();
    // Small blocks fill the alignment padding, then the space right after `block`.
    let _fences: Vec<_> = (0..64).map(|_| seg.allocate(8).unwrap()).collect();
    let cmd = (Command::EXPAND_FWD | Command::ALLOCATE_NEW).aligned(align);
    assert_eq!(cmd.alignment(), align);
    let r = command(&seg, cmd, 500, 1000, Some(block), 1).unwrap();
    assert!(!r.reused && r.received >= 1000);
    assert_eq!(r.ptr.as_ptr().addr() % align, 0);
    seg.check().unwrap();
    // SAFETY: all live, freed once.
    unsafe { seg.deallocate_many([block, r.ptr, back.ptr]).unwrap() };
}

/// The reference's allocation_command example: allocate, expand forward, shrink.
#[test]
fn allocation_command_expand_forward_then_shrink_in_place() {
    let seg = heap();
    let a = command(&seg, Command::ALLOCATE_NEW, 100 * 8, 1000 * 8, None, 8).unwrap();
    assert!(a.received >= 100 * 8);
    let first = a.received / 8;
    let free_after_alloc = seg.free_memory();
    let words = a.ptr.cast::<u64>().as_ptr();
    for i in 0..first {
        // SAFETY: `received` bytes are usable.
        unsafe { words.add(i).write(i as u64) };
    }
    let e = command(
        &seg,
        Command::EXPAND_FWD,
        first * 2 * 8,
        first * 3 * 8,
        Some(a.ptr),
        8,
    )
    .unwrap();
    assert_eq!(e.ptr, a.ptr);
    assert!(e.reused);
    assert!(e.received >= first * 2 * 8, "received ≥ limit");
    assert!(seg.free_memory() < free_after_alloc);
    let expanded = e.received / 8;
    for i in first..expanded {
        // SAFETY: the block grew to `received` bytes.
        unsafe { words.add(i).write(i as u64) };
    }
    let free_after_expand = seg.free_memory();
    let s = command(
        &seg,
        Command::SHRINK_IN_PLACE,
        200 * 8,
        100 * 8,
        Some(a.ptr),
        8,
    )
    .unwrap();
    assert_eq!(s.ptr, a.ptr);
    assert!(
        s.received >= 100 * 8 && s.received <= 200 * 8,
        "preferred ≤ received ≤ limit"
    );
    assert!(seg.free_memory() > free_after_expand);
    for i in 0..s.received / 8 {
        // SAFETY: still inside the shrunk block.
        assert_eq!(unsafe { words.add(i).read() }, i as u64);
    }
    seg.check().unwrap();
    // SAFETY: allocated above.
    unsafe { seg.deallocate(a.ptr).unwrap() };
    assert!(seg.all_memory_deallocated());
}

#[test]
fn expand_forward_fails_cleanly_when_the_neighbour_is_used() {
    let seg = heap();
    let a = seg.allocate(64).unwrap();
    let b = seg.allocate(64).unwrap();
    let free = seg.free_memory();
    match command(&seg, Command::EXPAND_FWD, 128, 256, Some(a), 1) {
        Err(Error::AllocationCommandFailed {
            possible, limit, ..
        }) => {
            assert_eq!(limit, 128);
            assert_eq!(possible, 64, "only the block itself is possible");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(seg.free_memory(), free);
    // Already big enough: success without change.
    let same = command(&seg, Command::EXPAND_FWD, 16, 32, Some(a), 1).unwrap();
    assert_eq!((same.ptr, same.received), (a, 64));
    // Expand forward or else allocate new.
    let n = command(
        &seg,
        Command::EXPAND_FWD | Command::ALLOCATE_NEW,
        128,
        256,
        Some(a),
        1,
    )
    .unwrap();
    assert!(!n.reused && n.ptr != a && n.received >= 256);
    // SAFETY: all allocated above.
    unsafe { seg.deallocate_many([a, b, n.ptr]).unwrap() };
    assert!(seg.all_memory_deallocated());
}

#[test]
fn expand_backward_moves_the_start_by_whole_objects() {
    let seg = heap();
    let before = seg.allocate(400).unwrap();
    let block = seg.allocate(96).unwrap();
    let _fence = seg.allocate(8).unwrap();
    // SAFETY: allocated above; makes room before `block`.
    unsafe { seg.deallocate(before).unwrap() };
    let object = 24; // not a multiple of the 8-byte granule's square: exercises the lcm
    let r = command(
        &seg,
        Command::EXPAND_BWD,
        96 + 3 * object,
        96 + 5 * object,
        Some(block),
        object,
    )
    .unwrap();
    assert!(r.reused);
    assert!(r.ptr < block);
    let moved = block.as_ptr().addr() - r.ptr.as_ptr().addr();
    assert_eq!(moved % object, 0, "moved by whole objects");
    assert!(r.received >= 96 + 3 * object);
    seg.check().unwrap();
    // Forward neighbour used, backward free: EXPAND_FWD | EXPAND_BWD still succeeds.
    let x = seg.allocate(200).unwrap();
    let y = seg.allocate(64).unwrap();
    let _z = seg.allocate(8).unwrap();
    // SAFETY: allocated above.
    unsafe { seg.deallocate(x).unwrap() };
    let both = command(
        &seg,
        Command::EXPAND_FWD | Command::EXPAND_BWD,
        150,
        200,
        Some(y),
        8,
    )
    .unwrap();
    assert!(both.ptr < y && both.received >= 150);
    seg.check().unwrap();
}

#[test]
fn shrink_in_place_rules() {
    let seg = heap();
    let p = seg.allocate(1000).unwrap();
    let _fence = seg.allocate(8).unwrap();
    // Shrinking to a size inside [preferred, limit].
    let s = command(&seg, Command::SHRINK_IN_PLACE, 600, 500, Some(p), 1).unwrap();
    assert!(s.received >= 500 && s.received <= 600);
    // A tail too small to stand alone next to a used block: the block stays as it is, which
    // is a success only if its size is already within the limit.
    let fresh = heap();
    let q = fresh.allocate(1000).unwrap();
    let _fence2 = fresh.allocate(8).unwrap();
    let tiny = command(&fresh, Command::SHRINK_IN_PLACE, 1000, 992, Some(q), 1).unwrap();
    assert_eq!(tiny.received, 1000);
    assert!(matches!(
        command(&fresh, Command::SHRINK_IN_PLACE, 996, 992, Some(q), 1),
        Err(Error::AllocationCommandFailed { possible: 1000, .. })
    ));
    assert_eq!(fresh.usable_size(q), Some(1000));
    // Growing through "shrink" is a failure, not a change.
    assert!(command(&seg, Command::SHRINK_IN_PLACE, 5000, 4000, Some(p), 1).is_err());
    assert_eq!(seg.usable_size(p), Some(s.received));
    seg.check().unwrap();
}

#[test]
fn allocation_command_rejects_contradictory_requests() {
    let seg = heap();
    let p = seg.allocate(64).unwrap();
    let bad = [
        (
            Command::SHRINK_IN_PLACE | Command::EXPAND_FWD,
            10,
            10,
            Some(p),
        ),
        (Command::EXPAND_FWD, 10, 20, None),
        (Command::SHRINK_IN_PLACE, 10, 20, Some(p)),
        (Command::ALLOCATE_NEW, 20, 10, None),
    ];
    for (cmd, limit, preferred, reuse) in bad {
        assert!(
            matches!(
                command(&seg, cmd, limit, preferred, reuse, 1),
                Err(Error::InvalidCommand { .. })
            ),
            "{cmd:?} {limit} {preferred}"
        );
    }
    let foreign = NonNull::from(&0u64).cast::<u8>();
    assert!(command(&seg, Command::EXPAND_FWD, 10, 20, Some(foreign), 1).is_err());
    seg.check().unwrap();
}

#[test]
fn zero_free_memory_makes_new_allocations_read_zero() {
    let seg = heap();
    let blocks = fill_segment(&seg);
    for &(p, size) in &blocks {
        fill(p, size, 0xFF);
    }
    // SAFETY: allocated above, freed once each.
    unsafe { seg.deallocate_many(blocks.iter().map(|b| b.0)).unwrap() };
    seg.zero_free_memory().unwrap();
    let again = fill_segment(&seg);
    for &(p, _) in &again {
        let usable = seg.usable_size(p).unwrap();
        assert!(
            all_equal(p, usable, 0),
            "a block of {usable} bytes is not zero"
        );
    }
    seg.check().unwrap();
}

#[test]
fn a_32_byte_block_costs_40_bytes() {
    let seg = heap();
    let used0 = seg.size() - seg.free_memory();
    // `usable_size` walks the chain: quadratic, which Miri feels.
    let n = if cfg!(miri) { 100 } else { 1000 };
    let blocks: Vec<_> = (0..n).map(|_| seg.allocate(32).unwrap()).collect();
    let used = seg.size() - seg.free_memory() - used0;
    assert_eq!(used, n * 40);
    assert_eq!(ManagedHeapMemory::PAYLOAD_PER_ALLOCATION, 8);
    for p in &blocks {
        assert_eq!(p.as_ptr().addr() % ManagedHeapMemory::MIN_ALIGN, 0);
        assert_eq!(seg.usable_size(*p), Some(32));
    }
}

#[test]
fn handles_round_trip_and_are_bounds_checked() {
    let seg = heap();
    let p = seg.allocate(16).unwrap();
    let h = seg.handle_from_address(p.as_ptr()).unwrap();
    assert_eq!(seg.address_from_handle(h), Some(p));
    assert!(seg.handle_from_address(&0u8).is_none());
    assert!(seg
        .address_from_handle(shmkit_runtime::Handle(SEG as u64))
        .is_none());
    assert!(seg.contains(p.as_ptr()));
}

#[test]
fn foreign_and_double_frees_are_reported_not_done() {
    let seg = heap();
    let p = seg.allocate(64).unwrap();
    let q = seg.allocate(64).unwrap();
    // SAFETY: `p` is live.
    unsafe { seg.deallocate(p).unwrap() };
    let free = seg.free_memory();
    // SAFETY: the calls below violate the contract on purpose; the segment's guard
    // detects them without touching memory outside the segment.
    unsafe {
        assert!(matches!(
            seg.deallocate(p),
            Err(Error::NotAnAllocation { .. })
        ));
        let outside = NonNull::from(&0u64).cast::<u8>();
        assert!(matches!(
            seg.deallocate(outside),
            Err(Error::NotAnAllocation { .. })
        ));
        assert!(matches!(
            seg.deallocate(q.add(3)),
            Err(Error::NotAnAllocation { .. })
        ));
    }
    assert_eq!(seg.free_memory(), free);
    assert!(seg.usable_size(p).is_none());
    seg.check().unwrap();
}

#[test]
fn random_operations_keep_every_invariant() {
    let seg = heap();
    let free0 = seg.free_memory();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut live: Vec<(NonNull<u8>, usize, u8)> = Vec::new();
    let rounds = if cfg!(miri) { 300 } else { 20_000 };
    for round in 0..rounds {
        let r = next();
        if live.is_empty() || r % 3 != 0 {
            let size = 1 + (next() % 2000) as usize;
            let align = 1usize << (next() % 8);
            if let Ok(p) = seg.allocate_aligned(size, align) {
                assert_eq!(p.as_ptr().addr() % align, 0);
                let tag = round as u8;
                fill(p, size, tag);
                live.push((p, size, tag));
            }
        } else {
            let (p, size, tag) = live.swap_remove((next() % live.len() as u64) as usize);
            assert!(all_equal(p, size, tag), "a live block was overwritten");
            // SAFETY: live block, freed once.
            unsafe { seg.deallocate(p).unwrap() };
        }
        if round % 1000 == 0 {
            seg.check().unwrap();
        }
    }
    seg.check().unwrap();
    for (p, size, tag) in live {
        assert!(all_equal(p, size, tag));
        // SAFETY: live block, freed once.
        unsafe { seg.deallocate(p).unwrap() };
    }
    assert_eq!(seg.free_memory(), free0);
}

#[test]
fn threads_allocate_and_free_concurrently() {
    let seg = heap_of(4 * SEG);
    let free0 = seg.free_memory();
    let per_thread = if cfg!(miri) { 50 } else { 5_000 };
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let seg = &seg;
            s.spawn(move || {
                let mut mine = Vec::new();
                for i in 0..per_thread {
                    let size = 8 + (i * 7 + t as usize) % 200;
                    let p = seg.allocate(size).unwrap();
                    fill(p, size, t);
                    mine.push((p, size));
                    if i % 3 == 0 {
                        let (p, size) = mine.swap_remove(0);
                        assert!(all_equal(p, size, t));
                        // SAFETY: our own live block.
                        unsafe { seg.deallocate(p).unwrap() };
                    }
                }
                for (p, size) in mine {
                    assert!(all_equal(p, size, t));
                    // SAFETY: our own live block.
                    unsafe { seg.deallocate(p).unwrap() };
                }
            });
        }
    });
    seg.check().unwrap();
    assert_eq!(seg.free_memory(), free0);
}

#[test]
fn a_heap_segment_moved_by_growth_stays_valid() {
    let mut seg = heap_of(SEG);
    let p = seg.allocate(1000).unwrap();
    fill(p, 1000, 0x3C);
    let h = seg.handle_from_address(p.as_ptr()).unwrap();
    let free = seg.free_memory();
    seg.grow(SEG).unwrap();
    assert_eq!(seg.size(), 2 * SEG);
    assert_eq!(seg.free_memory(), free + SEG);
    let p = seg.address_from_handle(h).unwrap();
    assert!(all_equal(p, 1000, 0x3C));
    assert_eq!(seg.usable_size(p), Some(1000));
    // The new space is usable: more than the old segment's size in one block.
    let big = seg.allocate(SEG + SEG / 2).unwrap();
    seg.check().unwrap();
    assert!(shmkit_runtime::test_hooks::registry::lookup(big.as_ptr()).is_some());
    // SAFETY: both live.
    unsafe { seg.deallocate_many([p, big]).unwrap() };
    assert!(seg.all_memory_deallocated());
}

#[test]
fn a_heap_segment_shrinks_to_fit_and_grows_back() {
    let mut seg = heap_of(SEG);
    let p = seg.allocate(1000).unwrap();
    fill(p, 1000, 0x5A);
    let h = seg.handle_from_address(p.as_ptr()).unwrap();
    let free = seg.free_memory();
    let small = seg.shrink_to_fit().unwrap();
    assert_eq!(small, seg.size());
    // The header, the size-class table, the block: a few KiB.
    assert!(small < 8 * 1024, "{small}");
    let p = seg.address_from_handle(h).unwrap();
    assert!(all_equal(p, 1000, 0x5A));
    seg.check().unwrap();
    assert!(seg.allocate(SEG / 2).is_err());
    // Nothing more to cut.
    assert_eq!(seg.shrink_to_fit().unwrap(), small);
    seg.grow(SEG - small).unwrap();
    assert_eq!((seg.size(), seg.free_memory()), (SEG, free));
    let p = seg.address_from_handle(h).unwrap();
    assert!(all_equal(p, 1000, 0x5A));
    // SAFETY: allocated above, freed once.
    unsafe { seg.deallocate(p).unwrap() };
    assert!(seg.all_memory_deallocated());
}

#[test]
fn a_tiny_segment_grown_large_serves_blocks_of_every_size() {
    // A 1,000-byte segment keeps a short size-class table; after growing, blocks above it
    // share one list, which must still find a fitting block for every request.
    let mut seg = heap_of(1000);
    seg.grow(SEG).unwrap();
    let sizes = [SEG / 200, 40, 300, SEG / 50, 900, 3000, 128, SEG / 17];
    let mut blocks: Vec<_> = sizes.iter().map(|&n| seg.allocate(n).unwrap()).collect();
    // Free every other one, then ask for sizes that fit only some of the holes.
    let kept: Vec<_> = blocks
        .drain(..)
        .enumerate()
        .filter_map(|(i, p)| {
            if i % 2 == 0 {
                // SAFETY: allocated above, freed once.
                unsafe { seg.deallocate(p).unwrap() };
                None
            } else {
                Some(p)
            }
        })
        .collect();
    for n in [SEG / 250, 250, SEG / 55, SEG / 10] {
        let p = seg.allocate(n).unwrap();
        assert!(seg.usable_size(p).unwrap() >= n);
        blocks.push(p);
    }
    seg.check().unwrap();
    // SAFETY: all live, each freed once.
    unsafe { seg.deallocate_many(blocks.into_iter().chain(kept)).unwrap() };
    assert!(seg.all_memory_deallocated());
}

#[test]
fn a_heap_segment_image_reopens_elsewhere() {
    let mut seg = heap();
    let p = seg.allocate(100).unwrap();
    fill(p, 100, 7);
    let h = seg.handle_from_address(p.as_ptr()).unwrap();
    let image = AlignedBuffer::from_image(seg.image());
    let copy = heap_from(&image).unwrap();
    let q = copy.address_from_handle(h).unwrap();
    assert_ne!(p, q);
    assert!(all_equal(q, 100, 7));
    assert_eq!(copy.usable_size(q), seg.usable_size(p));
    copy.check().unwrap();
    let mut half = image.clone();
    half.truncate(image.len() / 2);
    assert_eq!(half.len(), image.len() / 2);
    assert!(matches!(heap_from(&half), Err(Error::Truncated { .. })));
    assert!(matches!(
        heap_from(&vec![0x55; SEG]),
        Err(Error::NotASegment { .. })
    ));
}

/// The bytes of a buffer no writable segment has used: all initialised.
fn bytes_of(buf: &AlignedBuffer) -> Vec<u8> {
    // SAFETY: the test's buffers are made by `new`/`from_image` and changed only through
    // `write_all_at`, never lent to a writable segment.
    buf.iter().map(|b| unsafe { b.assume_init() }).collect()
}

#[test]
fn aligned_buffers_are_aligned_zeroed_and_independent_copies() {
    for len in [0, 1, 15, 17, 4099] {
        let buf = AlignedBuffer::new(len);
        assert_eq!(buf.len(), len);
        assert_eq!(buf.as_ptr().addr() % 16, 0, "len {len}");
        assert!(bytes_of(&buf).iter().all(|&b| b == 0), "len {len}");
    }
    let image: Vec<u8> = (0..100).collect();
    let copy = AlignedBuffer::from(&image[..]);
    assert_eq!(bytes_of(&copy), image);
    let mut other = copy.clone();
    other.write_all_at(&[0xff, 0xfe], 0).unwrap();
    assert_eq!(bytes_of(&other)[..3], [0xff, 0xfe, 2]);
    assert_eq!(bytes_of(&copy)[0], 0);
    // Past the end: an error, and nothing written.
    let err = other.write_all_at(&[7, 7], 99).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(other.write_all_at(&[7], usize::MAX).is_err());
    assert_eq!(bytes_of(&other)[99], 99);
}

/// A length read from a pipe or a file header is bad input like any other: a length the
/// heap cannot provide is an error, never a panic.
#[test]
fn an_absurd_buffer_length_is_an_error_not_a_panic() {
    assert!(matches!(
        AlignedBuffer::try_new(usize::MAX),
        Err(Error::InvalidSize { .. })
    ));
    let err = AlignedBuffer::read_from(&[0u8; 4][..], usize::MAX).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::OutOfMemory);
    let buf = AlignedBuffer::read_from(&[7u8; 20][..], 20).unwrap();
    assert_eq!(bytes_of(&buf), [7u8; 20]);
}

#[test]
fn a_heap_image_reopens_writable_in_an_aligned_buffer() {
    let mut heap = heap_of(SEG);
    let p = heap.allocate(64).unwrap();
    fill(p, 64, 7);
    let h = heap.handle_from_address(p.as_ptr()).unwrap();
    let mut image = AlignedBuffer::from_image(heap.image());
    let seg = buffer_open(&mut image).unwrap();
    assert!(all_equal(seg.address_from_handle(h).unwrap(), 64, 7));
    seg.allocate(128).unwrap();
    assert!(
        seg.free_memory() < heap.free_memory(),
        "the copy changed alone"
    );
}

#[test]
fn a_duplicated_external_buffer_is_a_valid_segment() {
    let mut a = AlignedBuffer::new(SEG);
    let h;
    {
        let seg = buffer_create(&mut a).unwrap();
        let p = seg.allocate(256).unwrap();
        fill(p, 256, 0x42);
        h = seg.handle_from_address(p.as_ptr()).unwrap();
    }
    let mut b = a.clone();
    let dup = buffer_open(&mut b).unwrap();
    let q = dup.address_from_handle(h).unwrap();
    assert!(all_equal(q, 256, 0x42));
    // The copy is independent: freeing there leaves the original alone.
    // SAFETY: `q` is the duplicated live block.
    unsafe { dup.deallocate(q).unwrap() };
    assert!(dup.all_memory_deallocated());
    drop(dup);
    let orig = buffer_open(&mut a).unwrap();
    assert!(!orig.all_memory_deallocated());
    orig.check().unwrap();
}

#[test]
fn external_buffers_that_cannot_hold_a_segment_are_refused() {
    assert!(matches!(
        buffer_create(&mut AlignedBuffer::new(64)),
        Err(Error::BufferTooSmall { len: 64, .. })
    ));
    assert!(matches!(
        buffer_open(&mut AlignedBuffer::new(SEG)),
        Err(Error::NotASegment { .. })
    ));
    // A writable buffer is always aligned; plain bytes lent read-only may not be.
    let bytes = vec![0u8; SEG + 16];
    let at = (17 - bytes.as_ptr().addr() % 16) % 16;
    assert!(matches!(
        ManagedExternalBuffer::options()
            .algorithm::<Algo>()
            .read_only()
            .open(&bytes[at..at + SEG]),
        Err(Error::BufferMisaligned { .. })
    ));
}

#[test]
fn a_read_only_external_buffer_can_be_inspected() {
    let mut buf = AlignedBuffer::new(SEG);
    let h = {
        let seg = buffer_create(&mut buf).unwrap();
        let p = seg.allocate(64).unwrap();
        fill(p, 64, 9);
        seg.handle_from_address(p.as_ptr()).unwrap()
    };
    let ro: shmkit_runtime::ManagedSegment<_, ReadOnly, HashIndex, Algo> =
        ManagedExternalBuffer::options()
            .algorithm::<Algo>()
            .read_only()
            .open(&buf)
            .unwrap();
    assert!(ro.check_sanity());
    assert!(!ro.all_memory_deallocated());
    let p = ro.address_from_handle(h).unwrap();
    assert!(all_equal(p, 64, 9));
    // A second read-only view of the same bytes at the same time.
    let ro2 = ManagedExternalBuffer::options()
        .algorithm::<Algo>()
        .read_only()
        .open(&buf)
        .unwrap();
    assert_eq!(ro2.free_memory(), ro.free_memory());
}

#[test]
fn taking_the_lock_again_from_inside_with_lock_is_an_error_not_a_hang() {
    let seg = heap();
    let inner = seg.with_lock(|| seg.allocate(64)).unwrap();
    assert!(
        matches!(inner, Err(Error::LockReentered { .. })),
        "{inner:?}"
    );
    // Reading works inside (it reads without the lock this thread already holds).
    let free = seg.with_lock(|| seg.free_memory()).unwrap();
    assert_eq!(free, seg.free_memory());
    // And the lock is usable afterwards.
    let p = seg.allocate(64).unwrap();
    // SAFETY: allocated just now, freed once.
    unsafe { seg.deallocate(p).unwrap() };
}

#[test]
fn expanding_forward_by_a_few_bytes_keeps_the_free_lists_intact() {
    // The remainder's header lands on the free neighbour's list links.
    for grow in [8, 16, 24] {
        let seg = heap();
        let p = seg.allocate(40).unwrap();
        let q = seg.allocate(100).unwrap();
        let _r = seg.allocate(40).unwrap();
        // SAFETY: `q` is live, freed once.
        unsafe { seg.deallocate(q).unwrap() };
        let a = command(&seg, Command::EXPAND_FWD, 40 + grow, 40 + grow, Some(p), 1).unwrap();
        assert!(a.received >= 40 + grow);
        seg.check().unwrap();
    }
}

/// `usable_size` of a pointer into the middle of a block is None, and finding that out
/// reads no payload byte as a block header: here the word before the pointer is a `u8` and
/// seven bytes of padding, which a typed store leaves uninitialised (Miri checks).
#[test]
fn usable_size_of_an_interior_pointer_reads_no_payload() {
    #[repr(C)]
    struct Padded {
        tag: u8,
        value: u64,
    }
    let seg = heap_of(SEG);
    let p = seg.allocate(size_of::<Padded>()).unwrap();
    // SAFETY: a fresh block of this size, aligned to 8.
    unsafe { p.cast::<Padded>().write(Padded { tag: 1, value: 2 }) };
    // SAFETY: inside the same block.
    let interior = unsafe { p.add(8) };
    assert_eq!(seg.usable_size(interior), None);
    assert!(seg.usable_size(p).unwrap() >= size_of::<Padded>());
    // SAFETY: allocated above, freed once.
    unsafe { seg.deallocate(p) }.unwrap();
}
