//! Attacks on growth while mapped (issue 15), from safe code: forged size and maximum
//! words (written to the device's bytes, as an untrusted other writer would), a device cut
//! short under a mapping, extreme growth settings and allocation sizes, other mapping
//! modes, offline resizing mixed with online growth, threads racing a growth.
//!
//! Probes that may kill the process (SIGBUS, SIGSEGV, abort) run in a child: the test
//! executes this test binary again on the probe alone (`isolated`) and fails with the
//! child's signal or panic.

use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use shmkit_runtime::segment::SegmentObserver;
use shmkit_runtime::test_hooks::{SegmentHeader, MAX_RESERVATION as LARGEST};
use shmkit_runtime::{Error, Growth};
use shmkit_test_support as support;
use support::on_both_devices;
use support::{Seg, ShmTarget, Target};

const SIZE: usize = 64 * 1024;
const MAX: usize = 16 << 20;
/// `header::words::MAX_SIZE`.
const MAX_WORD: usize = 15;

fn size_at() -> u64 {
    std::mem::offset_of!(SegmentHeader, size) as u64
}

fn max_at() -> u64 {
    (std::mem::offset_of!(SegmentHeader, reserved) + MAX_WORD * 8) as u64
}

/// Writes `value` at `at` in the device's bytes: another writer of the segment.
fn forge<T: Target>(t: &T, at: u64, value: u64) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(t.path())
        .unwrap();
    f.write_all_at(&value.to_ne_bytes(), at).unwrap();
}

fn read_word<T: Target>(t: &T, at: u64) -> u64 {
    let f = std::fs::File::open(t.path()).unwrap();
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, at).unwrap();
    u64::from_ne_bytes(b)
}

fn create<T: Target>(t: &T) -> Seg<T> {
    Seg::<T>::options()
        .max_size(MAX)
        .create(t.name(), SIZE)
        .expect("create")
}

/// Runs `body` in a child process (this test binary, on test `path` alone), so that a
/// SIGBUS or SIGSEGV fails this test instead of killing every test. In the child, runs it.
fn isolated(path: &str, body: impl FnOnce()) {
    const VAR: &str = "SHMKIT_GROWTH_ATTACK_CHILD";
    if std::env::var(VAR).as_deref() == Ok(path) {
        body();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            path,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
        .env(VAR, path)
        .output()
        .expect("spawn the probe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("1 passed"),
        "probe {path}: {} (signal {:?})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status,
        out.status.signal(),
    );
}

// ---- forged words -----------------------------------------------------------------

/// ATTACK: another writer lowers the header's MAX_SIZE word (a legal value: at least the
/// size) before a process opens the segment. That opener reserves only what the word
/// says (`peek_max_size`), while the mappings made before keep growing the segment up to
/// their own, larger, reservations: the shared allocator then hands the opener's
/// mapping free blocks past the end of what it mapped.
/// Expected: the opener refuses such blocks (OutOfMemory / Corrupted), never panics nor
/// returns (or touches) memory past its mapping.
///
/// FOUND (UB): the opener's `allocate(1 MiB)` is handed the block the first mapping
/// freed, which runs past the opener's 64 KiB mapping; worse, TLSF splits it and writes
/// the remainder's header 4 MiB past the opener's base *inside the library*
/// (`Lists::take` -> `make_free`, runtime/src/alloc/tlsf.rs:362, via `Lists::set_word`
/// tlsf.rs:280 -> `block::store`, which skips `Heap::check_word`'s limit): gdb showed the
/// store landing in libgcc's text (`__subtf3+1864`, SIGSEGV); in other runs it lands in
/// some other writable mapping of the process and corrupts it silently. Causes: the
/// reservation comes from the untrusted word (runtime/src/segment/backing/device.rs
/// `peek_max_size`, checked only for `max >= size` in runtime/src/manager/header.rs:466),
/// and the shared free lists are trusted past this mapping's `size()`.
#[test]
fn an_opener_of_a_max_word_forged_down_stays_inside_its_mapping() {
    isolated(
        "growth_attack::an_opener_of_a_max_word_forged_down_stays_inside_its_mapping",
        || {
            let t = ShmTarget::new();
            let a = create(&t);
            a.construct("early", 1u64).unwrap();
            forge(&t, max_at(), SIZE as u64);
            let b = Seg::<ShmTarget>::open(t.name()).expect("a legal maximum: open");
            assert_eq!(b.max_size(), SIZE);
            // The first mapping grows the segment far past the opener's mapping and
            // frees what it took: the free lists now hold a block past 64 KiB.
            let big = a.allocate(4 << 20).expect("grows");
            a.construct("late", [7u64; 64]).unwrap();
            // SAFETY: allocated above, freed once.
            unsafe { a.deallocate(big) }.unwrap();
            assert!(a.size() > 4 << 20);
            // The opener: finding the late object reads past its mapping.
            let late = b.find::<[u64; 64]>("late");
            assert!(
                late.is_err()
                    || late.as_ref().unwrap().is_none()
                    || late.as_ref().unwrap().unwrap()[63] == 7
            );
            // Allocating may be given the freed 4 MiB block, past its 64 KiB mapping.
            let end = b.base_address().as_ptr().addr() + b.size();
            match b.allocate(1 << 20) {
                Ok(p) => {
                    assert!(
                        p.as_ptr().addr() + (1 << 20) <= end,
                        "the opener was handed a block past its mapping: {:p}, mapping ends at {end:#x}",
                        p.as_ptr()
                    );
                }
                Err(e) => assert!(
                    matches!(e, Error::OutOfMemory { .. } | Error::Corrupted { .. }),
                    "{e:?}"
                ),
            }
            // And the first mapping still works.
            a.check()
                .expect("the segment is consistent for the mapping that grew it");
            assert_eq!(*a.find::<u64>("early").unwrap().unwrap(), 1);
        },
    );
}

/// The same attack through the safe API only: the opener constructs a 512 KiB object
/// (no raw pointer in sight). The block it is given lies past its 64 KiB mapping, and the
/// object's bytes are written there: SIGSEGV (or, were something mapped behind the
/// reservation, a write into another mapping).
#[test]
fn an_opener_of_a_max_word_forged_down_constructs_past_its_mapping() {
    isolated(
        "growth_attack::an_opener_of_a_max_word_forged_down_constructs_past_its_mapping",
        || {
            let t = ShmTarget::new();
            let a = create(&t);
            forge(&t, max_at(), SIZE as u64);
            let b = Seg::<ShmTarget>::open(t.name()).expect("a legal maximum: open");
            let big = a.allocate(4 << 20).expect("grows");
            // SAFETY: allocated above, freed once.
            unsafe { a.deallocate(big) }.unwrap();
            let r = std::thread::Builder::new()
                .stack_size(8 << 20)
                .spawn(move || {
                    let r = b.construct("big", [0x5Au8; 512 << 10]).map(|v| v[0]);
                    (r, b)
                })
                .unwrap()
                .join();
            let (r, b) = r.expect("no panic");
            match r {
                Ok(_) => {
                    let end = b.base_address().as_ptr().addr() + b.size();
                    let v = b.find::<[u8; 512 << 10]>("big").unwrap().unwrap();
                    assert!(
                        v.as_ptr().addr() + (512 << 10) <= end,
                        "object past the mapping"
                    );
                }
                Err(e) => assert!(
                    matches!(e, Error::OutOfMemory { .. } | Error::Corrupted { .. }),
                    "{e:?}"
                ),
            }
        },
    );
}

/// ATTACK (no forging): a copy-on-write mapping next to a mapping that grows. Its pages
/// are private only once written, so the allocator's table (past the header page) would
/// show the growing mapping's free lists, past the copy's end. Holds: the attachment locks
/// keep copy-on-write and read-write mappings apart (InUse both ways).
fn a_copy_on_write_mapping_never_sees_a_growth<T: Target>() {
    let t = T::new();
    let a = create(&t);
    a.construct("x", 1u64).unwrap();
    let r = Seg::<T>::options().copy_on_write().open(t.name());
    assert!(matches!(r, Err(Error::InUse { .. })), "{:?}", r.err());
    drop(a);
    let cow = Seg::<T>::options().copy_on_write().open(t.name()).unwrap();
    let r = Seg::<T>::open(t.name());
    assert!(matches!(r, Err(Error::InUse { .. })), "{:?}", r.err());
    let end = cow.base_address().as_ptr().addr() + cow.size();
    let r = cow.allocate(1 << 20);
    assert!(
        matches!(r, Err(Error::OutOfMemory { .. })),
        "a private copy never grows"
    );
    while let Ok(p) = cow.allocate(4000) {
        assert!(p.as_ptr().addr() + 4000 <= end);
    }
    assert_eq!(std::fs::metadata(t.path()).unwrap().len() as usize, SIZE);
}

/// A read-only observer opened with the MAX_SIZE word forged down (to the size, a legal
/// value): the others grow past its reservation. It never reads past its mapping (holds),
/// but FOUND: every `find` of an object (or an index table) it cannot reach spins for the
/// whole 1 s init timeout and then reports `InUse` ("its index entry did not check out
/// without the index lock for the whole wait (a writer moving it, or a corrupted index)"):
/// an unclear error, one second per call, for what is "past this mapping's reservation".
fn an_observer_of_a_max_word_forged_down<T: Target>() {
    let t = T::new();
    let a = create(&t);
    forge(&t, max_at(), SIZE as u64);
    let o = SegmentObserver::<T::Dev>::open(t.name()).unwrap();
    for i in 0..3000u64 {
        a.construct(
            format!("i{i}"),
            std::array::from_fn::<_, 16, _>(|k| AtomicU64::new(i + k as u64)),
        )
        .unwrap();
    }
    assert!(a.size() > 4 * SIZE);
    assert!(o.size() <= SIZE);
    for i in (0..3000u64).step_by(1000) {
        let started = std::time::Instant::now();
        let r = o.find::<[AtomicU64; 16]>(&format!("i{i}"));
        let took = started.elapsed();
        match r {
            Ok(Some(v)) => assert_eq!(v.get_element(15).unwrap().load(), i + 15),
            Ok(None) => {}
            Err(e) => assert!(
                !matches!(e, Error::InUse { .. }) && took < std::time::Duration::from_millis(200),
                "observer find i{i}: {e:?} after {took:?}"
            ),
        }
    }
}

/// No forging: a segment created with the largest maximum a header may record
/// (`MAX_RESERVATION`, 4 TiB, documented as "far below the address space") can be
/// mapped once per process: on x86-64 (128 TiB of user address space) a second mapping,
/// read-write or observer, fails with `Os { op: "mmap", ENOMEM }`, and so does any other
/// large mapping of the process meanwhile (seen: `max_size_edges` failing while
/// `a_max_word_forged_before_open` held such a mapping). A forged MAX_SIZE word does the
/// same to any opener. FOUND: a denial of service and an unclear error, not UB.
fn two_mappings_of_a_segment_with_the_largest_maximum<T: Target>() {
    let t = T::new();
    let a = Seg::<T>::options()
        .max_size(LARGEST as usize)
        .create(t.name(), SIZE)
        .expect("the largest maximum");
    a.construct("x", 1u64).unwrap();
    let b = Seg::<T>::open(t.name());
    assert!(
        b.is_ok(),
        "a second mapping in the same process: {:?}",
        b.err()
    );
}

/// ATTACK: another writer lowers the size word below the allocator's end while a
/// process has the segment mapped; the next allocation that does not fit grows the
/// segment from the forged size (`grow_locked`: `next_size(size, ...)` may be below the
/// allocator's end, and `extend` is then asked to move the end backwards).
/// Expected: a clear error (Corrupted) or a growth that keeps every object; no panic.
#[test]
fn a_size_word_forged_below_the_allocator_end_then_a_growth() {
    isolated(
        "growth_attack::a_size_word_forged_below_the_allocator_end_then_a_growth",
        || {
            let t = ShmTarget::new();
            let a = create(&t);
            for i in 0..200u64 {
                a.construct(format!("item-{i}"), [i; 16]).unwrap();
            }
            let before = a.size();
            forge(&t, size_at(), 4096);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                a.allocate(before).map(|_| ())
            }));
            match &r {
                Ok(Ok(()))
                | Ok(Err(Error::Corrupted { .. }))
                | Ok(Err(Error::OutOfMemory { .. })) => {}
                other => panic!("growth from a forged size: {other:?}"),
            }
            eprintln!(
                "growth from a size word forged to 4096: {r:?}, size now {}",
                a.size()
            );
            assert!(r.is_ok(), "the library panicked");
        },
    );
}

/// ATTACK: as above, with the segment full so that the growth asked for is small: the
/// creator does not grow (`Growth::Off`) and fills the segment; a second mapping that
/// grows opens it; another writer sets the size word to 4096. That mapping's next
/// allocation grows "from 4096 to 8192", below the allocator's end (~64 KiB):
/// `grow_locked` (runtime/src/manager/core.rs) stores 8192 as the size, then
/// `extend_by_freeing` (runtime/src/alloc/algorithm.rs) computes `sentinel - old` with the
/// new sentinel before the old end.
/// Expected: Corrupted or OutOfMemory, the size word not lowered further by the library,
/// every object still found.
/// FOUND: the library stores 8192 in the shared size word (core.rs `grow_locked`, before
/// `extend`), then panics "attempt to subtract with overflow" at
/// runtime/src/alloc/algorithm.rs:202 (`sentinel - old`) under the lock. In release the
/// subtraction wraps: `set_word(sentinel = 8176, 0)` overwrites a word inside a live
/// block before `check_word` catches the old end.
#[test]
fn a_growth_from_a_size_word_forged_below_the_allocator_end() {
    isolated(
        "growth_attack::a_growth_from_a_size_word_forged_below_the_allocator_end",
        || {
            let t = ShmTarget::new();
            let a = Seg::<ShmTarget>::options()
                .max_size(MAX)
                .growth(Growth::Off)
                .create(t.name(), SIZE)
                .unwrap();
            a.construct("x", 77u64).unwrap();
            let mut kept = Vec::new();
            while let Ok(p) = a.allocate(16) {
                kept.push(p);
            }
            assert_eq!(a.size(), SIZE);
            let b = Seg::<ShmTarget>::open(t.name()).unwrap();
            forge(&t, size_at(), 4096);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                b.allocate(16).map(|_| ())
            }));
            let word = read_word(&t, size_at());
            if r.is_err() {
                drop(b);
                let x = a.find::<u64>("x").map(|v| v.copied());
                drop(a);
                let reopened = Seg::<ShmTarget>::open(t.name()).map(|s| s.size());
                panic!("the library panicked; size word now {word}; find x: {x:?}; reopen: {reopened:?}");
            }
            let r = r.unwrap();
            assert!(
                matches!(
                    r,
                    Ok(()) | Err(Error::Corrupted { .. } | Error::OutOfMemory { .. })
                ),
                "{r:?}"
            );
            assert!(
                word == 4096 || word >= SIZE as u64,
                "the library lowered the size to {word}"
            );
        },
    );
}

/// ATTACK: the size word forged to 0 (below the minimum) while mapped, then the segment
/// is used: allocate, free, find.
#[test]
fn a_size_word_forged_to_zero_while_mapped() {
    isolated(
        "growth_attack::a_size_word_forged_to_zero_while_mapped",
        || {
            let t = ShmTarget::new();
            let a = create(&t);
            a.construct("x", 5u64).unwrap();
            let p = a.allocate(100).unwrap();
            forge(&t, size_at(), 0);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = a.find::<u64>("x");
                // SAFETY: allocated above, freed once.
                let _ = unsafe { a.deallocate(p) };
                let _ = a.allocate(SIZE * 2);
                let _ = a.check();
            }));
            assert!(r.is_ok(), "the library panicked on a forged size word");
        },
    );
}

/// ATTACK: the MAX_SIZE word forged above what a mapping may reserve, or below the size,
/// before open: a clear Corrupted. Forged to exactly the largest reservation (4 TiB of
/// address space), two openers in one process: the second either maps or says why.
fn a_max_word_forged_before_open<T: Target>() {
    let t = T::new();
    let a = create(&t);
    a.construct("x", 5u64).unwrap();
    drop(a);
    for bad in [u64::MAX, LARGEST + 1, SIZE as u64 - 1, 0] {
        forge(&t, max_at(), bad);
        let r = Seg::<T>::open(t.name());
        assert!(
            matches!(r, Err(Error::Corrupted { .. })),
            "max {bad}: {:?}",
            r.err()
        );
        let r = SegmentObserver::<T::Dev>::open(t.name());
        assert!(
            matches!(r, Err(Error::Corrupted { .. })),
            "observer, max {bad}: {:?}",
            r.err()
        );
    }
    forge(&t, max_at(), LARGEST);
    let first = Seg::<T>::open(t.name());
    let second = Seg::<T>::open(t.name());
    let observer = SegmentObserver::<T::Dev>::open(t.name());
    eprintln!(
        "4 TiB maximum: first {:?}, second {:?}, observer {:?}",
        first.as_ref().err(),
        second.as_ref().err(),
        observer.as_ref().err()
    );
    for r in [
        first.as_ref().err(),
        second.as_ref().err(),
        observer.as_ref().err(),
    ]
    .into_iter()
    .flatten()
    {
        assert!(
            !matches!(r, Error::Corrupted { .. }),
            "a legal (if huge) maximum is not corruption: {r:?}"
        );
    }
    if let Ok(s) = &first {
        assert_eq!(*s.find::<u64>("x").unwrap().unwrap(), 5);
    }
}

/// ATTACK: the MAX_SIZE word raised while mapped: growth is still bounded by what each
/// mapping reserved, and `max_size` says no more than that.
fn a_max_word_raised_while_mapped_is_bounded_by_the_reservation<T: Target>() {
    let t = T::new();
    let a = create(&t);
    forge(&t, max_at(), LARGEST);
    assert_eq!(a.max_size(), MAX);
    let mut kept = Vec::new();
    let err = loop {
        match a.allocate(1 << 20) {
            Ok(p) => kept.push(p),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::OutOfMemory { .. }), "{err:?}");
    assert!(a.size() <= MAX);
    a.check().unwrap();
}

/// ATTACK: a size word forged past the device but within the reservation, then an
/// allocation: the lag branch of `grow_locked` must not extend the allocator over bytes
/// the device does not back. The mapping refuses the allocator (a forged word is
/// `Corrupted`, naming it) and changes nothing.
fn a_size_word_forged_up_then_an_allocation_does_not_sigbus<T: Target>() {
    let t = T::new();
    let a = create(&t);
    forge(&t, size_at(), 8 << 20);
    let device = std::fs::metadata(t.path()).unwrap().len();
    match a.allocate(1 << 20) {
        Err(Error::Corrupted { reason, .. }) => assert!(reason.contains("size word"), "{reason}"),
        other => panic!("a forged size word: {other:?}"),
    }
    assert_eq!(a.size() as u64, device, "what the device backs");
    assert_eq!(
        std::fs::metadata(t.path()).unwrap().len(),
        device,
        "nothing grew"
    );
    forge(&t, size_at(), device);
    let p = a
        .allocate(1 << 20)
        .expect("the word put back: grows for real");
    // SAFETY: ours, 1 MiB.
    unsafe { p.as_ptr().write_bytes(1, 1 << 20) };
    assert!(std::fs::metadata(t.path()).unwrap().len() >= a.size() as u64);
    a.check().unwrap();
}

/// ATTACK: another writer lengthens the device (sparse, no storage) and raises the size
/// word to match while a process has the segment mapped: the mapping trusts the new size
/// (the device backs it), and its next growth finishes "a growth cut short" (the lag
/// branch of `grow_locked`) over those bytes. Holds on shm and local files (storage comes
/// on first write; a full file system would be the documented sparse-file SIGBUS).
fn a_device_lengthened_and_a_size_word_raised_by_another_writer<T: Target>() {
    let t = T::new();
    let a = create(&t);
    a.construct("x", 5u64).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(t.path())
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    forge(&t, size_at(), 1 << 20);
    assert_eq!(a.size(), 1 << 20);
    let p = a.allocate(500_000).expect("fits what the lag branch adds");
    // SAFETY: ours.
    unsafe { p.as_ptr().write_bytes(1, 500_000) };
    a.check().unwrap();
    assert_eq!(*a.find::<u64>("x").unwrap().unwrap(), 5);
    drop(a);
    let b = Seg::<T>::open(t.name()).unwrap();
    b.check().unwrap();
}

/// ATTACK: a thread flips the MAX_SIZE word between two legal values while others open
/// and close the segment: each open ends (the remap loop of `attach_existing` only
/// raises the reservation) and is usable.
fn openers_racing_a_flipping_max_word<T: Target>() {
    let t = T::new();
    let a = create(&t);
    a.construct("x", 5u64).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let path = t.path().to_owned();
    let flipper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            let mut i = 0u64;
            while !stop.load(Relaxed) {
                let v = if i % 2 == 0 { SIZE as u64 } else { MAX as u64 };
                f.write_all_at(&v.to_ne_bytes(), max_at()).unwrap();
                i += 1;
            }
        })
    };
    for _ in 0..200 {
        let b = Seg::<T>::open(t.name()).expect("open while the word flips");
        assert!(b.max_size() >= SIZE);
        assert_eq!(*b.find::<u64>("x").unwrap().unwrap(), 5);
    }
    stop.store(true, Relaxed);
    flipper.join().unwrap();
}

// ---- a device cut short under a mapping ----------------------------------------------

/// ATTACK (a hostile process, not shmkit: `ftruncate` from std): the device of a grown
/// segment is cut back to its first size while mapped, then the mapping reads an object
/// past the cut. Boost documents shrinking a mapped segment as undefined; shmkit's own
/// API cannot do it (offline `shrink_to_fit` needs the segment alone). This records
/// what happens: the mapping trusts the size it verified before the cut.
#[test]
#[ignore = "documents a SIGBUS: a hostile process shrinking the device is out of scope"]
fn a_device_cut_short_while_mapped() {
    isolated("growth_attack::a_device_cut_short_while_mapped", || {
        let t = ShmTarget::new();
        let a = create(&t);
        let big = a.allocate(1 << 20).unwrap();
        a.construct("late", [3u64; 64]).unwrap();
        // SAFETY: allocated above, freed once.
        unsafe { a.deallocate(big) }.unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(t.path())
            .unwrap()
            .set_len(SIZE as u64)
            .unwrap();
        let _ = a.find::<[u64; 64]>("late").map(|v| v.map(|v| v[0]));
        let _ = a.allocate(1 << 20);
    });
}

/// The same cut seen by a new opener: the header says more than the device holds.
fn a_device_cut_short_is_truncated_for_an_opener<T: Target>() {
    let t = T::new();
    let a = create(&t);
    a.allocate(1 << 20).unwrap();
    let grown = a.size();
    drop(a);
    std::fs::OpenOptions::new()
        .write(true)
        .open(t.path())
        .unwrap()
        .set_len(SIZE as u64)
        .unwrap();
    assert_eq!(read_word(&t, size_at()), grown as u64);
    let r = Seg::<T>::open(t.name());
    assert!(matches!(r, Err(Error::Truncated { .. })), "{:?}", r.err());
    let r = SegmentObserver::<T::Dev>::open(t.name());
    assert!(matches!(r, Err(Error::Truncated { .. })), "{:?}", r.err());
}

// ---- growth settings and extreme requests ------------------------------------------

/// ATTACK: `Growth::By(usize::MAX)`: `Growth::next` computes
/// `size.saturating_add(step).max(least).next_multiple_of(page)`, which overflows.
/// FOUND: panic "attempt to add with overflow" at runtime/src/manager/limits.rs:45 (debug
/// builds), under the segment lock. In release it wraps to 0: `.min(max)` keeps 0,
/// `device_allocate(0)` is Ok, `grow_locked` stores 0 in the shared size word and
/// `extend(0)` underflows (see the release check in the report).
fn growth_by_usize_max_is_bounded_by_the_maximum<T: Target>() {
    let t = T::new();
    let seg = Seg::<T>::options()
        .max_size(MAX)
        .growth(Growth::By(usize::MAX))
        .create(t.name(), SIZE)
        .expect("create");
    seg.construct("x", 1u64).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| seg.allocate(SIZE)));
    if r.is_err() {
        let word = read_word(&t, size_at());
        drop(seg);
        let reopened = Seg::<T>::open(t.name()).map(|s| s.size());
        panic!(
            "the library panicked growing by usize::MAX; size word now {word}, reopen: {reopened:?}"
        );
    }
    let r = r.unwrap();
    let p = r.expect("grows to the maximum");
    assert_eq!(seg.size(), MAX);
    // SAFETY: ours.
    unsafe { seg.deallocate(p) }.unwrap();
    seg.check().unwrap();
}

fn growth_by_zero_grows_by_at_least_what_is_needed<T: Target>() {
    let t = T::new();
    let seg = Seg::<T>::options()
        .max_size(MAX)
        .growth(Growth::By(0))
        .create(t.name(), SIZE)
        .expect("create");
    for i in 0..500u64 {
        seg.construct(format!("i{i}"), [i; 32]).unwrap();
    }
    assert!(seg.size() > SIZE && seg.size() <= MAX);
    assert_eq!(seg.size() % 4096, 0);
    seg.check().unwrap();
}

/// `max_size` edge cases: equal to the size (no growth), not page aligned (rounded),
/// exactly at the largest reservation.
fn max_size_edges<T: Target>() {
    let t = T::new();
    let seg = Seg::<T>::options()
        .max_size(SIZE)
        .create(t.name(), SIZE)
        .unwrap();
    assert_eq!(seg.max_size(), SIZE);
    assert!(matches!(seg.allocate(SIZE), Err(Error::OutOfMemory { .. })));
    drop(seg);
    Seg::<T>::remove(t.name()).unwrap();
    let odd = SIZE + 12345;
    let seg = Seg::<T>::options()
        .max_size(odd)
        .create(t.name(), SIZE)
        .unwrap();
    assert!(seg.max_size() >= odd);
    let mut kept = Vec::new();
    while let Ok(p) = seg.allocate(1000) {
        kept.push(p);
    }
    assert!(seg.size() <= seg.max_size());
    assert!(std::fs::metadata(t.path()).unwrap().len() as usize >= seg.size());
    seg.check().unwrap();
    drop(seg);
    Seg::<T>::remove(t.name()).unwrap();
    let r = Seg::<T>::options()
        .max_size(LARGEST as usize)
        .create(t.name(), SIZE);
    let seg = r.expect("the largest reservation");
    assert_eq!(seg.max_size(), LARGEST as usize);
    // A request for 32 TiB: the device cannot hold it.
    let r = seg.allocate(LARGEST as usize / 2);
    assert!(
        matches!(r, Err(Error::OutOfSpace { .. } | Error::OutOfMemory { .. })),
        "{:?}",
        r.map(|p| p.as_ptr())
    );
    seg.check().unwrap();
    drop(seg);
    Seg::<T>::remove(t.name()).unwrap();
    let r = Seg::<T>::options()
        .max_size((LARGEST as usize) + 1)
        .create(t.name(), SIZE);
    assert!(matches!(r, Err(Error::InvalidSize { .. })), "{:?}", r.err());
    let r = Seg::<T>::options().max_size(0).create(t.name(), SIZE);
    assert!(matches!(r, Err(Error::InvalidSize { .. })), "{:?}", r.err());
}

/// Requests whose sizes overflow on a growable segment: OutOfMemory, no panic.
fn overflowing_requests_on_a_growable_segment<T: Target>() {
    let t = T::new();
    let seg = create(&t);
    for size in [usize::MAX, usize::MAX - 64, (LARGEST as usize) - 8, MAX] {
        assert!(
            matches!(seg.allocate(size), Err(Error::OutOfMemory { .. })),
            "{size}"
        );
    }
    assert!(matches!(
        seg.allocate_aligned(16, LARGEST as usize),
        Err(Error::OutOfMemory { .. } | Error::InvalidAlignment { .. })
    ));
    assert!(matches!(
        seg.allocate_aligned(1 << 20, 1 << 63),
        Err(Error::OutOfMemory { .. } | Error::InvalidAlignment { .. })
    ));
    // A huge alignment that fits the maximum: the segment grows for it.
    let p = seg
        .allocate_aligned(64, 4 << 20)
        .expect("grows for the alignment");
    assert_eq!(p.as_ptr().addr() % (4 << 20), 0);
    assert!(matches!(
        seg.allocate_many(usize::MAX, 2),
        Err(Error::OutOfMemory { .. })
    ));
    assert!(matches!(
        seg.allocate_many(1, usize::MAX),
        Err(Error::OutOfMemory { .. })
    ));
    assert!(matches!(
        seg.allocate_many(1 << 40, 1 << 30),
        Err(Error::OutOfMemory { .. })
    ));
    assert!(matches!(
        seg.allocate_many_sizes(&[usize::MAX / 2, usize::MAX / 2, 8]),
        Err(Error::OutOfMemory { .. })
    ));
    assert!(matches!(
        seg.allocate_many_sizes(&[MAX / 2, MAX / 2, MAX / 2]),
        Err(Error::OutOfMemory { .. })
    ));
    seg.check().unwrap();
    assert!(seg.size() <= MAX);
}

/// `allocation_command`'s allocate-new on a full growable segment: a request the
/// maximum leaves room for.
fn allocate_new_on_a_full_growable_segment<T: Target>() {
    let t = T::new();
    let seg = create(&t);
    // FOUND: `allocation_command` (and so `allocate_new`) never calls `grow_locked`
    // (runtime/src/manager/core.rs, `allocation_command` runs `command::run` alone): on a
    // 64 KiB segment that may grow to 16 MiB it fails with `AllocationCommandFailed
    // { possible: 59584 }` where `allocate(1 << 20)` would grow and succeed. Not UB; an
    // inconsistency with the growth promise ("a full segment grows").
    let r = seg.allocate_new(1 << 20, 2 << 20, 16);
    match r {
        Ok(a) => assert!(a.received >= 1 << 20),
        Err(e) => panic!("allocate_new does not grow a growable segment: {e:?}"),
    }
    seg.check().unwrap();
}

// ---- other mapping modes ------------------------------------------------------------

/// Copy-on-write and read-only mappings opened before and after a growth; an exclusive
/// mapping grows and is then shared.
fn other_modes_around_a_growth<T: Target>() {
    let t = T::new();
    {
        let seg = Seg::<T>::options()
            .exclusive()
            .max_size(MAX)
            .create(t.name(), SIZE)
            .expect("exclusive");
        let p = seg.allocate(1 << 20).expect("an exclusive mapping grows");
        // SAFETY: ours.
        unsafe { p.as_ptr().write_bytes(9, 1 << 20) };
        seg.construct("in-exclusive", 11u64).unwrap();
        let shared = seg.into_shared().unwrap();
        let other = Seg::<T>::open(t.name()).unwrap();
        assert_eq!(*other.find::<u64>("in-exclusive").unwrap().unwrap(), 11);
        assert_eq!(other.size(), shared.size());
        for i in 0..1000u64 {
            other.construct(format!("o{i}"), [i; 64]).unwrap();
        }
        assert_eq!(
            *shared.find::<[u64; 64]>("o999").unwrap().unwrap(),
            [999; 64]
        );
        shared.check().unwrap();
    }
    // Copy-on-write: private, never grows, never reaches past its copy.
    let cow = Seg::<T>::options().copy_on_write().open(t.name()).unwrap();
    let size = cow.size();
    let r = cow.allocate(MAX / 2);
    assert!(matches!(r, Err(Error::OutOfMemory { .. })), "{:?}", r.err());
    assert_eq!(cow.size(), size);
    assert_eq!(std::fs::metadata(t.path()).unwrap().len() as usize, size);
    let mut n = 0;
    while let Ok(p) = cow.allocate(4096) {
        assert!(p.as_ptr().addr() + 4096 <= cow.base_address().as_ptr().addr() + size);
        n += 1;
    }
    let _ = n;
    cow.check().unwrap();
    drop(cow);
    let ro = Seg::<T>::options().read_only().open(t.name()).unwrap();
    assert_eq!(*ro.find::<[u64; 64]>("o5").unwrap().unwrap(), [5; 64]);
}

/// Two writable mappings in one process, a reference from one held while the other
/// grows and is dropped.
fn a_reference_survives_growth_by_another_mapping_and_its_drop<T: Target>() {
    let t = T::new();
    let a = create(&t);
    let x = a.construct("x", AtomicU64::new(1)).unwrap();
    {
        let b = Seg::<T>::open(t.name()).unwrap();
        for i in 0..3000u64 {
            b.construct(format!("b{i}"), [i; 32]).unwrap();
        }
        assert!(b.size() > 4 * SIZE, "{}", b.size());
        x.fetch_add(1, Relaxed);
    }
    x.fetch_add(1, Relaxed);
    assert_eq!(x.load(Relaxed), 3);
    assert_eq!(*a.find::<[u64; 32]>("b2999").unwrap().unwrap(), [2999; 32]);
    a.check().unwrap();
}

// ---- offline resizing and online growth --------------------------------------------

fn offline_grow_and_shrink_then_online_growth<T: Target>() {
    let t = T::new();
    let seg = create(&t);
    seg.construct("x", 42u64).unwrap();
    drop(seg);
    Seg::<T>::options()
        .grow(t.name(), 1 << 20)
        .expect("offline grow");
    let seg = Seg::<T>::open(t.name()).unwrap();
    assert_eq!(seg.size(), SIZE + (1 << 20));
    assert_eq!(seg.max_size(), MAX);
    let p = seg
        .allocate(4 << 20)
        .expect("online growth past an offline one");
    // SAFETY: ours.
    unsafe { p.as_ptr().write_bytes(1, 4 << 20) };
    // SAFETY: allocated above, freed once.
    unsafe { seg.deallocate(p) }.unwrap();
    drop(seg);
    // Offline growth past the maximum: the maximum follows.
    Seg::<T>::options()
        .grow(t.name(), MAX)
        .expect("offline past max");
    let seg = Seg::<T>::open(t.name()).unwrap();
    assert!(seg.max_size() >= seg.size());
    seg.check().unwrap();
    drop(seg);
    let small = Seg::<T>::shrink_to_fit(t.name()).expect("shrink");
    assert!(small < SIZE, "{small}");
    let seg = Seg::<T>::open(t.name()).unwrap();
    assert_eq!(seg.size(), small);
    for i in 0..2000u64 {
        seg.construct(format!("i{i}"), [i; 16]).unwrap();
    }
    assert!(seg.size() > SIZE);
    assert_eq!(*seg.find::<u64>("x").unwrap().unwrap(), 42);
    seg.check().unwrap();
    assert_eq!(
        std::fs::metadata(t.path()).unwrap().len() as usize,
        seg.size()
    );
}

// ---- threads -------------------------------------------------------------------------

/// A segment with thread caches (>= 16 MiB): threads allocate and free small blocks and
/// hand them to each other while one keeps taking large blocks, growing the segment.
fn thread_caches_while_another_thread_grows<T: Target>() {
    let t = T::new();
    let seg = Arc::new(
        Seg::<T>::options()
            .max_size(512 << 20)
            .create(t.name(), 16 << 20)
            .unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel::<usize>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let mut threads = Vec::new();
    for k in 0..4u8 {
        let seg = seg.clone();
        let tx = tx.clone();
        threads.push(std::thread::spawn(move || {
            for i in 0..20_000usize {
                let p = seg.allocate(16 + (i % 200)).unwrap();
                // SAFETY: ours.
                unsafe { p.as_ptr().write(k) };
                if i % 3 == 0 {
                    tx.send(p.as_ptr().addr()).unwrap();
                } else {
                    // SAFETY: ours, freed once.
                    unsafe { seg.deallocate(p) }.unwrap();
                }
            }
        }));
    }
    drop(tx);
    {
        let seg = seg.clone();
        let rx = rx.clone();
        threads.push(std::thread::spawn(move || {
            // Frees blocks other threads allocated (before and after growths).
            while let Ok(addr) = rx.lock().unwrap().recv() {
                let p = std::ptr::NonNull::new(addr as *mut u8).unwrap();
                // SAFETY: handed over, freed once.
                unsafe { seg.deallocate(p) }.unwrap();
            }
        }));
    }
    let grower = {
        let seg = seg.clone();
        std::thread::spawn(move || {
            let mut big = Vec::new();
            for _ in 0..40 {
                big.push(seg.allocate(3 << 20).unwrap());
            }
            let size = seg.size();
            for p in big {
                // SAFETY: ours.
                unsafe { seg.deallocate(p) }.unwrap();
            }
            size
        })
    };
    let grown = grower.join().unwrap();
    for th in threads {
        th.join().unwrap();
    }
    assert!(grown > 16 << 20);
    seg.check().unwrap();
}

on_both_devices!(
    a_device_lengthened_and_a_size_word_raised_by_another_writer,
    openers_racing_a_flipping_max_word,
    two_mappings_of_a_segment_with_the_largest_maximum,
    a_copy_on_write_mapping_never_sees_a_growth,
    an_observer_of_a_max_word_forged_down,
    a_max_word_forged_before_open,
    a_max_word_raised_while_mapped_is_bounded_by_the_reservation,
    a_size_word_forged_up_then_an_allocation_does_not_sigbus,
    a_device_cut_short_is_truncated_for_an_opener,
    growth_by_usize_max_is_bounded_by_the_maximum,
    growth_by_zero_grows_by_at_least_what_is_needed,
    max_size_edges,
    overflowing_requests_on_a_growable_segment,
    allocate_new_on_a_full_growable_segment,
    other_modes_around_a_growth,
    a_reference_survives_growth_by_another_mapping_and_its_drop,
    offline_grow_and_shrink_then_online_growth,
    thread_caches_while_another_thread_grows,
);
