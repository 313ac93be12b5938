//! Segment-manager checks that need its internals: forged (untrusted) segment images must
//! be refused at open, and a process dying half-way through returning its cached blocks
//! must not lead to a block being handed out twice.

use std::mem::offset_of;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::alloc::block::ENTRY;
use crate::alloc::cache;
use crate::alloc::tlsf::layout;
use crate::manager::header::{self, SegmentHeader};
use crate::segment::{AlignedBuffer, ManagedHeapMemory};
use crate::Error;

fn put(img: &mut AlignedBuffer, off: usize, bytes: &[u8]) {
    img.write_all_at(bytes, off).unwrap();
}

fn put_u64(img: &mut AlignedBuffer, off: usize, v: u64) {
    put(img, off, &v.to_ne_bytes());
}

fn image_of(size: usize) -> AlignedBuffer {
    plain_image(&mut ManagedHeapMemory::new(size).unwrap())
}

/// An editable copy of a segment that stores no values (only allocator and header words,
/// written whole, over zeroed memory): every byte is initialised, so it is read as plain
/// bytes (Miri checks that) and the copy may be forged with `write_all_at`.
fn plain_image(seg: &mut ManagedHeapMemory) -> AlignedBuffer {
    // SAFETY: see above: no byte of such a segment is uninitialised.
    let bytes: Vec<u8> = seg
        .image()
        .iter()
        .map(|b| unsafe { b.assume_init() })
        .collect();
    AlignedBuffer::from(&bytes[..])
}

fn refused(img: &AlignedBuffer) -> bool {
    matches!(
        ManagedHeapMemory::from_image(img),
        Err(Error::Corrupted { .. })
    )
}

#[test]
fn a_forged_free_list_head_is_refused_at_open() {
    let mut img = image_of(64 * 1024);
    let t = offset_of!(SegmentHeader, heap);
    // Class (0, 4), the 32-byte blocks: mark it non-empty, its head far outside.
    put_u64(&mut img, t + layout::FL_BITMAP, 1);
    put(&mut img, t + layout::SL_BITMAP, &(1u32 << 4).to_ne_bytes());
    put_u64(&mut img, t + layout::HEADS + 4 * 8, 1 << 40);
    assert!(refused(&img));
}

/// A head whose bitmap bit is clear is as dangerous as a marked one: the next free into
/// that class would link to it (a write at any offset) if the open let it through.
#[test]
fn a_forged_head_of_an_empty_class_is_refused_at_open() {
    let mut img = image_of(64 * 1024);
    let t = offset_of!(SegmentHeader, heap);
    put_u64(&mut img, t + layout::HEADS + 4 * 8, 1 << 40);
    assert!(refused(&img));
}

#[test]
fn a_forged_size_class_bit_is_refused_at_open() {
    let mut img = image_of(64 * 1024);
    let t = offset_of!(SegmentHeader, heap);
    put_u64(&mut img, t + layout::FL_BITMAP, 1 << 60);
    assert!(refused(&img));
}

#[test]
fn a_forged_cache_table_is_refused_at_open() {
    let mut img = image_of(64 * 1024);
    put_u64(&mut img, offset_of!(SegmentHeader, cache_table), 1 << 40);
    assert!(refused(&img));
}

#[test]
fn a_forged_end_that_overflows_is_refused_at_open() {
    let mut img = image_of(64 * 1024);
    put_u64(
        &mut img,
        offset_of!(SegmentHeader, heap) + layout::END,
        u64::MAX - 3,
    );
    assert!(refused(&img));
}

/// Bytes in memory (an image, a buffer) are final: a header that is not READY is judged at
/// once, never waited for (the default init timeout is 10 s).
#[test]
fn an_image_whose_header_is_not_ready_is_refused_at_once() {
    let img = image_of(64 * 1024);
    let state_at = offset_of!(SegmentHeader, state);
    let started = std::time::Instant::now();
    let mut initialising = img.clone();
    put(
        &mut initialising,
        state_at,
        &header::state::INITIALISING.to_ne_bytes(),
    );
    assert!(matches!(
        ManagedHeapMemory::from_image(&initialising),
        Err(Error::Corrupted { .. })
    ));
    let mut no_magic = img;
    put(&mut no_magic, 0, &[0; 8]);
    assert!(matches!(
        ManagedHeapMemory::from_image(&no_magic),
        Err(Error::NotASegment { .. })
    ));
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Makes the segment at `base` look as a process `dead` leaves it when it dies holding the
/// segment lock with its thread-cache slot `slot` claimed: both name it, and this thread
/// no longer counts the lock as held.
fn die_holding_the_lock(base: *mut u8, slot: u64, dead: u32) {
    super::HELD.with(|h| h.set(super::NOT_HELD));
    // SAFETY: the slot's first word is its owner word, inside the mapping.
    unsafe {
        (*base.add(slot as usize).cast::<AtomicU64>())
            .store((dead as u64) << 32 | 1, Ordering::Relaxed)
    };
    // SAFETY: the lock word is a u32 field of the mapped header.
    let lock = unsafe { &*(&raw const (*header::header(base)).lock).cast::<AtomicU32>() };
    lock.store(dead | 1 << 31, Ordering::Relaxed);
}

/// A process dies while returning its cached blocks (at each allocator write in turn); the
/// recoverer rebuilds the allocator and returns the rest. No block may be lost for good or
/// handed out twice: the bin gives a block up before freeing it, so the recoverer never
/// frees one whose stale header survives inside a free block.
#[test]
#[cfg_attr(miri, ignore = "spawns a process")]
fn a_crash_while_returning_cached_blocks_never_frees_one_twice() {
    let dead = dead_pid();
    for n in 0.. {
        let seg = ManagedHeapMemory::new(16 << 20).unwrap();
        let core = *seg.core();
        let base = core.base().as_ptr();
        // Neighbours in every state: cached blocks next to free, used and cached ones, in
        // the bin's list and in its run (11 and 10 join the front of the refilled run
        // that starts at 12).
        let blocks: Vec<_> = (0..12).map(|_| seg.allocate(32).unwrap()).collect();
        // SAFETY: live blocks of this segment, each freed once.
        unsafe {
            for i in [11, 10, 0, 1, 3, 6, 7] {
                seg.deallocate(blocks[i]).unwrap(); // cached
            }
            for i in [2, 9] {
                seg.deallocate(blocks[i]).unwrap(); // cached too
            }
        }
        let slot = cache::recorded_slot(core.mapping()).unwrap();
        let epoch = core.cache_epoch();
        let mut l = core.lock().unwrap();
        let crashed = crate::robust::crash::crashes_at(n, || {
            core.cache().flush(&mut l.heap, slot, epoch);
        });
        if crashed.is_ok() {
            break;
        }
        // The process "dies" here: its lock and its slot now name a dead process.
        std::mem::forget(l);
        die_holding_the_lock(base, slot, dead);
        // Another thread (no slot yet) recovers, claims a slot and so reclaims the dead one.
        std::thread::scope(|s| {
            s.spawn(|| {
                seg.check().unwrap();
                let mut seen = std::collections::HashSet::new();
                for _ in 0..64 {
                    let p = seg.allocate(32).unwrap();
                    assert!(
                        seen.insert(p),
                        "crash at write {n}: a block was handed out twice"
                    );
                }
                seg.check().unwrap();
            });
        });
    }
}

/// A process dies while refilling its bin (at each allocator write in turn, the split of
/// the run included); the recoverer rebuilds the allocator and takes the slot back. No
/// block is handed out twice, and at most the run in flight leaks.
#[test]
#[cfg_attr(miri, ignore = "spawns a process")]
fn a_crash_while_refilling_a_bin_leaks_at_most_the_run() {
    let dead = dead_pid();
    for n in 0.. {
        let seg = ManagedHeapMemory::new(16 << 20).unwrap();
        let core = *seg.core();
        let base = core.base().as_ptr();
        let free0 = seg.free_memory();
        // The first allocation claims the slot, then one refill: the bin is empty again.
        // Held as offsets: the recovering thread frees them (pointers are not `Send`).
        let held: Vec<usize> = (0..33)
            .map(|_| seg.allocate(32).unwrap().as_ptr().addr() - base.addr())
            .collect();
        let slot = cache::recorded_slot(core.mapping()).unwrap();
        let crashed = crate::robust::crash::crashes_at(n, || seg.allocate(32));
        if crashed.is_ok() {
            // The split writes a header per block: the sweep went through all of them.
            assert!(n > 32, "a refill passed only {n} crash points");
            break;
        }
        // The process "dies" here, in the locked refill.
        die_holding_the_lock(base, slot, dead);
        std::thread::scope(|s| {
            s.spawn(|| {
                seg.check().unwrap();
                let base = seg.base_address();
                // SAFETY: offsets of blocks inside the segment.
                let held = held.iter().map(|&off| unsafe { base.add(off) });
                let mut seen: std::collections::HashSet<_> = held.clone().collect();
                let mut taken = Vec::new();
                for _ in 0..64 {
                    let p = seg.allocate(32).unwrap();
                    assert!(
                        seen.insert(p),
                        "crash at write {n}: a block was handed out twice"
                    );
                    taken.push(p);
                }
                // SAFETY: every block allocated in this test but the one in flight, once.
                unsafe { seg.deallocate_many(taken.into_iter().chain(held)) }.unwrap();
                seg.check().unwrap();
                let lost = free0 - seg.free_memory();
                assert!(lost <= 32 * 40, "crash at write {n}: {lost} bytes lost");
            });
        });
    }
}

/// A free-list head aiming at a used block's payload dressed as a free block of the right
/// class (the list still counts right): open-time checks accept only free blocks of the
/// chain, else the next allocation carves the fake block up (fuzzer, SIGSEGV).
#[test]
fn a_forged_head_aiming_at_a_fake_free_block_in_a_payload_is_refused_at_open() {
    let mut seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    let p = seg.allocate(256).unwrap();
    let payload = p.as_ptr().addr() - seg.base_address().as_ptr().addr();
    let mut img = plain_image(&mut seg);
    let t = offset_of!(SegmentHeader, heap);
    let word = |img: &AlignedBuffer, at: usize| -> u64 {
        // SAFETY: header words of a segment image: written, so initialised.
        u64::from_ne_bytes(std::array::from_fn(|i| unsafe {
            img[at + i].assume_init()
        }))
    };
    // The one listed free block (the rest of the segment) and its list head.
    let head_at = (0..crate::alloc::Tlsf::levels_for(64 * 1024) * layout::SL_COUNT)
        .map(|i| {
            t + layout::HEADS + i / layout::SL_COUNT * layout::LEVEL + i % layout::SL_COUNT * 8
        })
        .find(|&at| word(&img, at) != 0)
        .expect("a listed free block");
    let free_header = word(&img, word(&img, head_at) as usize);
    // The same header (size and flags), with empty links, at the start of the payload.
    put_u64(&mut img, payload, free_header);
    put_u64(&mut img, payload + 8, 0);
    put_u64(&mut img, payload + 16, 0);
    put_u64(&mut img, head_at, payload as u64);
    assert!(refused(&img));
}

/// The thread cache never hands out a block marked as an object entry: a destroyed
/// object's block comes back from the cache unmarked, a marked block freed raw is not
/// cached (the locked free drops the mark), and a cached block whose header was marked
/// meanwhile (forged) is refused by `pop` and by the cache's check.
#[test]
fn the_thread_cache_never_hands_out_a_block_marked_as_an_entry() {
    let mut seg = ManagedHeapMemory::new(16 << 20).unwrap();
    let core = *seg.core();
    let base = core.base().as_ptr().addr();
    let off = |p: std::ptr::NonNull<u8>| (p.as_ptr().addr() - base) as u64;
    let entries = |core: &super::SegmentCore| -> Vec<u64> {
        core.used_blocks()
            .into_iter()
            .filter(|&(_, _, marks)| marks == ENTRY)
            .map(|(payload, ..)| payload)
            .collect()
    };
    // An anonymous u64: a 32-byte entry head and the value, a 48-byte block.
    let x: *const u64 = seg.construct_anonymous(7u64).unwrap();
    let [e] = entries(&core)[..] else {
        panic!("one entry expected")
    };
    assert_eq!(core.entry_block_len(e), Some(40));
    seg.destroy_ptr(x).unwrap();
    assert!(entries(&core).is_empty());
    let again = seg.allocate(40).unwrap();
    assert_eq!(off(again), e, "the destroyed entry's block, from the cache");
    assert_eq!(core.entry_block_len(e), None);
    // SAFETY: a live block of ours, marked and then freed raw.
    unsafe {
        core.mark(e, ENTRY, true);
        seg.deallocate(again).unwrap();
    }
    let cached = seg.allocate(40).unwrap();
    // SAFETY: a live block of ours, cached, then its header forged to carry the mark.
    unsafe {
        seg.deallocate(cached).unwrap();
        core.mark(off(cached), ENTRY, true);
    }
    // The cache's check refuses a marked block in a bin (as the walk that returns a bin to
    // the allocator does: it leaks such a block rather than free an entry).
    let err = seg.check().unwrap_err();
    assert!(err.to_string().contains("bad block"), "{err}");
    for _ in 0..64 {
        let p = seg.allocate(40).unwrap();
        assert_ne!(p, cached, "a marked cached block was handed out");
        assert_eq!(core.entry_block_len(off(p)), None);
    }
    assert!(entries(&core) == [off(cached)]);
    seg.check().unwrap();
}

/// A shared memory name of this test process, removed when dropped.
struct ShmName(String);

impl ShmName {
    fn new(tag: &str) -> Self {
        let name = format!("shmkit_unit_{}_{tag}", std::process::id());
        let _ = crate::ManagedSharedMemory::remove(&name);
        ShmName(name)
    }
}

impl Drop for ShmName {
    fn drop(&mut self) {
        let _ = crate::ManagedSharedMemory::remove(&self.0);
    }
}

/// A process dies at each step of growing a shared segment (the device grown, the size
/// recorded, each write of the allocator's extension): the next locker recovers a segment
/// that checks clean, whose size the device backs, and that grows on as if nothing
/// happened (a growth cut short after the size was recorded is finished first).
#[test]
#[cfg_attr(miri, ignore = "maps shared memory and spawns a process")]
fn a_crash_at_any_step_of_growing_leaves_a_segment_that_recovers_and_grows_on() {
    let dead = dead_pid();
    let name = ShmName::new("grow_crash");
    for n in 0.. {
        let seg = crate::ManagedSharedMemory::options()
            .max_size(4 << 20)
            .create(&name.0, 64 << 10)
            .unwrap();
        let core = *seg.core();
        let base = core.base().as_ptr();
        let used0 = seg.size() - seg.free_memory();
        let kept = seg.allocate(40_000).unwrap();
        let mut l = core.lock().unwrap();
        let crashed = crate::robust::crash::crashes_at(n, || core.grow_locked(&mut l, 100_000));
        if let Ok(grown) = crashed {
            assert!(grown.unwrap(), "it grew");
            // The size recorded, then the extension's writes (sentinel, block, frees).
            assert!(n >= 4, "growing passed only {n} crash points");
            drop(l);
            assert!(seg.size() >= (64 << 10) + 100_000);
            seg.check().unwrap();
            break;
        }
        // The process "dies" here, holding the lock.
        std::mem::forget(l);
        super::HELD.with(|h| h.set(super::NOT_HELD));
        // SAFETY: the lock word is a u32 field of the mapped header.
        let lock = unsafe { &*(&raw const (*header::header(base)).lock).cast::<AtomicU32>() };
        lock.store(dead | 1 << 31, Ordering::Relaxed);
        // Handed to the recovering thread as an address (a pointer is not `Send`).
        let kept = kept.as_ptr().expose_provenance();
        std::thread::scope(|s| {
            s.spawn(|| {
                let kept = std::ptr::NonNull::new(std::ptr::with_exposed_provenance_mut(kept));
                let kept = kept.unwrap();
                seg.check()
                    .unwrap_or_else(|e| panic!("crash at step {n}: {e}"));
                let device = std::fs::metadata(format!("/dev/shm/{}", name.0))
                    .unwrap()
                    .len();
                assert!(
                    device >= seg.size() as u64,
                    "crash at step {n}: a size past the device"
                );
                let big = seg.allocate(200_000).expect("grows on");
                seg.check().unwrap();
                // Everything but the two blocks is free again once they are.
                // SAFETY: live blocks of this segment, each freed once.
                unsafe {
                    seg.deallocate(big).unwrap();
                    seg.deallocate(kept).unwrap();
                }
                // At most the bytes being added when it died (a block made of them, not
                // yet freed) are lost.
                let lost = seg.size() - seg.free_memory() - used0;
                assert!(lost <= 100 << 10, "crash at step {n}: {lost} bytes lost");
                seg.check().unwrap();
            });
        });
        drop(seg);
        crate::ManagedSharedMemory::remove(&name.0).unwrap();
    }
}
