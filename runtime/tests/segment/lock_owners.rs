//! Lock owners judged through the kernel, attacked from safe code in one process: companion
//! lock files of XSI segments removed under live holders, a forged index lock naming one
//! of this process's owner ids, the allocator lock reached again through a second mapping,
//! and the version 2 upgrade of an XSI segment another process attaches.

use std::mem::offset_of;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use shmkit_runtime::os::{Access, MapMode, Permissions, SharedMemoryObject, XsiSharedMemory};
use shmkit_runtime::test_hooks::SegmentHeader;
use shmkit_runtime::{Error, ManagedMappedFile, ManagedSharedMemory, ManagedXsiSharedMemory};
use shmkit_test_support as support;
use support::{patch_file, shm_path, xsi_key, ShmGuard, TempDir, TempPath, XsiIdGuard};

const SIZE: usize = 64 * 1024;

/// The name of the companion lock file of XSI segment `id`.
fn companion_name(id: i32) -> String {
    format!("shmkit-xsi-{id}")
}

/// Where the companion lock file of XSI segment `id` lives.
fn companion_path(id: i32) -> std::path::PathBuf {
    shm_path(&companion_name(id))
}

/// Spins until `flag` is set, for at most a few seconds.
fn wait_for(flag: &AtomicBool) {
    let started = Instant::now();
    while !flag.load(Ordering::Acquire) {
        assert!(started.elapsed() < Duration::from_secs(5), "never set");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn an_opener_does_not_take_a_held_lock_when_the_xsi_companion_was_removed() {
    let dir = TempDir::new();
    let (key, _key) = xsi_key(&dir);
    let holder = ManagedXsiSharedMemory::create(key, SIZE).unwrap();
    let id = holder.backing().shm().id();
    let _id = XsiIdGuard(id);
    let inside = AtomicBool::new(false);
    let release = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            holder
                .with_lock(|| {
                    inside.store(true, Ordering::Release);
                    wait_for(&release);
                    inside.store(false, Ordering::Release);
                })
                .unwrap();
        });
        wait_for(&inside);
        // Anyone who may unlink the name can do this (`rm /dev/shm/shmkit-xsi-*`, a
        // cleaner, the owner of a companion it created before the segment existed).
        std::fs::remove_file(companion_path(id)).unwrap();
        let inside = &inside;
        s.spawn(move || {
            let outcome = ManagedXsiSharedMemory::open(key)
                .and_then(|other| other.with_lock(|| inside.load(Ordering::Acquire)));
            let _ = tx.send(outcome);
        });
        let outcome = rx.recv_timeout(Duration::from_secs(2));
        release.store(true, Ordering::Release);
        assert!(
            !matches!(outcome, Ok(Ok(true))),
            "a second mapping took the segment lock while the first held it"
        );
        assert!(
            matches!(&outcome, Ok(Err(Error::Corrupted { reason, .. })) if reason.contains("companion")),
            "the opener was not refused for the missing companion: {outcome:?}"
        );
    });
}

/// A companion made anew under a live mapping (by its owner, or a cleaner) holds none of
/// the mapping's locks: an opener sees an attachment that holds no lock on it, and refuses.
#[test]
fn an_opener_refuses_a_companion_made_anew_under_a_live_mapping() {
    let dir = TempDir::new();
    let (key, _key) = xsi_key(&dir);
    let holder = ManagedXsiSharedMemory::create(key, SIZE).unwrap();
    let id = holder.backing().shm().id();
    let _id = XsiIdGuard(id);
    std::fs::remove_file(companion_path(id)).unwrap();
    SharedMemoryObject::create(
        &companion_name(id),
        Access::ReadWrite,
        Permissions::default(),
    )
    .unwrap();
    let opened = ManagedXsiSharedMemory::open(key);
    assert!(
        matches!(&opened, Err(Error::InUse { reason, .. }) if reason.contains("hold no lock")),
        "{opened:?}"
    );
    holder.with_lock(|| ()).unwrap();
    drop(holder);
    // Nothing is attached now: the new companion is the segment's.
    let reopened = ManagedXsiSharedMemory::open(key).unwrap();
    reopened.with_lock(|| ()).unwrap();
}

/// A companion is trusted with the segment's locks only if the segment's owner made it and
/// it lets nobody write it (take locks exclusively) who may not write the segment.
#[test]
fn an_xsi_companion_of_another_user_or_writable_by_others_is_refused() {
    let dir = TempDir::new();
    let (key, _key) = xsi_key(&dir);
    let id = ManagedXsiSharedMemory::create(key, SIZE)
        .unwrap()
        .backing()
        .shm()
        .id();
    let _id = XsiIdGuard(id);
    let replace = |mode: u32| {
        std::fs::remove_file(companion_path(id)).unwrap();
        SharedMemoryObject::create(
            &companion_name(id),
            Access::ReadWrite,
            Permissions::from_mode(mode),
        )
        .unwrap()
    };

    replace(0o622);
    let opened = ManagedXsiSharedMemory::open(key);
    assert!(
        matches!(&opened, Err(Error::Corrupted { reason, .. }) if reason.contains("mode 622")),
        "{opened:?}"
    );
    if rustix::process::geteuid().is_root() {
        const NOBODY: u32 = 65534;
        std::os::unix::fs::fchown(replace(0o600), Some(NOBODY), Some(NOBODY)).unwrap();
        let opened = ManagedXsiSharedMemory::open(key);
        assert!(
            matches!(&opened, Err(Error::Corrupted { reason, .. }) if reason.contains("uid 65534")),
            "{opened:?}"
        );
    } else {
        eprintln!("skipped the companion of another user: it needs root to make");
    }
    // The owner's, as private as the segment: trusted.
    replace(0o600);
    ManagedXsiSharedMemory::open(key).unwrap();
}

/// A version 2 segment (whose lock words named pids) is refused, never upgraded in place:
/// a process of the older build may be attached without holding any lock we can see. While
/// it is attached, the open is refused for that attachment before the header is read.
#[test]
fn a_version_2_xsi_segment_is_not_upgraded_while_another_mapping_attaches_it() {
    let dir = TempDir::new();
    let (key, _key) = xsi_key(&dir);
    let created = ManagedXsiSharedMemory::create(key, SIZE).unwrap();
    let _id = XsiIdGuard(created.backing().shm().id());
    drop(created);
    // A process of the older build attaches the segment: it holds no companion locks.
    let older = XsiSharedMemory::open(key)
        .unwrap()
        .attach(MapMode::ReadWrite)
        .unwrap();
    // SAFETY: the attachment maps a whole header writable; nothing else uses the segment
    // now. This writes what the older build wrote: version 2.
    unsafe {
        older
            .as_ptr()
            .add(offset_of!(SegmentHeader, version))
            .cast::<u32>()
            .write(2);
    }
    let opened = ManagedXsiSharedMemory::open(key);
    assert!(
        matches!(&opened, Err(Error::InUse { reason, .. }) if reason.contains("1 attachment(s) hold no lock")),
        "opened while a mapping without locks attaches it: {opened:?}"
    );
    drop(older);
    let opened = ManagedXsiSharedMemory::open(key);
    assert!(
        matches!(
            opened,
            Err(Error::IncompatibleVersion {
                found: 2,
                supported: shmkit_runtime::test_hooks::FORMAT_VERSION,
                ..
            })
        ),
        "upgraded: {opened:?}"
    );
}

/// The last mapping of a removed segment removes the companion; one that is not last, or
/// of a segment still there, leaves it.
#[test]
fn an_xsi_segment_removed_by_id_leaves_no_companion_behind() {
    let dir = TempDir::new();
    let (key, _key) = xsi_key(&dir);
    let seg = ManagedXsiSharedMemory::create(key, SIZE).unwrap();
    let id = seg.backing().shm().id();
    let _id = XsiIdGuard(id);
    drop(ManagedXsiSharedMemory::open(key).unwrap());
    let other = ManagedXsiSharedMemory::open(key).unwrap();
    assert!(companion_path(id).exists(), "the segment is still there");
    assert!(XsiSharedMemory::remove_id(id).unwrap());
    drop(seg);
    assert!(companion_path(id).exists(), "another mapping holds it");
    drop(other);
    assert!(
        !companion_path(id).exists(),
        "the last mapping of a removed XSI segment leaves {} behind",
        companion_path(id).display()
    );
}

#[test]
fn a_forged_index_lock_naming_our_owner_id_on_another_segment_is_not_nesting() {
    let reserved = offset_of!(SegmentHeader, reserved);
    // A segment this process created: its header names our owner id (anyone who can read
    // it learns the id), and while we hold its index lock, our thread number.
    let ours = ShmGuard::new();
    let victim = ManagedSharedMemory::create(ours.get(), SIZE).unwrap();
    let bytes = victim
        .atomic_func(|| std::fs::read(shm_path(ours.get())).unwrap())
        .unwrap();
    let word = |at: usize| u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap());
    let (our_id, our_thread) = (word(offset_of!(SegmentHeader, creator)), word(reserved + 4));
    assert_eq!(word(reserved), our_id, "we held the index lock");

    // A file at rest whose index lock names them.
    let path = TempPath::new();
    let seg = ManagedMappedFile::create(path.get(), SIZE).unwrap();
    seg.construct("n", 1u64).unwrap();
    drop(seg);
    patch_file(path.get(), |b| {
        b[reserved..reserved + 4].copy_from_slice(&our_id.to_ne_bytes());
        b[reserved + 4..reserved + 8].copy_from_slice(&our_thread.to_ne_bytes());
    });
    let forged = ManagedMappedFile::open(path.get()).unwrap();
    let inside = AtomicBool::new(false);
    let other_got_in_meanwhile = std::thread::scope(|s| {
        let other = s.spawn(|| {
            wait_for(&inside);
            forged.find::<u64>("n").unwrap();
            inside.load(Ordering::Acquire)
        });
        forged
            .atomic_func(|| {
                inside.store(true, Ordering::Release);
                std::thread::sleep(Duration::from_millis(500));
                inside.store(false, Ordering::Release);
            })
            .unwrap();
        other.join().unwrap()
    });
    assert!(
        !other_got_in_meanwhile,
        "another thread used the indexes while this one held the index lock"
    );
    drop(victim);
}

/// The allocator lock taken again through a second mapping of the segment, in the thread
/// that holds it through the first: `LockReentered`, as through the same mapping (it
/// waited for itself: attack 7).
#[test]
fn the_allocator_lock_through_a_second_mapping_in_the_holding_thread_is_an_error() {
    let name = ShmGuard::new();
    let a = Arc::new(ManagedSharedMemory::create(name.get(), SIZE).unwrap());
    let b = Arc::new(ManagedSharedMemory::open(name.get()).unwrap());
    let (tx, rx) = mpsc::channel();
    // Not scoped: if it hangs, the thread is left behind and the test fails.
    std::thread::spawn(move || {
        let nested = a.with_lock(|| b.allocate(64).map(drop)).unwrap();
        let _ = tx.send(nested);
    });
    let nested = rx
        .recv_timeout(Duration::from_secs(3))
        .expect("allocating through b inside a.with_lock hangs");
    assert!(
        matches!(nested, Err(Error::LockReentered { .. })),
        "{nested:?}"
    );
}
