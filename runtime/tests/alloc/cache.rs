//! The per-thread caches of small blocks (segments of at least 16 MiB have them): cached
//! blocks are reused without the lock, count as free, go back to the segment when the
//! mapping is dropped, the segment is full, free memory is zeroed, or their process dies.
//! The heap-segment tests also run under Miri (`.ci/miri`).

use std::ptr::NonNull;
use std::time::Duration;

use shmkit_runtime::{Error, ManagedHeapMemory, ManagedSharedMemory};
use shmkit_test_support as support;
use support::{spawn_child, unique_name, within, ShmGuard};

/// The smallest segment that has thread caches.
const CACHED: usize = 16 << 20;

fn heap() -> ManagedHeapMemory {
    ManagedHeapMemory::new(CACHED).unwrap()
}

#[test]
fn a_freed_small_block_is_cached_counted_free_and_reused() {
    let seg = heap();
    let free0 = seg.free_memory();
    let p = seg.allocate(64).unwrap();
    assert_eq!(seg.cached_memory(), 0);
    // SAFETY: allocated above, freed once.
    unsafe { seg.deallocate(p).unwrap() };
    assert_eq!(seg.cached_memory(), 72, "one 72-byte block cached");
    assert_eq!(seg.free_memory(), free0, "cached bytes count as free");
    assert!(seg.all_memory_deallocated());
    seg.check().unwrap();
    let q = seg.allocate(64).unwrap();
    assert_eq!(q, p, "the cached block comes back");
    assert_eq!(seg.cached_memory(), 0);
    // A size the cache does not hold comes from the allocator.
    let r = seg.allocate(4000).unwrap();
    // SAFETY: allocated above, freed once each.
    unsafe { seg.deallocate_many([q, r]).unwrap() };
    assert_eq!(seg.free_memory(), free0);
}

#[test]
fn blocks_up_to_4_kib_are_cached_by_size_class() {
    let seg = heap();
    let free0 = seg.free_memory();
    // Bins above 256 bytes hold a TLSF class (16 per power of two): a 1008-byte block is in
    // 992..1024, which serves the requests whose blocks are at most 992 bytes.
    let p = seg.allocate(1000).unwrap();
    // SAFETY: allocated above, freed once.
    unsafe { seg.deallocate(p).unwrap() };
    assert_eq!(seg.cached_memory(), 1008, "the 1008-byte block is cached");
    seg.check().unwrap();
    let q = seg.allocate(980).unwrap();
    assert_eq!(
        q, p,
        "a smaller request of the class below takes the cached block"
    );
    assert_eq!(seg.usable_size(q), Some(1000));
    assert_eq!(seg.cached_memory(), 0);
    // An empty class bin is refilled with blocks of the class's smallest size (1024 here:
    // they fit every request of the bin), at most 4 KiB of them: one handed out, 3 cached.
    let r = seg.allocate(1000).unwrap();
    assert_eq!(seg.usable_size(r), Some(1016));
    assert_eq!(seg.cached_memory(), 3 * 1024);
    seg.check().unwrap();
    // Blocks of 4 KiB and more are not cached.
    let big = seg.allocate(4090).unwrap();
    // SAFETY: allocated above, freed once.
    unsafe { seg.deallocate(big).unwrap() };
    assert_eq!(seg.cached_memory(), 3 * 1024);
    // SAFETY: allocated above, freed once each.
    unsafe { seg.deallocate_many([q, r]).unwrap() };
    assert_eq!(seg.free_memory(), free0, "cached bytes count as free");
    assert!(seg.all_memory_deallocated());
    seg.check().unwrap();
}

#[test]
fn cached_allocation_does_not_take_the_segment_lock() {
    let seg = std::sync::Arc::new(heap());
    let inner = seg.clone();
    let reused = within(Duration::from_secs(5), "the operation", move || {
        let seg = &inner;
        // Warm up: this thread gets a slot and caches one block.
        // SAFETY: allocated just now, freed once.
        unsafe { seg.deallocate(seg.allocate(100).unwrap()).unwrap() };
        // The lock is not reentrant: if the cached path took it, this would hang.
        seg.with_lock(|| {
            let p = seg.allocate(100).unwrap();
            // SAFETY: allocated just now, freed once.
            unsafe { seg.deallocate(p).unwrap() };
        })
    });
    assert!(reused.is_ok());
    seg.check().unwrap();
}

#[test]
fn an_immediate_double_free_into_the_cache_is_reported() {
    let seg = heap();
    let p = seg.allocate(32).unwrap();
    // SAFETY: the second call violates the contract on purpose; the cache catches it
    // without touching anything.
    unsafe {
        seg.deallocate(p).unwrap();
        assert!(matches!(
            seg.deallocate(p),
            Err(Error::NotAnAllocation { .. })
        ));
    }
    assert_eq!(seg.cached_memory(), 40);
    seg.check().unwrap();
}

/// Allocates `n` 32-byte blocks (40 with the header), each filled with `0xAB`. One more
/// than a multiple of 32 leaves the bin's refilled run empty: a thread's first allocation
/// claims its slot (uncached), then each refill hands out one block and caches 31.
fn filled_blocks(seg: &ManagedHeapMemory, n: usize) -> Vec<NonNull<u8>> {
    let blocks: Vec<_> = (0..n).map(|_| seg.allocate(32).unwrap()).collect();
    for p in &blocks {
        // SAFETY: each block has 32 usable bytes.
        unsafe { p.as_ptr().write_bytes(0xAB, 32) };
    }
    blocks
}

/// Whether every block still holds the `0xAB`s `filled_blocks` wrote: the cache wrote
/// nothing into them.
fn untouched(blocks: &[NonNull<u8>]) -> bool {
    blocks.iter().all(|p| {
        // SAFETY: cached blocks stay mapped and nobody writes them (they are not handed
        // out); the segment is exposed memory, not the Rust allocator's.
        let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), 32) };
        bytes.iter().all(|&b| b == 0xAB)
    })
}

#[test]
fn refilled_blocks_are_handed_out_in_address_order() {
    let seg = heap();
    let blocks = filled_blocks(&seg, 97);
    let addrs: Vec<usize> = blocks.iter().map(|p| p.as_ptr().addr()).collect();
    assert!(
        addrs.windows(2).all(|w| w[1] == w[0] + 40),
        "each block right after the one before"
    );
    assert_eq!(seg.cached_memory(), 0, "97 blocks take three whole refills");
    // SAFETY: allocated above, freed once each.
    unsafe { seg.deallocate_many(blocks).unwrap() };
    seg.check().unwrap();
}

#[test]
fn blocks_freed_in_address_order_join_one_run_untouched_and_come_back_in_order() {
    let seg = heap();
    let free0 = seg.free_memory();
    let blocks = filled_blocks(&seg, 193);
    // SAFETY: allocated above, freed once each.
    unsafe {
        for p in &blocks {
            seg.deallocate(*p).unwrap();
        }
    }
    assert_eq!(seg.cached_memory(), 193 * 40, "all of them cached");
    assert!(
        untouched(&blocks),
        "no link was written into a block of the run"
    );
    assert_eq!(seg.free_memory(), free0, "cached bytes count as free");
    assert!(seg.all_memory_deallocated());
    seg.check().unwrap();
    // Taken from the front of the run: in the same order again.
    let again: Vec<_> = (0..193).map(|_| seg.allocate(32).unwrap()).collect();
    assert_eq!(again, blocks);
    assert_eq!(seg.cached_memory(), 0);
    // SAFETY: allocated above, freed once each.
    unsafe { seg.deallocate_many(again).unwrap() };
    // Zeroing free memory empties the caches: the run goes back as one block.
    seg.zero_free_memory().unwrap();
    assert_eq!(seg.cached_memory(), 0);
    assert_eq!(seg.free_memory(), free0);
    seg.check().unwrap();
}

#[test]
fn blocks_freed_in_reverse_address_order_join_one_run_too() {
    let seg = heap();
    let free0 = seg.free_memory();
    let blocks = filled_blocks(&seg, 65);
    // SAFETY: allocated above, freed once each.
    unsafe {
        for p in blocks.iter().rev() {
            seg.deallocate(*p).unwrap();
        }
    }
    assert_eq!(seg.cached_memory(), 65 * 40);
    assert!(untouched(&blocks), "each block joined the run at its front");
    seg.check().unwrap();
    // The last one freed, the lowest, is the first handed out.
    assert_eq!(seg.allocate(32).unwrap(), blocks[0]);
    seg.zero_free_memory().unwrap();
    assert_eq!(seg.free_memory() + 40, free0);
    seg.check().unwrap();
}

#[test]
fn a_double_free_of_a_block_inside_a_run_is_reported() {
    let seg = heap();
    let blocks = filled_blocks(&seg, 33);
    // SAFETY: the first ten are freed once; the repeats violate the contract on purpose,
    // and the cache catches them without touching anything.
    unsafe {
        for p in &blocks[..10] {
            seg.deallocate(*p).unwrap();
        }
        for i in [0, 5, 9] {
            assert!(matches!(
                seg.deallocate(blocks[i]),
                Err(Error::NotAnAllocation { .. })
            ));
        }
    }
    assert_eq!(seg.cached_memory(), 10 * 40);
    seg.check().unwrap();
}

/// Frees `n` blocks of 40 bytes in address order in a heap segment of `size` bytes and
/// checks that whole runs of `full_run` blocks went back, the rest staying cached. (The
/// first blocks fill the room kept free in front of the cache table, and the rest continue
/// after the table: only the blocks after that gap are one row.)
fn whole_runs_go_back(size: usize, n: usize, full_run: usize) {
    let seg = ManagedHeapMemory::new(size).unwrap();
    let free0 = seg.free_memory();
    let blocks = filled_blocks(&seg, n);
    let gap = blocks
        .windows(2)
        .position(|w| w[1].as_ptr().addr() != w[0].as_ptr().addr() + 40)
        .map_or(0, |i| i + 1);
    let (front, row) = blocks.split_at(gap);
    assert!(row
        .windows(2)
        .all(|w| w[1].as_ptr().addr() == w[0].as_ptr().addr() + 40));
    // SAFETY: allocated above, freed once each.
    unsafe {
        for p in row {
            seg.deallocate(*p).unwrap();
        }
    }
    assert_eq!(
        seg.cached_memory(),
        ((row.len() - 1) % full_run + 1) * 40,
        "whole runs of {full_run} blocks went back, the rest is cached"
    );
    // SAFETY: allocated above, freed once each.
    unsafe { seg.deallocate_many(front.iter().copied()).unwrap() };
    assert_eq!(seg.free_memory(), free0);
    seg.check().unwrap();
}

/// A run grows to the slot's budget (1/512 of the segment, 32 KiB here: 819 blocks of 40
/// bytes), then goes back to the allocator whole and a new one starts: freeing many
/// blocks in order never falls back to a locked free per block, and nothing is lost.
#[test]
#[cfg_attr(
    miri,
    ignore = "thousands of blocks in a 16 or 32 MiB segment: slow under Miri; the run logic runs there in the smaller tests"
)]
fn a_run_that_reaches_the_budget_goes_back_whole() {
    whole_runs_go_back(CACHED, 4097, 32768 / 40);
}

/// In a segment whose budget (64 KiB) holds more, a run goes back at 1,024 blocks.
#[test]
#[cfg_attr(
    miri,
    ignore = "thousands of blocks in a 16 or 32 MiB segment: slow under Miri; the run logic runs there in the smaller tests"
)]
fn a_run_of_1024_blocks_goes_back_whole() {
    whole_runs_go_back(2 * CACHED, 3713, 1024);
}

#[test]
fn zeroing_free_memory_also_clears_what_caches_hold() {
    let seg = heap();
    let blocks: Vec<NonNull<u8>> = (0..10).map(|_| seg.allocate(200).unwrap()).collect();
    for p in &blocks {
        // SAFETY: each block has 200 usable bytes.
        unsafe { p.as_ptr().write_bytes(0xFF, 200) };
    }
    // SAFETY: allocated above, freed once each.
    unsafe {
        for p in &blocks {
            seg.deallocate(*p).unwrap();
        }
    }
    assert!(seg.cached_memory() > 0);
    seg.zero_free_memory().unwrap();
    assert_eq!(seg.cached_memory(), 0);
    for _ in 0..10 {
        let p = seg.allocate(200).unwrap();
        // SAFETY: 200 usable bytes.
        let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), 200) };
        assert!(
            bytes.iter().all(|&b| b == 0),
            "a block reused after zeroing is not zero"
        );
    }
}

#[test]
fn a_full_segment_takes_back_cached_blocks() {
    let seg = heap();
    // Fill the segment with 256-byte blocks (248 usable), then free a run of them: they
    // stay in this thread's cache, so only coalescing them back makes a large block fit.
    // One large block takes most of the segment (keeps the test quick under Miri).
    let _filler = seg.allocate(seg.free_memory() - (1 << 20)).unwrap();
    let mut blocks = Vec::new();
    while let Ok(p) = seg.allocate(248) {
        blocks.push(p);
    }
    // Refills hand out runs, not strictly in address order: take 64 neighbours by address.
    blocks.sort();
    let run = &blocks[1000..1064];
    assert!(blocks.len() > 2000);
    assert!(run
        .windows(2)
        .all(|w| w[1].as_ptr() as usize - w[0].as_ptr() as usize == 256));
    // SAFETY: allocated above, freed once each.
    unsafe {
        for p in run {
            seg.deallocate(*p).unwrap();
        }
    }
    assert!(seg.cached_memory() >= 64 * 256);
    let big = seg
        .allocate(60 * 256)
        .expect("the cached run should be coalesced and reused");
    assert_eq!(seg.cached_memory(), 0);
    assert!(
        run.contains(&big),
        "the big block is made of the cached run"
    );
    seg.check().unwrap();
}

#[test]
fn threads_cache_independently_and_nothing_is_lost() {
    let seg = heap();
    let free0 = seg.free_memory();
    let rounds = if cfg!(miri) { 40 } else { 20_000 };
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let seg = &seg;
            s.spawn(move || {
                let mut live = Vec::new();
                for i in 0..rounds {
                    let size = 8 + (i * 8 + t as usize * 24) % 240;
                    let p = seg.allocate(size).unwrap();
                    // SAFETY: `size` usable bytes.
                    unsafe { p.as_ptr().write_bytes(t, size) };
                    live.push((p, size));
                    if live.len() > 8 {
                        let (p, size) = live.remove(i % 8);
                        // SAFETY: our own live block of `size` bytes.
                        let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), size) };
                        assert!(
                            bytes.iter().all(|&b| b == t),
                            "another thread wrote into our block"
                        );
                        // SAFETY: our own live block, freed once.
                        unsafe { seg.deallocate(p).unwrap() };
                    }
                }
                for (p, _) in live {
                    // SAFETY: our own live block, freed once.
                    unsafe { seg.deallocate(p).unwrap() };
                }
                seg.check().unwrap();
            });
        }
    });
    assert_eq!(seg.free_memory(), free0);
    assert!(seg.all_memory_deallocated());
}

#[test]
#[cfg_attr(miri, ignore = "maps POSIX shared memory")]
fn dropping_a_mapping_returns_its_cached_blocks() {
    let name = unique_name();
    let _guard = ShmGuard(name.clone());
    let a = ManagedSharedMemory::create(&name, CACHED).unwrap();
    let b = ManagedSharedMemory::open(&name).unwrap();
    let blocks: Vec<_> = (0..20).map(|_| b.allocate(48).unwrap()).collect();
    // SAFETY: allocated above through `b`, freed once each.
    unsafe {
        for p in &blocks {
            b.deallocate(*p).unwrap();
        }
    }
    let cached = b.cached_memory();
    assert!(
        cached >= 20 * 56,
        "B's thread holds at least the freed blocks"
    );
    assert_eq!(
        a.cached_memory(),
        cached,
        "the cache lives in the segment: A sees it"
    );
    drop(b);
    assert_eq!(a.cached_memory(), 0);
    assert!(a.all_memory_deallocated());
    a.check().unwrap();
}

#[test]
#[cfg_attr(miri, ignore = "maps POSIX shared memory and spawns a process")]
fn the_blocks_a_killed_process_cached_are_reclaimed() {
    let name = unique_name();
    let _guard = ShmGuard(name.clone());
    let seg = ManagedSharedMemory::create(&name, CACHED).unwrap();
    let free0 = seg.free_memory();
    let mut child = spawn_child(
        env!("CARGO_BIN_EXE_shmkit-test-child"),
        "cache-and-wait",
        &[("SHMKIT_NAME", name.clone())],
    );
    let msg = child.expect_message(Duration::from_secs(10));
    let cached: usize = msg.strip_prefix("cached ").unwrap().parse().unwrap();
    assert!(cached >= 30 * 112, "{msg}");
    assert_eq!(seg.cached_memory(), cached);
    child.kill();
    // The next thread to claim a slot returns the dead process's blocks.
    let seg = std::sync::Arc::new(seg);
    let worker = seg.clone();
    within(Duration::from_secs(5), "the operation", move || {
        let p = worker.allocate(16).unwrap();
        // SAFETY: allocated just now, freed once.
        unsafe { worker.deallocate(p).unwrap() };
    });
    assert_eq!(
        seg.cached_memory(),
        32,
        "only the worker's own freed block is cached"
    );
    assert_eq!(seg.free_memory(), free0);
    seg.check().unwrap();
}

#[test]
fn a_thread_using_many_segments_keeps_one_slot_in_each() {
    // More segments than a thread remembers slots for: it must find its old slot again
    // rather than claim a new one each time (which would strand cached blocks).
    let segments: Vec<_> = (0..6).map(|_| heap()).collect();
    for _ in 0..10 {
        for seg in &segments {
            let p = seg.allocate(100).unwrap();
            // SAFETY: allocated just now, freed once.
            unsafe { seg.deallocate(p).unwrap() };
        }
    }
    for seg in &segments {
        assert_eq!(seg.cached_memory(), 112, "one cached block, in one slot");
    }
}

#[test]
#[cfg_attr(miri, ignore = "reads /proc, which Miri isolates")]
fn the_blocks_an_exited_thread_cached_are_taken_back_when_needed() {
    let seg = heap();
    let tid = std::thread::scope(|s| {
        s.spawn(|| {
            let blocks: Vec<_> = (0..64).map(|_| seg.allocate(120).unwrap()).collect();
            // SAFETY: allocated above, freed once each.
            unsafe {
                for p in blocks {
                    seg.deallocate(p).unwrap();
                }
            }
            rustix::thread::gettid().as_raw_nonzero().get()
        })
        .join()
        .unwrap()
    });
    // A joined thread may linger in the kernel for a moment; wait until it is gone.
    let task = format!("/proc/self/task/{tid}");
    for _ in 0..1000 {
        if !std::path::Path::new(&task).exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let stranded = seg.cached_memory();
    assert!(stranded >= 128, "the exited thread's cache remains");
    // Fill the segment: the allocation that finds it full takes the blocks back.
    let _filler = seg.allocate(seg.free_memory() - (1 << 20)).unwrap();
    let mut mine = Vec::new();
    while let Ok(p) = seg.allocate(2048) {
        mine.push(p);
    }
    assert_eq!(
        seg.cached_memory(),
        0,
        "the exited thread's blocks were taken back"
    );
    seg.check().unwrap();
}
