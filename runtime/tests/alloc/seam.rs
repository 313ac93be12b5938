//! The container seam: a `SegmentAllocator` found from a value's own address, as the
//! containers will find theirs, and the memory algorithm's own view of a segment. The heap
//! and buffer tests also run under Miri (`.ci/miri`).

use std::alloc::Layout;
use std::ptr::NonNull;

use shmkit_runtime::{
    AlignedBuffer, AllocErrorKind, Error, ManagedExternalBuffer, ManagedHeapMemory,
    ManagedSharedMemory, ReadOnly, SegmentAllocator,
};
use shmkit_test_support::{unique_name, ShmGuard};

/// Small enough for Miri; below the 16 MiB at which thread caches start.
const SEG: usize = 64 * 1024;

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

/// A heap segment with a named `u64` to find the allocator from.
fn anchored(size: usize) -> ManagedHeapMemory {
    let seg = ManagedHeapMemory::new(size).unwrap();
    seg.construct("anchor", 7u64).unwrap();
    seg
}

fn anchor(seg: &ManagedHeapMemory) -> &u64 {
    seg.find::<u64>("anchor").unwrap().unwrap()
}

fn kind<T: std::fmt::Debug>(r: Result<T, shmkit_runtime::AllocError>) -> AllocErrorKind {
    r.unwrap_err().kind()
}

#[test]
fn allocating_from_an_objects_address_uses_its_segment() {
    let seg = anchored(SEG);
    let alloc = SegmentAllocator::of(anchor(&seg)).unwrap();
    let free0 = seg.free_memory();
    let block = alloc.allocate(layout(100, 8)).unwrap();
    let p = block.cast::<u8>();
    assert!(block.len() >= 100);
    assert!(seg.contains(p.as_ptr()) && alloc.contains(p.as_ptr()));
    assert!(seg.free_memory() <= free0 - 100 - ManagedHeapMemory::PAYLOAD_PER_ALLOCATION);
    let usable = alloc.usable_size(p).unwrap();
    assert_eq!(Some(usable), seg.usable_size(p));
    assert!(usable >= block.len());
    // SAFETY: `usable` bytes of a live block we own.
    unsafe { p.write_bytes(0x5a, usable) };
    // An alignment above MIN_ALIGN takes the aligned path.
    let aligned = alloc.allocate(layout(24, 256)).unwrap().cast::<u8>();
    assert_eq!(aligned.as_ptr().addr() % 256, 0);
    // SAFETY: both allocated above with these layouts, freed once each.
    unsafe {
        alloc.deallocate(p, layout(100, 8)).unwrap();
        alloc.deallocate(aligned, layout(24, 256)).unwrap();
    }
    assert_eq!(seg.free_memory(), free0);
    seg.check().unwrap();
}

#[test]
fn the_segments_own_allocator_and_the_found_one_are_the_same_mapping() {
    let seg = anchored(SEG);
    let found = SegmentAllocator::of(anchor(&seg)).unwrap();
    let own = seg.allocator();
    let free0 = seg.free_memory();
    let p = own.allocate(layout(40, 8)).unwrap().cast::<u8>();
    assert!(found.contains(p.as_ptr()));
    assert_eq!(found.usable_size(p), own.usable_size(p));
    // SAFETY: allocated by the same mapping's allocator, freed once.
    unsafe { found.deallocate(p, layout(40, 8)).unwrap() };
    assert_eq!(seg.free_memory(), free0);
}

#[test]
fn allocate_zeroed_clears_reused_memory() {
    let seg = anchored(SEG);
    let alloc = seg.allocator();
    let l = layout(200, 8);
    let dirty = alloc.allocate(l).unwrap();
    // SAFETY: a live block of `dirty.len()` bytes, then freed once.
    unsafe {
        dirty.cast::<u8>().write_bytes(0xff, dirty.len());
        alloc.deallocate(dirty.cast(), l).unwrap();
    }
    let clean = alloc.allocate_zeroed(l).unwrap();
    // SAFETY: a live block of `clean.len()` initialised (zeroed) bytes.
    let bytes = unsafe { clean.as_ref() };
    assert!(bytes.iter().all(|&b| b == 0));
    // SAFETY: allocated above, freed once.
    unsafe { alloc.deallocate(clean.cast(), l).unwrap() };
}

#[test]
fn a_freed_small_block_comes_back_from_the_thread_cache_without_the_lock() {
    // Thread caches exist from 16 MiB on.
    let seg = anchored(16 << 20);
    let alloc = SegmentAllocator::of(anchor(&seg)).unwrap();
    let l = layout(64, 8);
    let first = alloc.allocate(l).unwrap().cast::<u8>();
    // SAFETY: allocated above, freed once.
    unsafe { alloc.deallocate(first, l).unwrap() };
    assert!(
        seg.cached_memory() > 0,
        "the block went to this thread's cache"
    );
    // The segment lock is not reentrant: under it, only the cache can serve.
    let again = seg
        .with_lock(|| {
            let again = alloc.allocate(l).unwrap().cast::<u8>();
            let uncached = alloc.allocate(layout(64 << 10, 8));
            assert!(matches!(
                kind(uncached),
                AllocErrorKind::LockReentered { .. }
            ));
            again
        })
        .unwrap();
    assert_eq!(again, first, "the cached block is handed out again");
    // SAFETY: allocated above, freed once.
    unsafe { alloc.deallocate(again, l).unwrap() };
    seg.check().unwrap();
}

#[test]
fn growing_in_place_takes_a_free_neighbour_and_fails_cleanly_without_one() {
    let seg = anchored(SEG);
    let alloc = seg.allocator();
    let small = layout(64, 8);
    let [a, b, c] = [(); 3].map(|()| alloc.allocate(small).unwrap().cast::<u8>());
    let block = |p: NonNull<u8>| alloc.usable_size(p).unwrap() + 8;
    let at = |p: NonNull<u8>| seg.handle_from_address(p.as_ptr()).unwrap().0 as usize;
    assert_eq!(
        at(b),
        at(a) + block(a),
        "a fresh segment carves blocks in order"
    );
    // SAFETY: `a` is a live block of 64 bytes we own.
    unsafe { a.write_bytes(3, 64) };
    // SAFETY: called on `a` and on the block it moves to, both live with 64 bytes written.
    let read_a = |p: NonNull<u8>| unsafe { std::slice::from_raw_parts(p.as_ptr(), 64).to_vec() };

    let before = alloc.usable_size(a);
    // SAFETY: `a` is ours.
    let blocked = unsafe { alloc.grow_in_place(a, small, 128) };
    assert!(matches!(
        kind(blocked),
        AllocErrorKind::NoRoomInPlace { .. }
    ));
    assert_eq!(
        alloc.usable_size(a),
        before,
        "a failed growth changes nothing"
    );

    // SAFETY: `b` is ours, freed once; then `a` grows into its room.
    let grown = unsafe {
        alloc.deallocate(b, small).unwrap();
        alloc.grow_in_place(a, small, 128).unwrap()
    };
    assert!(grown >= 128);
    assert_eq!(alloc.usable_size(a), Some(grown));
    assert_eq!(read_a(a), vec![3; 64], "the data stays where it is");

    // `c` blocks further growth: `grow` moves the block, keeping the data.
    let big = layout(4096, 8);
    // SAFETY: `a` is ours with 64 initialised bytes; it is freed by the move.
    let moved = unsafe { alloc.grow(a, layout(grown, 8), big).unwrap() }.cast::<u8>();
    assert_ne!(moved, a);
    assert_eq!(read_a(moved), vec![3; 64]);
    assert_eq!(alloc.usable_size(a), None, "the old block was freed");

    let free = seg.free_memory();
    // SAFETY: `moved` is ours.
    let kept = unsafe { alloc.shrink_in_place(moved, big, 100).unwrap() };
    assert!((100..4096).contains(&kept));
    assert!(
        seg.free_memory() > free,
        "the tail went back to the segment"
    );
    // SAFETY: `moved` is ours; asking it to grow by shrinking is refused before any change.
    let wrong = unsafe { alloc.shrink_in_place(moved, layout(kept, 8), kept + 1) };
    assert!(matches!(kind(wrong), AllocErrorKind::InvalidRequest { .. }));

    // SAFETY: live blocks we own, freed once each.
    unsafe {
        alloc.deallocate(moved, layout(kept, 8)).unwrap();
        alloc.deallocate(c, small).unwrap();
    }
    assert_eq!(seg.num_named_objects(), 1);
    seg.check().unwrap();
}

#[test]
fn freeing_a_block_twice_is_reported_not_done() {
    let seg = anchored(SEG);
    let alloc = seg.allocator();
    let l = layout(32, 8);
    let p = alloc.allocate(l).unwrap().cast::<u8>();
    // SAFETY: the second call breaks the contract on purpose: below 16 MiB there is no
    // cache, and the allocator sees the block is free before touching anything.
    let again = unsafe {
        alloc.deallocate(p, l).unwrap();
        alloc.deallocate(p, l)
    };
    let err = again.unwrap_err();
    assert_eq!(
        err.kind(),
        AllocErrorKind::NotAnAllocation {
            addr: p.as_ptr().addr(),
            base: seg.base_address().as_ptr().addr()
        }
    );
    assert_eq!(err.request(), Some(l));
    assert!(matches!(Error::from(err), Error::NotAnAllocation { .. }));
    seg.check().unwrap();
}

#[test]
fn a_read_only_mapping_yields_the_read_only_error() {
    let mut buf = AlignedBuffer::new(SEG);
    ManagedExternalBuffer::create(&mut buf)
        .unwrap()
        .construct("anchor", 1u64)
        .unwrap();
    let ro: shmkit_runtime::ManagedSegment<_, ReadOnly> = ManagedExternalBuffer::options()
        .read_only()
        .open(&buf)
        .unwrap();
    let value = ro.find::<u64>("anchor").unwrap().unwrap();
    let err = SegmentAllocator::of(value).unwrap_err();
    let addr = std::ptr::from_ref(value).addr();
    assert_eq!(err.kind(), AllocErrorKind::ReadOnly { addr });
    assert_eq!(err.request(), None);
    assert!(err.to_string().contains("read-only"), "{err}");
    assert!(matches!(Error::from(err), Error::InvalidAddress { addr: a, .. } if a == addr));
    // A read-only mapping still shows its memory algorithm.
    assert_eq!(ro.memory_algorithm().stats().free, ro.free_memory());
    ro.memory_algorithm().check().unwrap();
}

#[test]
fn an_address_outside_every_segment_has_no_allocator() {
    let local = 5u64;
    let addr = std::ptr::from_ref(&local).addr();
    assert_eq!(
        kind(SegmentAllocator::of(&local)),
        AllocErrorKind::NotInSegment { addr }
    );
    // A zero-sized value occupies no mapping, even at an address inside one.
    let seg = anchored(SEG);
    let empty: &[u64] = &std::slice::from_ref(anchor(&seg))[..0];
    assert!(seg.contains(empty.as_ptr().cast()));
    assert!(matches!(
        kind(SegmentAllocator::of(empty)),
        AllocErrorKind::NotInSegment { .. }
    ));
}

#[test]
fn a_heap_segment_that_grew_resolves_at_its_new_address() {
    let mut seg = anchored(SEG);
    // Warm this thread's registry cache with the old range.
    assert!(SegmentAllocator::of(anchor(&seg)).is_ok());
    seg.grow(SEG).unwrap();
    let alloc = SegmentAllocator::of(anchor(&seg)).unwrap();
    // More than the segment held before growing: only the grown allocator has room.
    let l = layout(SEG + SEG / 4, 8);
    let p = alloc.allocate(l).unwrap().cast::<u8>();
    assert!(seg.contains(p.as_ptr()));
    // SAFETY: allocated above, freed once.
    unsafe { alloc.deallocate(p, l).unwrap() };
    seg.check().unwrap();
}

#[test]
#[cfg_attr(miri, ignore = "maps POSIX shared memory")]
fn each_mapping_of_a_shared_segment_resolves_to_itself() {
    let name = unique_name();
    let _guard = ShmGuard(name.clone());
    let a = ManagedSharedMemory::create(&name, SEG).unwrap();
    a.construct("anchor", 1u64).unwrap();
    let b = ManagedSharedMemory::open(&name).unwrap();
    let in_a = a.find::<u64>("anchor").unwrap().unwrap();
    let in_b = b.find::<u64>("anchor").unwrap().unwrap();
    let (alloc_a, alloc_b) = (
        SegmentAllocator::of(in_a).unwrap(),
        SegmentAllocator::of(in_b).unwrap(),
    );
    let l = layout(256, 8);
    let p = alloc_b.allocate(l).unwrap().cast::<u8>();
    assert!(b.contains(p.as_ptr()) && !a.contains(p.as_ptr()));
    assert!(alloc_b.contains(p.as_ptr()) && !alloc_a.contains(p.as_ptr()));
    // The same block, seen from the other mapping.
    let in_a_p = a
        .address_from_handle(b.handle_from_address(p.as_ptr()).unwrap())
        .unwrap();
    assert_eq!(alloc_a.usable_size(in_a_p), alloc_b.usable_size(p));

    // SAFETY: allocated above through `alloc_b`, freed once through the same mapping.
    unsafe { alloc_b.deallocate(p, l).unwrap() };
    assert_eq!(a.num_named_objects(), 1);
    a.check().unwrap();
    let free_shared = a.free_memory();
    drop((a, b)); // a copy-on-write mapping excludes writable shared ones

    // A copy-on-write mapping allocates privately: the shared segment does not change.
    let cow = ManagedSharedMemory::options()
        .copy_on_write()
        .open(&name)
        .unwrap();
    let alloc_c = SegmentAllocator::of(cow.find::<u64>("anchor").unwrap().unwrap()).unwrap();
    let q = alloc_c.allocate(l).unwrap().cast::<u8>();
    assert!(cow.contains(q.as_ptr()));
    assert!(cow.free_memory() < free_shared);
    drop(cow);
    let a = ManagedSharedMemory::open(&name).unwrap();
    assert_eq!(a.free_memory(), free_shared);
    a.check().unwrap();
}

#[test]
fn the_memory_algorithm_reports_its_own_view() {
    let seg = ManagedHeapMemory::new(SEG).unwrap();
    let algo = seg.memory_algorithm();
    assert_eq!(algo.name(), "tlsf");
    let empty = algo.stats();
    assert!(empty.managed < seg.size() && empty.managed > seg.size() / 2);
    assert_eq!(
        empty.free,
        seg.free_memory(),
        "no thread caches below 16 MiB"
    );
    assert!(empty.largest_free > 0 && empty.largest_free < empty.free);
    assert!(empty.levels >= 1 && empty.size_classes > empty.levels);
    // The largest free block serves exactly its usable size, and not a byte more.
    assert!(seg.allocate(empty.largest_free + 1).is_err());
    let all = seg.allocate(empty.largest_free).unwrap();
    let full = algo.stats();
    assert_eq!(full.largest_free, 0);
    assert_eq!(full.managed, empty.managed);
    assert_eq!(empty.free - full.free, empty.largest_free + 8);
    algo.check().unwrap();
    // SAFETY: allocated above, freed once.
    unsafe { seg.deallocate(all).unwrap() };
    assert_eq!(algo.stats(), empty);
}

#[test]
fn cached_blocks_are_in_use_for_the_algorithm_and_free_for_the_segment() {
    let seg = ManagedHeapMemory::new(16 << 20).unwrap();
    let p = seg.allocate(48).unwrap();
    // SAFETY: allocated above, freed once (into this thread's cache).
    unsafe { seg.deallocate(p).unwrap() };
    let cached = seg.cached_memory();
    assert!(cached > 0);
    let stats = seg.memory_algorithm().stats();
    assert_eq!(seg.free_memory(), stats.free + cached);
}
