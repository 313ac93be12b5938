//! Attacks on the memory-algorithm seam with safe code only: forged algorithm words (the
//! kind in header word 14, the heap state, SeqFit's free list) opened through every path,
//! relabelled images, wrong algorithm types, odd allocation patterns on SeqFit segments,
//! growing and shrinking them, two mappings of one SeqFit segment at once, and the
//! `memory_algorithm()` view. A forgery must give an error (or be repaired on a private
//! copy), never a panic, a hang, or memory handed out twice.

use std::ptr::NonNull;
use std::time::Duration;

use shmkit_runtime::algorithm::{MemoryAlgorithm, SeqFit, Tlsf, FLAGS, FREE};
use shmkit_runtime::segment::{Backing, Lends, Mode, Writable};
use shmkit_runtime::test_hooks::SegmentHeader;
use shmkit_runtime::{
    inspect, AlignedBuffer, Error, HashIndex, ManagedExternalBuffer, ManagedHeapMemory,
    ManagedSegment,
};
use shmkit_test_support::internals::forge_algorithm_kind;
use shmkit_test_support::within;

/// Where the heap state lies in the header: the algorithm's two words, start, end, free.
const HEAP: usize = std::mem::offset_of!(SegmentHeader, heap);
const HEAD: usize = HEAP;
const START: usize = HEAP + 16;
const END: usize = HEAP + 24;
const FREE_BYTES: usize = HEAP + 32;

/// The objects of the base image: `(name, elements)`; every element of `name` is
/// `value(name, i)`. "b" and "d" are destroyed again, so free blocks lie between live ones.
const OBJECTS: [(&str, usize); 6] = [("a", 3), ("b", 5), ("c", 2), ("d", 7), ("e", 4), ("f", 1)];
const LIVE: [&str; 4] = ["a", "c", "e", "f"];

fn value(name: &str, i: usize) -> u64 {
    u64::from(name.as_bytes()[0]) << 32 | i as u64
}

/// A segment image of `size` bytes made with algorithm `A`, holding `LIVE`.
fn base_image<A: MemoryAlgorithm>(size: usize) -> Vec<u8> {
    let mut seg = ManagedHeapMemory::options()
        .algorithm::<A>()
        .create(size)
        .unwrap();
    for (name, n) in OBJECTS {
        seg.construct_array_with(name, n, |i| value(name, i))
            .unwrap();
    }
    assert!(seg.destroy::<u64>("b").unwrap());
    assert!(seg.destroy::<u64>("d").unwrap());
    seg.check().unwrap();
    let buf = AlignedBuffer::from_image(seg.image());
    buf.iter()
        // SAFETY: the segment was zeroed when made and holds only `u64`s, which have no
        // padding, so every byte is initialised (Miri checks it; `image_bytes`, which
        // copies through a memfd, is not available there).
        .map(|b| unsafe { b.assume_init() })
        .collect()
}

fn word(image: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(image[at..at + 8].try_into().unwrap())
}

fn set_word(image: &mut [u8], at: usize, v: u64) {
    image[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

/// The chain of blocks of an image: `(offset, size, free)`.
fn blocks(image: &[u8]) -> Vec<(u64, u64, bool)> {
    let (mut off, end) = (word(image, START), word(image, END));
    let mut out = Vec::new();
    while off < end {
        let h = word(image, off as usize);
        let size = h & !FLAGS;
        assert!(size > 0, "the base image's chain is sound");
        out.push((off, size, h & FREE != 0));
        off += size;
    }
    out
}

fn free_blocks(image: &[u8]) -> Vec<u64> {
    blocks(image)
        .into_iter()
        .filter(|b| b.2)
        .map(|b| b.0)
        .collect()
}

fn used_blocks(image: &[u8]) -> Vec<u64> {
    blocks(image)
        .into_iter()
        .filter(|b| !b.2)
        .map(|b| b.0)
        .collect()
}

/// Forgeries of a SeqFit image's list and state, each with what it does.
fn seqfit_forgeries(image: &[u8]) -> Vec<(String, Vec<u8>)> {
    let size = image.len() as u64;
    let (start, end) = (word(image, START), word(image, END));
    let free = free_blocks(image);
    let used = used_blocks(image);
    assert!(free.len() >= 3, "free blocks between live ones: {free:?}");
    let mut out = Vec::new();
    let mut forge = |what: String, edits: &[(usize, u64)]| {
        let mut img = image.to_vec();
        for &(at, v) in edits {
            set_word(&mut img, at, v);
        }
        out.push((what, img));
    };
    for head in [
        0,
        8,
        0x40,
        HEAP as u64,
        start - 16,
        used[0],
        used[1],
        used[1] + 16,
        used[1] + 8,
        start + 4,
        end,
        end + 8,
        size,
        size + 16,
        !7u64,
        free[1],
    ] {
        forge(format!("head = {head}"), &[(HEAD, head)]);
    }
    // Links: a free block's link word is the word after its header.
    let link = |b: u64| b as usize + 8;
    forge("a cycle of one".into(), &[(link(free[0]), free[0])]);
    forge("a cycle of two".into(), &[(link(free[1]), free[0])]);
    forge("a link backwards".into(), &[(link(free[2]), free[1])]);
    for to in [used[1], used[1] + 16, 0x40, end, size, !7u64] {
        forge(format!("first link = {to}"), &[(link(free[0]), to)]);
    }
    // A header that says free where the block is used (the list skips it).
    let h = word(image, used[1] as usize);
    forge(
        "a used block marked free".into(),
        &[(used[1] as usize, h | FREE)],
    );
    // A free block that claims to span the used block after it.
    let fsize = word(image, free[0] as usize) & !FLAGS;
    let usize_ = word(image, (free[0] + fsize) as usize) & !FLAGS;
    forge(
        "a free block spanning its used neighbour".into(),
        &[(free[0] as usize, (fsize + usize_) | FREE)],
    );
    for v in [0, 1, u64::MAX, size] {
        forge(format!("free bytes = {v}"), &[(FREE_BYTES, v)]);
    }
    for (at, what) in [(START, "start"), (END, "end")] {
        for v in [0, 8, HEAP as u64, start + 16, end - 16, size, !15u64] {
            forge(format!("{what} = {v}"), &[(at, v)]);
        }
    }
    forge("the second algorithm word".into(), &[(HEAP + 8, u64::MAX)]);
    out
}

/// Address ranges of the live objects that are still found, with their values.
fn objects_of<B: Backing, M: Mode + Lends<u64>, A: MemoryAlgorithm>(
    seg: &ManagedSegment<B, M, HashIndex, A>,
) -> Vec<(usize, usize, Vec<u64>)> {
    LIVE.iter()
        .filter_map(|name| match seg.find_slice::<u64>(*name) {
            Ok(Some(s)) => Some((s.as_ptr().addr(), size_of_val(s), s.to_vec())),
            _ => None,
        })
        .collect()
}

/// Allocates until full (blocks of varying sizes, each checked to overlap no live object
/// and no other block, then written), frees them in an odd order, constructs and destroys,
/// and checks. Errors end the mix (they are fine); overlaps and changed objects panic.
fn write_mix<B: Backing, M: Writable + Lends<u64>, A: MemoryAlgorithm>(
    seg: &mut ManagedSegment<B, M, HashIndex, A>,
) -> Result<(), Error> {
    let before = objects_of(seg);
    let mut taken: Vec<(NonNull<u8>, usize)> = Vec::new();
    for i in 0..200usize {
        let size = [8, 24, 40, 100, 8, 200][i % 6];
        let r = if i % 7 == 3 {
            seg.allocate_new(size, size, 64).map(|a| a.ptr)
        } else {
            seg.allocate(size)
        };
        let p = match r {
            Ok(p) => p,
            Err(Error::OutOfMemory { .. } | Error::AllocationCommandFailed { .. }) => break,
            Err(e) => return Err(e),
        };
        let (lo, hi) = (p.as_ptr().addr(), p.as_ptr().addr() + size);
        for (at, len, _) in &before {
            assert!(
                hi <= *at || lo >= at + len,
                "a new block [{lo:#x}, {hi:#x}) overlaps a live object at {at:#x}"
            );
        }
        for (q, n) in &taken {
            let q = q.as_ptr().addr();
            assert!(
                hi <= q || lo >= q + n,
                "a new block [{lo:#x}, {hi:#x}) overlaps a live block at {q:#x}"
            );
        }
        // SAFETY: a fresh allocation of `size` bytes, overlapping nothing live (checked).
        unsafe { p.as_ptr().write_bytes(0xA5, size) };
        taken.push((p, size));
    }
    assert_eq!(
        objects_of(seg).into_iter().map(|o| o.2).collect::<Vec<_>>(),
        before.into_iter().map(|o| o.2).collect::<Vec<_>>(),
        "writing the new blocks changed a live object"
    );
    // Odd order: every third, then the rest backwards.
    let mut order: Vec<usize> = (0..taken.len()).step_by(3).collect();
    order.extend((0..taken.len()).rev().filter(|i| i % 3 != 0));
    for i in order {
        // SAFETY: allocated above from this segment, freed once.
        unsafe { seg.deallocate(taken[i].0)? };
    }
    seg.construct_array_with("g", 5, |i| i as u64)?;
    seg.destroy::<u64>("g")?;
    seg.check()?;
    std::hint::black_box(seg.memory_algorithm().stats());
    Ok(())
}

/// What a read-only mapping can do: look, inspect, check, the algorithm's view.
fn read_mix<B: Backing, M: Mode + Lends<u64>, A: MemoryAlgorithm>(
    seg: &ManagedSegment<B, M, HashIndex, A>,
) -> Result<(), Error> {
    std::hint::black_box(objects_of(seg));
    std::hint::black_box((seg.free_memory(), seg.check_sanity()));
    let view = seg.memory_algorithm();
    let stats = view.stats();
    assert_eq!(stats.name, A::NAME);
    // (`free` is the counter as found: a forged one is a wrong figure, checked below.)
    assert!(stats.largest_free <= seg.size());
    inspect::objects(seg)?;
    view.check()?;
    seg.check()
}

/// How one path ended: "refused: <error>", "ran", or "failed: <error>".
fn outcome(r: Result<Result<(), Error>, Error>) -> String {
    match r {
        Err(e) => format!("refused: {e:?}"),
        Ok(Ok(())) => "ran".into(),
        Ok(Err(e)) => format!("failed: {e:?}"),
    }
}

/// Opens `image` with algorithm `A` on the in-memory paths (heap image, buffer
/// read-write, buffer read-only), runs the mixes, and returns the outcomes.
fn open_in_memory<A: MemoryAlgorithm>(image: &[u8]) -> [(&'static str, String); 3] {
    let heap = ManagedHeapMemory::options()
        .algorithm::<A>()
        .from_image(image)
        .map(|mut seg| write_mix(&mut seg));
    let mut buf = AlignedBuffer::from_image(image);
    let buffer = ManagedExternalBuffer::options()
        .algorithm::<A>()
        .open(&mut buf)
        .map(|mut seg| write_mix(&mut seg));
    let buf = AlignedBuffer::from_image(image);
    let read_only = ManagedExternalBuffer::options()
        .read_only()
        .algorithm::<A>()
        .open(&buf)
        .map(|seg| read_mix(&seg));
    [
        ("heap", outcome(heap)),
        ("buffer", outcome(buffer)),
        ("read-only buffer", outcome(read_only)),
    ]
}

/// Whether an outcome is one a forgery may have: refused or failed with a clear error, or
/// ran (repaired on a private copy, or harmless).
fn acceptable(o: &str) -> bool {
    o == "ran"
        || [
            "Corrupted",
            "AlgorithmMismatch",
            "NotASegment",
            "Truncated",
            "BufferTooSmall",
            "InvalidSize",
        ]
        .iter()
        .any(|e| o.contains(e))
}

const LIMIT: Duration = Duration::from_secs(if cfg!(miri) { 600 } else { 20 });

#[test]
fn forged_seqfit_lists_and_state_give_errors_on_every_in_memory_path() {
    let image = base_image::<SeqFit>(4096);
    // The unforged image runs everywhere.
    for (path, o) in open_in_memory::<SeqFit>(&image) {
        assert_eq!(o, "ran", "the sound image on {path}");
    }
    let forgeries = seqfit_forgeries(&image);
    let results = within(LIMIT, "the forged SeqFit images", move || {
        forgeries
            .into_iter()
            .map(|(what, img)| (what, open_in_memory::<SeqFit>(&img)))
            .collect::<Vec<_>>()
    });
    for (what, outcomes) in &results {
        for (path, o) in outcomes {
            assert!(acceptable(o), "{what} on {path}: {o}");
        }
        // A list that is not the chain's free blocks is seen by a read-only check.
        let ro = &outcomes[2].1;
        if what.starts_with("head") || what.contains("link") || what.contains("cycle") {
            assert!(
                ro.contains("Corrupted"),
                "{what}: a read-only check passed a forged list: {ro}"
            );
        }
    }
}

/// The same forgeries with the segment lock word naming an owner (pid 1, alive but not
/// here): a private copy adopts the lock and rebuilds the list from the chain, so list
/// forgeries are repaired, and the mix checks that the repaired list hands out no live
/// byte.
#[test]
fn forged_seqfit_lists_in_private_copies_with_a_held_lock_are_repaired_soundly() {
    use shmkit_test_support::offsets::LOCK;
    let image = base_image::<SeqFit>(4096);
    let forgeries: Vec<(String, Vec<u8>)> = seqfit_forgeries(&image)
        .into_iter()
        .map(|(what, mut img)| {
            img[LOCK..LOCK + 4].copy_from_slice(&1u32.to_ne_bytes());
            (what, img)
        })
        .collect();
    let results = within(LIMIT, "the forged SeqFit images, lock held", move || {
        forgeries
            .into_iter()
            .map(|(what, img)| (what, open_in_memory::<SeqFit>(&img)))
            .collect::<Vec<_>>()
    });
    let mut repaired = 0;
    for (what, outcomes) in &results {
        for (path, o) in &outcomes[..2] {
            assert!(acceptable(o), "{what} on {path}: {o}");
            if what.starts_with("head") || what.contains("link") || what.contains("cycle") {
                assert_eq!(o, "ran", "{what} on {path}: the list is rebuilt");
                repaired += 1;
            }
        }
    }
    assert!(repaired > 40);
}

#[test]
fn relabelled_images_open_only_with_their_label_and_soundly() {
    let seq = base_image::<SeqFit>(4096);
    let tlsf = base_image::<Tlsf>(4096);
    // The wrong type: AlgorithmMismatch on every path.
    for (path, o) in open_in_memory::<Tlsf>(&seq)
        .into_iter()
        .chain(open_in_memory::<SeqFit>(&tlsf))
    {
        assert!(o.contains("AlgorithmMismatch"), "{path}: {o}");
    }
    // Relabelled, opened as the label says: a clear error or a sound repair.
    let mut seq_as_tlsf = seq.clone();
    forge_algorithm_kind(&mut seq_as_tlsf, Tlsf::KIND);
    let mut tlsf_as_seq = tlsf.clone();
    forge_algorithm_kind(&mut tlsf_as_seq, SeqFit::KIND);
    let (a, b) = within(LIMIT, "relabelled images", move || {
        (
            open_in_memory::<Tlsf>(&seq_as_tlsf),
            open_in_memory::<SeqFit>(&tlsf_as_seq),
        )
    });
    for (path, o) in a.iter().chain(&b) {
        assert!(acceptable(o), "{path}: {o}");
    }
    // Unknown kinds: a mismatch naming no algorithm we know, for both types.
    for kind in [2, 255, 0xB0B0, u64::MAX] {
        let mut img = seq.clone();
        forge_algorithm_kind(&mut img, kind);
        for (path, o) in open_in_memory::<SeqFit>(&img)
            .into_iter()
            .chain(open_in_memory::<Tlsf>(&img))
        {
            assert!(
                o.contains("AlgorithmMismatch"),
                "kind {kind} on {path}: {o}"
            );
        }
    }
}

#[test]
fn a_relabelled_tlsf_image_opened_as_seqfit_is_refused_or_hands_out_no_live_byte() {
    // The TLSF image's table lies before its blocks and its state words are a bitmap and a
    // level count: as SeqFit's list head, the bitmap names no free block.
    for size in [768, 8192] {
        let mut img = base_image::<Tlsf>(size.max(2048));
        forge_algorithm_kind(&mut img, SeqFit::KIND);
        match ManagedHeapMemory::options()
            .algorithm::<SeqFit>()
            .from_image(&img)
        {
            Err(Error::Corrupted { .. }) => {}
            Err(e) => panic!("{e:?}"),
            Ok(mut seg) => {
                write_mix(&mut seg).unwrap();
                for name in LIVE {
                    let found = seg.find_slice::<u64>(name).unwrap().unwrap();
                    assert!(found.iter().enumerate().all(|(i, &v)| v == value(name, i)));
                }
            }
        }
    }
}

#[test]
fn allocate_until_full_and_free_in_odd_orders_keeps_seqfit_sound() {
    for size in [768, 1000, 4096] {
        let seg = ManagedHeapMemory::options()
            .algorithm::<SeqFit>()
            .create(size)
            .unwrap();
        let free0 = seg.free_memory();
        for round in 0..4usize {
            let mut ps = Vec::new();
            let mut i = 0usize;
            loop {
                let n = [8, 16, 24, 56, 8, 120][(i + round) % 6];
                match seg.allocate(n) {
                    Ok(p) => ps.push(p),
                    Err(Error::OutOfMemory { .. }) => break,
                    Err(e) => panic!("{e}"),
                }
                i += 1;
            }
            assert!(!ps.is_empty());
            seg.check().unwrap();
            // Free the odd ones, check, then the even ones from the back.
            for p in ps.iter().skip(1).step_by(2) {
                // SAFETY: allocated above, freed once.
                unsafe { seg.deallocate(*p).unwrap() };
            }
            seg.memory_algorithm().check().unwrap();
            for p in ps.iter().step_by(2).rev() {
                // SAFETY: allocated above, freed once.
                unsafe { seg.deallocate(*p).unwrap() };
            }
            seg.check().unwrap();
            assert_eq!(seg.free_memory(), free0, "round {round} of {size}");
        }
        // Huge alignments: an error, never a panic or a block that is not aligned.
        for align in [128, 4096, 1 << 20, 1 << 40, 1 << 62] {
            match seg.allocate_new(8, 8, align) {
                Ok(a) => {
                    assert_eq!(a.ptr.as_ptr().addr() % align, 0);
                    // SAFETY: allocated just now, freed once.
                    unsafe { seg.deallocate(a.ptr).unwrap() };
                }
                Err(
                    Error::OutOfMemory { .. }
                    | Error::InvalidSize { .. }
                    | Error::AllocationCommandFailed { .. },
                ) => {}
                Err(e) => panic!("align {align}: {e:?}"),
            }
        }
        for (limit, preferred) in [(0, 0), (1, usize::MAX), (usize::MAX, usize::MAX)] {
            match seg.allocate_new(limit, preferred, 8) {
                Ok(a) => {
                    // SAFETY: allocated just now, freed once.
                    unsafe { seg.deallocate(a.ptr).unwrap() };
                }
                Err(
                    Error::OutOfMemory { .. }
                    | Error::InvalidSize { .. }
                    | Error::AllocationCommandFailed { .. },
                ) => {}
                Err(e) => panic!("{limit}..{preferred}: {e:?}"),
            }
        }
        seg.check().unwrap();
        assert_eq!(seg.free_memory(), free0);
    }
}

#[test]
fn destroy_ptr_with_foreign_interior_and_freed_pointers_on_seqfit_is_refused() {
    let mut seg = ManagedHeapMemory::options()
        .algorithm::<SeqFit>()
        .create(2048)
        .unwrap();
    let a: *const u64 = seg.construct_array("a", 4, 7u64).unwrap().as_ptr();
    let b: *const u64 = seg.construct("b", 9u64).unwrap();
    let local = 5u64;
    // A pointer outside the segment, one inside an object, one at a block header.
    for p in [
        &raw const local,
        a.wrapping_add(1),
        a.cast::<u8>().wrapping_sub(8).cast::<u64>(),
        b.cast::<u8>().wrapping_add(3).cast::<u64>(),
    ] {
        assert!(seg.destroy_ptr(p).is_err(), "{p:p}");
    }
    seg.destroy_ptr(b).unwrap();
    // Freed: a second destroy must not free the block again.
    assert!(seg.destroy_ptr(b).is_err());
    seg.check().unwrap();
    assert_eq!(seg.find_slice::<u64>("a").unwrap().unwrap(), &[7; 4]);
}

#[test]
fn growing_and_shrinking_a_seqfit_heap_segment_keeps_it_sound() {
    let mut seg = ManagedHeapMemory::options()
        .algorithm::<SeqFit>()
        .create(1024)
        .unwrap();
    seg.construct_array_with("x", 10, |i| i as u64).unwrap();
    let free0 = seg.free_memory();
    seg.grow(4096).unwrap();
    assert!(seg.free_memory() >= free0 + 4000);
    seg.check().unwrap();
    let big = seg.allocate(3000).unwrap();
    let big = big.as_ptr().addr() - seg.base_address().as_ptr().addr();
    // With the big block live, nothing past it can go.
    assert_eq!(seg.shrink_to_fit().unwrap(), seg.size());
    assert!(seg.size() > 3000);
    seg.check().unwrap();
    // SAFETY: allocated above, found again at its offset (the segment may have moved),
    // freed once.
    unsafe {
        let p = NonNull::new(seg.base_address().as_ptr().wrapping_add(big)).unwrap();
        seg.deallocate(p).unwrap()
    };
    let shrunk = seg.shrink_to_fit().unwrap();
    assert!(shrunk <= seg.size());
    seg.check().unwrap();
    assert_eq!(
        seg.find_slice::<u64>("x").unwrap().unwrap(),
        (0..10).collect::<Vec<u64>>()
    );
    // Grow once more and shrink all the way down: nothing is lost.
    seg.grow(8192).unwrap();
    seg.shrink_to_fit().unwrap();
    seg.check().unwrap();
    assert_eq!(seg.memory_algorithm().stats().name, "seqfit");
}

/// `AlgorithmView` borrows its segment: Send and Sync only as a shared reference would be.
#[test]
fn the_algorithm_view_is_a_borrow() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    let seg = ManagedHeapMemory::options()
        .algorithm::<SeqFit>()
        .create(1024)
        .unwrap();
    let view = seg.memory_algorithm();
    send_sync(&view);
    let copy = view;
    std::thread::scope(|s| {
        s.spawn(|| copy.check().unwrap());
        s.spawn(|| std::hint::black_box(view.stats()));
        seg.allocate(16).unwrap();
    });
    assert_eq!(view.name(), "seqfit");
}

// ----- OS mappings: files, shared memory, two mappings, two processes -----------------

use shmkit_runtime::{ManagedMappedFile, ManagedSharedMemory};
use shmkit_test_support::{shm_path, ShmGuard, TempPath};

/// Opens `image` as a file with algorithm `A`: read-write, read-only, copy-on-write.
fn open_as_file<A: MemoryAlgorithm>(image: &[u8]) -> [(&'static str, String); 3] {
    let file = TempPath::new();
    std::fs::write(file.get(), image).unwrap();
    let o = ManagedMappedFile::options()
        .init_timeout(Duration::from_millis(20))
        .algorithm::<A>();
    let rw = o
        .clone()
        .open(file.get())
        .map(|mut seg| write_mix(&mut seg));
    std::fs::write(file.get(), image).unwrap();
    let ro = o
        .clone()
        .read_only()
        .open(file.get())
        .map(|seg| read_mix(&seg));
    let cow = o
        .copy_on_write()
        .open(file.get())
        .map(|mut seg| write_mix(&mut seg));
    [
        ("file", outcome(rw)),
        ("read-only file", outcome(ro)),
        ("copy-on-write file", outcome(cow)),
    ]
}

fn open_as_shm<A: MemoryAlgorithm>(image: &[u8]) -> String {
    let shm = ShmGuard::new();
    std::fs::write(shm_path(shm.get()), image).unwrap();
    outcome(
        ManagedSharedMemory::options()
            .init_timeout(Duration::from_millis(20))
            .algorithm::<A>()
            .open(shm.get())
            .map(|mut seg| write_mix(&mut seg)),
    )
}

#[test]
#[cfg_attr(miri, ignore = "maps files and shared memory")]
fn forged_seqfit_files_and_shm_objects_give_errors_on_every_device_path() {
    let image = base_image::<SeqFit>(4096);
    for (path, o) in open_as_file::<SeqFit>(&image) {
        assert_eq!(o, "ran", "the sound image on {path}");
    }
    assert_eq!(open_as_shm::<SeqFit>(&image), "ran");
    let forgeries = seqfit_forgeries(&image);
    let results = within(LIMIT, "the forged SeqFit files", move || {
        forgeries
            .into_iter()
            .map(|(what, img)| {
                let mut outcomes = open_as_file::<SeqFit>(&img).to_vec();
                outcomes.push(("shm", open_as_shm::<SeqFit>(&img)));
                (what, outcomes)
            })
            .collect::<Vec<_>>()
    });
    for (what, outcomes) in &results {
        for (path, o) in outcomes {
            assert!(acceptable(o), "{what} on {path}: {o}");
        }
        if what.starts_with("head") || what.contains("link") || what.contains("cycle") {
            // A cold read-write open validates the list; a copy-on-write one rebuilds it.
            assert!(
                outcomes[0].1.contains("Corrupted"),
                "{what}: {:?}",
                outcomes[0]
            );
            assert!(
                outcomes[1].1.contains("Corrupted"),
                "{what}: {:?}",
                outcomes[1]
            );
            assert_eq!(outcomes[2].1, "ran", "{what}: copy-on-write repairs");
            assert!(
                outcomes[3].1.contains("Corrupted"),
                "{what}: {:?}",
                outcomes[3]
            );
        }
    }
}

#[test]
#[cfg_attr(miri, ignore = "maps files and shared memory")]
fn the_wrong_algorithm_is_refused_through_every_device_and_grow_or_shrink() {
    let file = TempPath::new();
    let seg = ManagedMappedFile::options()
        .algorithm::<SeqFit>()
        .create(file.get(), 8192)
        .unwrap();
    seg.construct("x", 5u64).unwrap();
    // The file is mapped (warm) and at rest: both refused with the default TLSF type.
    let mismatch = |r: Result<(), Error>| {
        assert!(matches!(r, Err(Error::AlgorithmMismatch { .. })), "{r:?}");
    };
    mismatch(ManagedMappedFile::open(file.get()).map(drop));
    drop(seg);
    mismatch(ManagedMappedFile::open(file.get()).map(drop));
    mismatch(
        ManagedMappedFile::options()
            .read_only()
            .open(file.get())
            .map(drop),
    );
    mismatch(
        ManagedMappedFile::options()
            .copy_on_write()
            .open(file.get())
            .map(drop),
    );
    // Growing or shrinking with the wrong type: refused before the file changes size.
    let len = std::fs::metadata(file.get()).unwrap().len();
    mismatch(ManagedMappedFile::grow(file.get(), 4096));
    mismatch(ManagedMappedFile::shrink_to_fit(file.get()).map(drop));
    assert_eq!(std::fs::metadata(file.get()).unwrap().len(), len);
    // The observer maps TLSF segments only.
    assert!(shmkit_runtime::MappedFileObserver::open(file.get()).is_err());
    // With the right type: grow, shrink, and the object is there.
    let o = ManagedMappedFile::options().algorithm::<SeqFit>();
    o.clone().grow(file.get(), 16384).unwrap();
    let seg = o.open(file.get()).unwrap();
    assert_eq!(seg.size(), 8192 + 16384);
    seg.check().unwrap();
    let big = seg.allocate(20000).unwrap();
    drop(seg);
    // The big block keeps the file from shrinking below it.
    let shrunk = ManagedMappedFile::options()
        .algorithm::<SeqFit>()
        .shrink_to_fit(file.get())
        .unwrap();
    assert!(shrunk > 20000, "{shrunk}");
    let _ = big;
    let seg = ManagedMappedFile::options()
        .algorithm::<SeqFit>()
        .open(file.get())
        .unwrap();
    seg.check().unwrap();
    assert_eq!(seg.find::<u64>("x").unwrap(), Some(&5));
    drop(seg);
    // A read-only mapping of a SeqFit file: the view, inspection, check.
    let ro = ManagedMappedFile::options()
        .read_only()
        .algorithm::<SeqFit>()
        .open(file.get())
        .unwrap();
    read_mix(&ro).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(ro.memory_algorithm().stats().name, "seqfit");
    drop(ro);
    // Shared memory: the same.
    let shm = ShmGuard::new();
    let seg = ManagedSharedMemory::options()
        .algorithm::<SeqFit>()
        .create(shm.get(), 4096)
        .unwrap();
    mismatch(ManagedSharedMemory::open(shm.get()).map(drop));
    drop(seg);
    mismatch(ManagedSharedMemory::open(shm.get()).map(drop));
}

/// Two mappings of one SeqFit shm object in one process, each used by two threads that
/// allocate, write and free; the segment checks sound after, and nothing leaked.
#[test]
#[cfg_attr(miri, ignore = "maps shared memory")]
fn two_mappings_allocating_at_once_leave_a_seqfit_segment_sound() {
    let shm = ShmGuard::new();
    let o = ManagedSharedMemory::options().algorithm::<SeqFit>();
    let first = o.clone().create(shm.get(), 64 * 1024).unwrap();
    let second = o.open(shm.get()).unwrap();
    let free0 = first.free_memory();
    std::thread::scope(|s| {
        for (t, seg) in [&first, &second, &first, &second].into_iter().enumerate() {
            s.spawn(move || churn(seg, t as u8, 2000));
        }
    });
    first.check().unwrap();
    second.memory_algorithm().check().unwrap();
    assert_eq!(second.free_memory(), free0);
}

/// Allocates blocks of varying sizes, fills each with `tag`, checks the fill, frees some
/// in an odd order (keeping at most 100 live); all freed at the end.
fn churn<B: Backing, M: Writable, I: shmkit_runtime::IndexKind, A: MemoryAlgorithm>(
    seg: &ManagedSegment<B, M, I, A>,
    tag: u8,
    rounds: usize,
) {
    let mut live: Vec<(NonNull<u8>, usize)> = Vec::new();
    for i in 0..rounds {
        let n = [8, 24, 72, 200, 16][i % 5];
        match seg.allocate(n) {
            Ok(p) => {
                // SAFETY: a fresh block of `n` bytes, ours alone.
                unsafe { p.as_ptr().write_bytes(tag, n) };
                live.push((p, n));
            }
            Err(Error::OutOfMemory { .. }) => {}
            Err(e) => panic!("{e:?}"),
        }
        // At most 100 blocks live: two churners share a segment without filling it.
        if (i % 3 == 2 || live.len() >= 100) && !live.is_empty() {
            let (p, n) = live.swap_remove((i * 7) % live.len());
            // SAFETY: our block of `n` bytes, written above; nobody else has it.
            let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), n) };
            assert!(
                bytes.iter().all(|&b| b == tag),
                "another thread wrote our block"
            );
            // SAFETY: allocated above, freed once.
            unsafe { seg.deallocate(p).unwrap() };
        }
    }
    for (p, _) in live {
        // SAFETY: allocated above, freed once.
        unsafe { seg.deallocate(p).unwrap() };
    }
}

const CHILD_ENV: &str = "SHMKIT_ATTACK_ALGORITHM_CHILD";

/// The other process of the next test: opens the SeqFit shm object named in the
/// environment and churns in it. Run alone (no name given), it has nothing to do.
#[test]
#[ignore = "the child of two_processes_allocating_at_once_leave_a_seqfit_segment_sound"]
fn seqfit_churn_child() {
    let name = std::env::var(CHILD_ENV).expect("run by the parent test");
    let seg = ManagedSharedMemory::options()
        .algorithm::<SeqFit>()
        .open(&name)
        .unwrap();
    // First: the parent may fill the segment meanwhile.
    seg.construct("child-was-here", 1u64).unwrap();
    churn(&seg, 0xC1, 20_000);
    seg.check().unwrap();
}

/// Two processes (this one and a child) allocate and free in one SeqFit segment at once.
#[test]
#[cfg_attr(miri, ignore = "processes")]
fn two_processes_allocating_at_once_leave_a_seqfit_segment_sound() {
    let shm = ShmGuard::new();
    let mut seg = ManagedSharedMemory::options()
        .algorithm::<SeqFit>()
        .create(shm.get(), 256 * 1024)
        .unwrap();
    let free0 = seg.free_memory();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "attack_algorithm::seqfit_churn_child",
            "--exact",
            "--ignored",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, shm.get())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    churn(&seg, 0x7A, 40_000);
    let out = within(LIMIT, "the child", move || {
        child.wait_with_output().unwrap()
    });
    assert!(
        out.status.success(),
        "the child failed: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    seg.check().unwrap();
    assert_eq!(seg.find::<u64>("child-was-here").unwrap(), Some(&1));
    assert!(seg.destroy::<u64>("child-was-here").unwrap());
    assert_eq!(seg.free_memory(), free0);
}

// ----- a model check of allocation_command on both algorithms --------------------------

use shmkit_runtime::Command;
use shmkit_test_support::Rng;

/// A live block of the model: where, how many usable bytes, the byte it is filled with.
struct Live {
    ptr: NonNull<u8>,
    len: usize,
    fill: u8,
}

fn fill(b: &Live) {
    // SAFETY: `len` usable bytes of a block the model owns.
    unsafe { b.ptr.as_ptr().write_bytes(b.fill, b.len) };
}

fn intact(b: &Live, len: usize) -> bool {
    // SAFETY: at least `len` bytes of a block the model owns.
    unsafe { std::slice::from_raw_parts(b.ptr.as_ptr(), len) }
        .iter()
        .all(|&x| x == b.fill)
}

/// Random allocations, frees, forward and backward expansions (moving the data as a
/// caller must) and in-place shrinks through `allocation_command`, each checked against
/// a model: no two live blocks overlap, every live block keeps its bytes, the segment
/// checks sound, and freeing everything gives back every byte.
fn model_check<A: MemoryAlgorithm>(size: usize, ops: usize, seed: u64) {
    let seg = ManagedHeapMemory::options()
        .algorithm::<A>()
        .create(size)
        .unwrap();
    let free0 = seg.free_memory();
    let mut rng = Rng::new(seed);
    let mut live: Vec<Live> = Vec::new();
    // Successful forward, backward and in-place shrinking commands.
    let (mut forward, mut backward, mut shrunk) = (0, 0, 0);
    for op in 0..ops {
        let n = [8, 16, 40, 64, 120, 300][rng.range(0, 6) as usize];
        match rng.range(0, 6) {
            0 | 1 => {
                let align = [8, 16, 64, 256][rng.range(0, 4) as usize];
                match seg.allocate_new(n, n + 16, align) {
                    Ok(a) => {
                        assert_eq!(a.ptr.as_ptr().addr() % align, 0);
                        live.push(Live {
                            ptr: a.ptr,
                            len: a.received,
                            fill: op as u8 | 1,
                        });
                        fill(live.last().unwrap());
                    }
                    Err(Error::OutOfMemory { .. } | Error::AllocationCommandFailed { .. }) => {}
                    Err(e) => panic!("{e:?}"),
                }
            }
            2 if !live.is_empty() => {
                let b = live.swap_remove(rng.range(0, live.len() as u64) as usize);
                assert!(intact(&b, b.len), "op {op}: a freed block was overwritten");
                // SAFETY: a live block of the model, freed once.
                unsafe { seg.deallocate(b.ptr).unwrap() };
            }
            3..=5 if !live.is_empty() => {
                let i = rng.range(0, live.len() as u64) as usize;
                let object = [1, 8, 24][rng.range(0, 3) as usize];
                let (cmd, limit, preferred) = match rng.range(0, 4) {
                    0 => (Command::EXPAND_FWD, live[i].len + 8, live[i].len + n),
                    1 => (Command::EXPAND_BWD, live[i].len + 8, live[i].len + n),
                    2 => (
                        Command::EXPAND_FWD | Command::EXPAND_BWD,
                        live[i].len + 1,
                        live[i].len + 2 * n,
                    ),
                    _ => (
                        Command::SHRINK_IN_PLACE,
                        live[i].len,
                        live[i].len.saturating_sub(n).max(8),
                    ),
                };
                let old = Live {
                    ptr: live[i].ptr,
                    len: live[i].len,
                    fill: live[i].fill,
                };
                // SAFETY: `reuse` is a live block the model owns and nobody else uses.
                let r =
                    unsafe { seg.allocation_command(cmd, limit, preferred, Some(old.ptr), object) };
                match r {
                    Ok(a) => {
                        assert!(a.reused, "op {op}: {cmd:?} gave a new block");
                        if cmd == Command::SHRINK_IN_PLACE {
                            shrunk += 1;
                        } else if a.ptr != old.ptr {
                            backward += 1;
                        } else {
                            forward += 1;
                        }
                        let keep = old.len.min(a.received);
                        if a.ptr != old.ptr {
                            assert!(a.ptr < old.ptr, "op {op}: a backward expansion moved up");
                            assert_eq!(
                                (old.ptr.as_ptr().addr() - a.ptr.as_ptr().addr()) % object,
                                0
                            );
                            // SAFETY: both ranges lie in the expanded block, ours alone.
                            unsafe { std::ptr::copy(old.ptr.as_ptr(), a.ptr.as_ptr(), keep) };
                        } else {
                            assert!(intact(&old, keep), "op {op}: {cmd:?} lost bytes in place");
                        }
                        live[i] = Live {
                            ptr: a.ptr,
                            len: a.received,
                            fill: old.fill,
                        };
                        assert!(intact(&live[i], keep), "op {op}: {cmd:?} lost the data");
                        fill(&live[i]);
                    }
                    Err(
                        Error::OutOfMemory { .. }
                        | Error::AllocationCommandFailed { .. }
                        | Error::InvalidSize { .. },
                    ) => {}
                    Err(e) => panic!("op {op}: {cmd:?}: {e:?}"),
                }
            }
            _ => {}
        }
        let mut spans: Vec<(usize, usize)> = live
            .iter()
            .map(|b| (b.ptr.as_ptr().addr(), b.ptr.as_ptr().addr() + b.len))
            .collect();
        spans.sort_unstable();
        for w in spans.windows(2) {
            assert!(w[0].1 <= w[1].0, "op {op}: live blocks overlap: {w:?}");
        }
        if op % 16 == 0 {
            seg.check().unwrap_or_else(|e| panic!("op {op}: {e}"));
            for b in &live {
                assert!(intact(b, b.len), "op {op}: a live block changed");
            }
        }
    }
    for b in live {
        assert!(intact(&b, b.len));
        // SAFETY: a live block of the model, freed once.
        unsafe { seg.deallocate(b.ptr).unwrap() };
    }
    seg.check().unwrap();
    assert_eq!(seg.free_memory(), free0);
    // (A short run, as under Miri in the tiny segment, may miss one kind.)
    assert!(
        ops < 1000 || forward > 0 && backward > 0 && shrunk > 0,
        "{forward} forward, {backward} backward, {shrunk} shrunk"
    );
}

const MODEL_OPS: usize = if cfg!(miri) { 400 } else { 6_000 };

#[test]
fn allocation_command_on_seqfit_matches_the_model() {
    model_check::<SeqFit>(768, MODEL_OPS / 4, 1);
    model_check::<SeqFit>(4096, MODEL_OPS, 2);
    model_check::<SeqFit>(32 * 1024, MODEL_OPS, 3);
}

#[test]
fn allocation_command_on_tlsf_matches_the_model() {
    model_check::<Tlsf>(4096, MODEL_OPS, 4);
    model_check::<Tlsf>(32 * 1024, MODEL_OPS, 5);
}

/// A SeqFit segment large enough for thread caches (16 MiB): threads allocate and free
/// small blocks through their caches (which split and widen used blocks behind the
/// algorithm's back), then the caches go back with the threads, and the list still is
/// exactly the chain's free blocks.
#[test]
#[cfg_attr(miri, ignore = "16 MiB and threads: too slow under Miri")]
fn thread_caches_on_a_large_seqfit_segment_keep_its_list_exact() {
    let seg = ManagedHeapMemory::options()
        .algorithm::<SeqFit>()
        .create(16 << 20)
        .unwrap();
    let free0 = seg.free_memory();
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let seg = &seg;
            s.spawn(move || churn(seg, t + 1, 20_000));
        }
    });
    seg.check().unwrap();
    seg.memory_algorithm().check().unwrap();
    assert_eq!(seg.free_memory(), free0);
    let stats = seg.memory_algorithm().stats();
    assert_eq!(
        (stats.name, stats.levels, stats.size_classes),
        ("seqfit", 0, 1)
    );
}

// ----- a user algorithm's table -------------------------------------------------------

/// SeqFit with a table of `N` bytes of its own, whatever the segment's size: `table_bytes`
/// is a safe function, and the trait's contract asks nothing of its value.
struct BigTable<const N: usize>;

// SAFETY: every function is SeqFit's (whose contract holds), on an area that starts after
// a larger table; the kind is unique in this program for each `N` used.
unsafe impl<const N: usize> MemoryAlgorithm for BigTable<N> {
    const NAME: &'static str = "big-table";
    const KIND: u64 = 0xB16_0000 + (N as u64 & 0xFFFF);
    const KEPT_WORDS: (u64, u64) = SeqFit::KEPT_WORDS;

    fn table_bytes(_: usize) -> usize {
        N
    }
    fn init(heap: &mut shmkit_runtime::algorithm::Heap) {
        SeqFit::init(heap)
    }
    fn allocate(heap: &mut shmkit_runtime::algorithm::Heap, size: u64) -> Option<u64> {
        SeqFit::allocate(heap, size)
    }
    fn deallocate(heap: &mut shmkit_runtime::algorithm::Heap, off: u64) {
        SeqFit::deallocate(heap, off)
    }
    fn check(heap: &shmkit_runtime::algorithm::Heap) -> Result<(), String> {
        SeqFit::check(heap)
    }
    fn rebuild(heap: &mut shmkit_runtime::algorithm::Heap) -> Result<(), String> {
        SeqFit::rebuild(heap)
    }
}

fn refused_at_creation<A: MemoryAlgorithm>(size: usize) {
    let r = ManagedHeapMemory::options().algorithm::<A>().create(size);
    assert!(
        matches!(r, Err(Error::InvalidSize { .. })),
        "{size}: {:?}",
        r.map(|s| s.size())
    );
    let mut buf = AlignedBuffer::new(size);
    let r = ManagedExternalBuffer::options()
        .algorithm::<A>()
        .create(&mut buf)
        .map(drop);
    assert!(matches!(r, Err(Error::InvalidSize { .. })), "{size}: {r:?}");
}

/// A table that leaves no room for the blocks is refused at creation (it was zeroed past
/// the end of the segment's memory), on every backing; a table that fits works.
#[test]
fn an_algorithm_table_larger_than_the_segment_is_refused_at_creation() {
    for size in [768, 1000, 4096, 4200] {
        refused_at_creation::<BigTable<4096>>(size);
    }
    for size in [768, 1 << 20] {
        refused_at_creation::<BigTable<{ usize::MAX - 64 }>>(size);
    }
    // Room left past the table: it works.
    let seg = ManagedHeapMemory::options()
        .algorithm::<BigTable<4096>>()
        .create(16384)
        .unwrap_or_else(|e| panic!("{e:?}"));
    seg.construct("x", 1u64).unwrap();
    seg.check().unwrap();
    assert_eq!(seg.memory_algorithm().name(), "big-table");
}

/// The same on a device: refused before the header is written, and the name is left as a
/// later creator can use it.
#[test]
#[cfg_attr(miri, ignore = "maps files and shared memory")]
fn an_algorithm_table_larger_than_a_device_is_refused_at_creation() {
    let file = TempPath::new();
    let r = ManagedMappedFile::options()
        .algorithm::<BigTable<4096>>()
        .create(file.get(), 4096)
        .map(drop);
    assert!(matches!(r, Err(Error::InvalidSize { .. })), "{r:?}");
    let seg = ManagedMappedFile::options()
        .init_timeout(Duration::from_millis(100))
        .open_or_create(file.get(), 4096)
        .unwrap_or_else(|e| panic!("{e:?}"));
    seg.check().unwrap();
    let shm = ShmGuard::new();
    let r = ManagedSharedMemory::options()
        .algorithm::<BigTable<4096>>()
        .create(shm.get(), 4096)
        .map(drop);
    assert!(matches!(r, Err(Error::InvalidSize { .. })), "{r:?}");
    let seg = ManagedSharedMemory::options()
        .init_timeout(Duration::from_millis(100))
        .open_or_create(shm.get(), 4096)
        .unwrap_or_else(|e| panic!("{e:?}"));
    seg.check().unwrap();
}
