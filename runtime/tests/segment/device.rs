//! Managed segments in named devices (POSIX shared memory and mapped files): creation and
//! opening semantics, names, sizes, permissions, removal, running out of memory, two
//! mappings in one process, fixed-address mapping and persistence.
//!
//! Each generic test body runs on both device kinds through `on_both_devices!`, giving the
//! tests `<body>::shm` and `<body>::file`.

use std::os::unix::fs::PermissionsExt;
use std::ptr::NonNull;
use std::time::Duration;

use rustix::mm::{MapFlags, ProtFlags};
use shmkit_runtime::os::{page_size, Permissions};
use shmkit_runtime::test_hooks::MIN_SEGMENT_SIZE;
use shmkit_runtime::{Error, Growth};
use shmkit_test_support as support;
use support::on_both_devices;
use support::{get, map_perms, mode_of, put, Block, Seg, ShmGuard, Target};

const SIZE: usize = 64 * 1024;

on_both_devices!(
    create_then_open_and_open_or_create_share_one_segment,
    duplicate_create_is_already_exists_and_leaves_the_segment_untouched,
    open_of_a_missing_segment_is_not_found,
    zero_or_too_small_size_is_invalid_size_and_leaves_nothing_behind,
    permissions_default_to_owner_read_write,
    permissions_come_from_the_builder,
    opening_a_read_only_device_for_writing_is_permission_denied,
    remove_frees_the_name_at_once_while_open_segments_keep_working,
    a_full_segment_is_out_of_memory_and_loses_nothing,
    one_segment_mapped_twice_in_one_process_shares_its_bytes,
    fixed_address_mapping_lands_at_a_free_address,
    fixed_address_mapping_never_replaces_an_existing_mapping,
    data_persists_after_flush_drop_and_reopen,
);

fn create_then_open_and_open_or_create_share_one_segment<T: Target>() {
    let t = T::new();
    let created = Seg::<T>::create(t.name(), SIZE).expect("create");
    assert_eq!(created.size(), SIZE);
    assert!(created.all_memory_deallocated(), "a new segment is empty");
    assert!(created.check_sanity());
    assert_eq!(std::fs::metadata(t.path()).unwrap().len(), SIZE as u64);
    assert_eq!(map_perms(created.base_address().as_ptr()), "rw-s");
    let block = Block::new(&created, 300, 1);

    let opened = Seg::<T>::open(t.name()).expect("open");
    assert_eq!(opened.size(), SIZE);
    assert_eq!(opened.free_memory(), created.free_memory());
    block.assert_intact(&opened);

    // open_or_create of an existing segment opens it: the size argument is ignored and the
    // data is there.
    let again = Seg::<T>::open_or_create(t.name(), 2 * SIZE).expect("open_or_create (open)");
    assert_eq!(again.size(), SIZE, "an existing segment keeps its size");
    block.assert_intact(&again);
    assert!(!again.all_memory_deallocated());

    // Allocations through one are seen by all.
    let other = Block::new(&again, 100, 2);
    other.assert_intact(&created);
    assert_eq!(created.free_memory(), again.free_memory());
    drop((created, opened, again));

    // open_or_create of a missing name creates it.
    let t2 = T::new();
    let fresh = Seg::<T>::open_or_create(t2.name(), SIZE).expect("open_or_create (create)");
    assert_eq!(fresh.size(), SIZE);
    assert!(fresh.all_memory_deallocated());
    assert!(t2.path().exists());
}

fn duplicate_create_is_already_exists_and_leaves_the_segment_untouched<T: Target>() {
    let t = T::new();
    let first = Seg::<T>::create(t.name(), SIZE).unwrap();
    let block = Block::new(&first, 1000, 7);
    let free = first.free_memory();
    drop(first);
    let bytes_before = std::fs::read(t.path()).unwrap();

    let err = Seg::<T>::create(t.name(), 2 * SIZE).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    let shown = t.name_string();
    let shown = shown.rsplit('/').next().unwrap();
    assert!(err.to_string().contains(shown), "names the segment: {err}");
    let err = Seg::<T>::options().create(t.name(), SIZE).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");

    // The failed creates neither removed, resized nor reformatted the existing segment.
    assert_eq!(std::fs::read(t.path()).unwrap(), bytes_before);
    let seg = Seg::<T>::open(t.name()).expect("the segment is still there");
    assert_eq!(seg.size(), SIZE);
    assert_eq!(seg.free_memory(), free);
    block.assert_intact(&seg);
}

fn open_of_a_missing_segment_is_not_found<T: Target>() {
    let t = T::new();
    let err = Seg::<T>::open(t.name()).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "open: {err:?}");
    let err = Seg::<T>::options().read_only().open(t.name()).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "read-only: {err:?}");
    let err = Seg::<T>::options()
        .copy_on_write()
        .open(t.name())
        .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { .. }),
        "copy-on-write: {err:?}"
    );
    let err = Seg::<T>::options().open(t.name()).unwrap_err();
    assert!(
        matches!(err, Error::NotFound { .. }),
        "builder open: {err:?}"
    );
    let err = Seg::<T>::grow(t.name(), 4096).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "grow: {err:?}");
    let err = Seg::<T>::shrink_to_fit(t.name()).unwrap_err();
    assert!(
        matches!(err, Error::NotFound { .. }),
        "shrink_to_fit: {err:?}"
    );
    assert!(!Seg::<T>::remove(t.name()).unwrap(), "nothing to remove");
    assert!(!t.path().exists(), "a failed open creates nothing");
}

fn zero_or_too_small_size_is_invalid_size_and_leaves_nothing_behind<T: Target>() {
    let t = T::new();
    for size in [0, 1, 64, MIN_SEGMENT_SIZE - 1] {
        let err = Seg::<T>::create(t.name(), size).unwrap_err();
        assert!(
            matches!(err, Error::InvalidSize { size: s, .. } if s == size as u64),
            "create({size}): {err:?}"
        );
        assert!(!t.path().exists(), "create({size}) left {:?}", t.path());
        let err = Seg::<T>::open_or_create(t.name(), size).unwrap_err();
        assert!(
            matches!(err, Error::InvalidSize { .. }),
            "open_or_create({size}): {err:?}"
        );
        assert!(!t.path().exists(), "open_or_create({size}) left a device");
    }
    // The smallest valid size works, and one allocation fits.
    let seg = Seg::<T>::create(t.name(), MIN_SEGMENT_SIZE).expect("minimum size");
    assert_eq!(seg.size(), MIN_SEGMENT_SIZE);
    assert!(seg.check_sanity());
    seg.allocate(16)
        .expect("a small block fits a minimum segment");
}

fn permissions_default_to_owner_read_write<T: Target>() {
    let t = T::new();
    let _seg = Seg::<T>::create(t.name(), SIZE).unwrap();
    assert_eq!(mode_of(t.path()), 0o600, "create");
    let t2 = T::new();
    let _seg2 = Seg::<T>::open_or_create(t2.name(), SIZE).unwrap();
    assert_eq!(mode_of(t2.path()), 0o600, "open_or_create");
}

fn permissions_come_from_the_builder<T: Target>() {
    // 0o666 would come out 0o644 under the usual umask 022 if the mode only went to open().
    for mode in [0o666, 0o640, 0o604] {
        let opts = Seg::<T>::options().permissions(Permissions::from_mode(mode));
        let t = T::new();
        let _seg = opts.clone().create(t.name(), SIZE).unwrap();
        assert_eq!(mode_of(t.path()), mode, "create {mode:o}");
        let t2 = T::new();
        let _seg2 = opts.open_or_create(t2.name(), SIZE).unwrap();
        assert_eq!(mode_of(t2.path()), mode, "open_or_create {mode:o}");
    }
}

/// A device with mode 0o400 cannot be opened read-write; it can be opened read-only.
///
/// Root bypasses permission bits (CAP_DAC_OVERRIDE), so as root the opens run on a thread
/// that has switched to the `nobody` user (the uid change of `set_thread_uid` is per
/// thread on Linux, so the other tests keep running as root) after the device has been
/// given to `nobody`: the owner has read permission but no write permission, which is the
/// same situation an ordinary user meets. The check is therefore real in both cases.
fn opening_a_read_only_device_for_writing_is_permission_denied<T: Target>() {
    let t = T::new();
    let block = {
        let seg = Seg::<T>::create(t.name(), SIZE).unwrap();
        Block::new(&seg, 256, 3)
    };
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o400)).unwrap();
    let path = t.path().to_owned();
    let check = move || {
        let err = Seg::<T>::open(t.name()).unwrap_err();
        assert!(
            matches!(err, Error::PermissionDenied { .. }),
            "open: {err:?}"
        );
        let err = Seg::<T>::open_or_create(t.name(), SIZE).unwrap_err();
        assert!(
            matches!(err, Error::PermissionDenied { .. }),
            "open_or_create: {err:?}"
        );
        let err = Seg::<T>::grow(t.name(), 4096).unwrap_err();
        assert!(
            matches!(err, Error::PermissionDenied { .. }),
            "grow: {err:?}"
        );
        // Reading is allowed, and copy-on-write only needs to read the device.
        let ro = Seg::<T>::options()
            .read_only()
            .open(t.name())
            .expect("read-only open");
        block.assert_intact(&ro);
        let cow = Seg::<T>::options()
            .copy_on_write()
            .open(t.name())
            .expect("cow open");
        cow.allocate(64).expect("copy-on-write allocation");
        drop((ro, cow));
        // Handed back so that the device is removed by this (root) thread.
        t
    };
    let t = if rustix::process::geteuid().is_root() {
        const NOBODY: u32 = 65534;
        std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
        std::thread::spawn(move || {
            // Group first: once the uid is dropped the thread could not change it.
            rustix::thread::set_thread_gid(rustix::process::Gid::from_raw(NOBODY))
                .expect("setgid on this thread");
            rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(NOBODY))
                .expect("setuid on this thread");
            assert_eq!(rustix::process::geteuid().as_raw(), NOBODY);
            check()
        })
        .join()
        .expect("the checks as nobody")
    } else {
        check()
    };
    // The failed opens changed nothing.
    assert_eq!(mode_of(&path), 0o400);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), SIZE as u64);
    drop(t);
}

fn remove_frees_the_name_at_once_while_open_segments_keep_working<T: Target>() {
    let t = T::new();
    let old = Seg::<T>::create(t.name(), SIZE).unwrap();
    let kept = Block::new(&old, 500, 11);
    assert!(Seg::<T>::remove(t.name()).unwrap(), "there was a segment");
    assert!(!t.path().exists(), "the name is gone at once");
    let err = Seg::<T>::open(t.name()).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(
        !Seg::<T>::remove(t.name()).unwrap(),
        "removing twice finds nothing"
    );

    // The mapped segment keeps working after the unlink.
    kept.assert_intact(&old);
    let later = Block::new(&old, 2000, 12);
    later.assert_intact(&old);
    assert!(old.check_sanity());

    // The name can be created anew at once, as an independent, empty segment.
    let new = Seg::<T>::create(t.name(), SIZE).expect("create after remove");
    assert!(new.all_memory_deallocated());
    let fresh = Block::new(&new, 500, 13);
    kept.assert_intact(&old);
    later.assert_intact(&old);
    fresh.assert_intact(&new);
    assert!(!old.all_memory_deallocated());
    later.free(&old);
    kept.free(&old);
    assert!(old.all_memory_deallocated());
    assert!(
        !new.all_memory_deallocated(),
        "the old segment is not the new one"
    );
}

fn a_full_segment_is_out_of_memory_and_loses_nothing<T: Target>() {
    let t = T::new();
    // Boost's behaviour: a segment that does not grow.
    let seg = Seg::<T>::options()
        .growth(Growth::Off)
        .create(t.name(), SIZE)
        .unwrap();
    let free0 = seg.free_memory();

    // One request larger than everything.
    let err = seg.allocate(SIZE).unwrap_err();
    assert!(
        matches!(err, Error::OutOfMemory { requested, .. } if requested == SIZE),
        "{err:?}"
    );
    assert_eq!(
        seg.free_memory(),
        free0,
        "a failed allocation takes nothing"
    );

    // Fill it up with blocks that each hold a pattern.
    let mut blocks = Vec::new();
    let err = loop {
        match seg.allocate(1000) {
            Ok(p) => {
                let h = seg.handle_from_address(p.as_ptr()).unwrap();
                let b = Block {
                    handle: h,
                    len: 1000,
                    seed: blocks.len() as u64,
                };
                put(&seg, h, &support::pattern(b.seed, b.len));
                blocks.push(b);
            }
            Err(e) => break e,
        }
        assert!(blocks.len() < SIZE / 1000, "more blocks than can fit");
    };
    assert!(matches!(err, Error::OutOfMemory { .. }), "{err:?}");
    assert!(
        blocks.len() >= SIZE / 1000 - 6,
        "only {} blocks fit",
        blocks.len()
    );
    let free_full = seg.free_memory();
    assert!(
        free_full < 1000 + 64,
        "{free_full} bytes left yet allocation failed"
    );

    assert!(seg.try_allocate(1000).is_none());
    let err = seg.allocate_many(100, 20).unwrap_err();
    assert!(matches!(err, Error::OutOfMemory { .. }), "{err:?}");
    let err = seg.allocate_aligned(900, 4096).unwrap_err();
    assert!(matches!(err, Error::OutOfMemory { .. }), "{err:?}");
    assert_eq!(
        seg.free_memory(),
        free_full,
        "failed allocations take nothing"
    );
    assert!(seg.check_sanity());
    for b in &blocks {
        b.assert_intact(&seg);
    }
    // A reopened mapping sees the same state.
    let again = Seg::<T>::open(t.name()).unwrap();
    assert_eq!(again.free_memory(), free_full);
    assert!(again.allocate(1000).is_err());

    for b in &blocks {
        b.free(&seg);
    }
    assert!(seg.all_memory_deallocated());
    assert_eq!(seg.free_memory(), free0);
    seg.allocate(SIZE / 2).expect("the space is usable again");
}

fn one_segment_mapped_twice_in_one_process_shares_its_bytes<T: Target>() {
    let t = T::new();
    let a = Seg::<T>::create(t.name(), SIZE).unwrap();
    let b = Seg::<T>::open(t.name()).unwrap();
    assert_ne!(
        a.base_address(),
        b.base_address(),
        "two mappings, two addresses"
    );

    // Write through one, read the same bytes through the other via the handle.
    let pa = a.allocate(4096).unwrap();
    let h = a.handle_from_address(pa.as_ptr()).unwrap();
    let pb = b.address_from_handle(h).unwrap();
    assert_ne!(pa, pb);
    assert_eq!(b.handle_from_address(pb.as_ptr()), Some(h));
    put(&a, h, &support::pattern(5, 4096));
    assert_eq!(get(&b, h, 4096), support::pattern(5, 4096));
    put(&b, h, &support::pattern(6, 100));
    assert_eq!(get(&a, h, 100), support::pattern(6, 100));

    // The allocator state is shared too: an allocation in one is a used block in the
    // other, and a block allocated through one can be freed through the other.
    assert_eq!(a.free_memory(), b.free_memory());
    let blk = Block::new(&b, 700, 9);
    assert_eq!(a.free_memory(), b.free_memory());
    assert_eq!(a.usable_size(blk.ptr(&a)), b.usable_size(blk.ptr(&b)));
    assert!(a.usable_size(blk.ptr(&a)).is_some());
    blk.free(&a);
    // SAFETY: `pb` is the block allocated through `a`, seen through `b`; it is not used
    // afterwards.
    unsafe { b.deallocate(pb) }.unwrap();
    assert!(a.all_memory_deallocated() && b.all_memory_deallocated());
    assert!(a.check_sanity() && b.check_sanity());
}

/// Reserves a free range of `len` bytes and releases it, returning its address.
fn free_address(len: usize) -> NonNull<u8> {
    // SAFETY: a null hint lets the kernel pick an unused range; nothing refers to it.
    let p = unsafe {
        rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            len,
            ProtFlags::empty(),
            MapFlags::PRIVATE,
        )
    }
    .expect("reserve address space");
    // SAFETY: `p..p+len` is the mapping just made, which nothing refers to.
    unsafe { rustix::mm::munmap(p, len) }.expect("release the reservation");
    NonNull::new(p.cast()).unwrap()
}

/// Maps with `map` at a freshly released address range. Another test thread could map
/// into the range between the release and our mapping: a retry with a fresh range tells
/// that apart from a real failure.
fn at_free_address<S>(mut map: impl FnMut(NonNull<u8>) -> Result<S, Error>) -> (S, NonNull<u8>) {
    let mut attempt = 0;
    loop {
        let addr = free_address(SIZE);
        match map(addr) {
            Ok(seg) => return (seg, addr),
            Err(Error::AlreadyExists { what }) if attempt < 5 && what.contains("address") => {
                attempt += 1;
            }
            Err(e) => panic!("map at {addr:p}: {e:?}"),
        }
    }
}

fn fixed_address_mapping_lands_at_a_free_address<T: Target>() {
    let t = T::new();
    // A segment that does not grow reserves only its size there.
    let at = |addr| Seg::<T>::options().growth(Growth::Off).address(addr);
    let (seg, addr) = at_free_address(|addr| at(addr).create(t.name(), SIZE));
    assert_eq!(seg.base_address(), addr, "mapped where asked");
    let block = Block::new(&seg, 128, 21);
    assert!(seg.contains(block.ptr(&seg).as_ptr()));
    drop(seg);

    // Reopen at (another) fixed address: the same handle finds the same bytes there.
    let (seg, addr2) = at_free_address(|addr| at(addr).open(t.name()));
    assert_eq!(seg.base_address(), addr2);
    block.assert_intact(&seg);
    assert_eq!(
        block.ptr(&seg).as_ptr().addr(),
        addr2.as_ptr().addr() + block.handle.0 as usize
    );
}

/// An anonymous mapping the test owns, unmapped on drop.
struct Occupied(*mut std::ffi::c_void, usize);

impl Drop for Occupied {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours (made in the test), nothing refers to it any more.
        let _ = unsafe { rustix::mm::munmap(self.0, self.1) };
    }
}

fn fixed_address_mapping_never_replaces_an_existing_mapping<T: Target>() {
    let len = 4 * page_size();
    // SAFETY: a null hint lets the kernel pick an unused range; nothing refers to it.
    let p = unsafe {
        rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    }
    .unwrap();
    let occupied = Occupied(p, len);
    let bytes = support::pattern(31, len);
    // SAFETY: `p` is our fresh writable mapping of `len` bytes.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.cast::<u8>(), len) };
    // Ask for a segment starting in the middle of it (overlapping, not just equal).
    // SAFETY: one page into a `len`-byte mapping stays inside it.
    let addr = NonNull::new(unsafe { p.cast::<u8>().add(page_size()) }).unwrap();
    let opts = Seg::<T>::options().address(addr);

    let t = T::new();
    let err = opts.clone().create(t.name(), SIZE).unwrap_err();
    assert!(
        matches!(err, Error::AlreadyExists { .. }),
        "create: {err:?}"
    );
    assert!(!t.path().exists(), "the failed create removed its device");

    Seg::<T>::create(t.name(), SIZE).unwrap();
    let err = opts.clone().open(t.name()).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "open: {err:?}");
    let err = opts.read_only().open(t.name()).unwrap_err();
    assert!(
        matches!(err, Error::AlreadyExists { .. }),
        "read-only open: {err:?}"
    );

    // SAFETY: our mapping of `len` bytes, still mapped (held by `occupied`).
    let now = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
    assert!(
        now == bytes.as_slice(),
        "the existing mapping's bytes changed"
    );
    assert_eq!(
        map_perms(addr.as_ptr()),
        "rw-p",
        "still our private mapping"
    );
    drop(occupied);
}

fn data_persists_after_flush_drop_and_reopen<T: Target>() {
    let t = T::new();
    let (blocks, free) = {
        let seg = Seg::<T>::create(t.name(), SIZE).unwrap();
        let blocks: Vec<Block> = (0..10)
            .map(|i| Block::new(&seg, 100 + 300 * i, 40 + i as u64))
            .collect();
        blocks[3].free(&seg);
        seg.flush().expect("flush");
        (blocks, seg.free_memory())
    };
    // The device itself holds the bytes, where the handles say.
    let raw = std::fs::read(t.path()).unwrap();
    assert_eq!(raw.len(), SIZE);
    for (i, b) in blocks.iter().enumerate().filter(|(i, _)| *i != 3) {
        let at = b.handle.0 as usize;
        assert_eq!(
            &raw[at..at + b.len],
            support::pattern(b.seed, b.len).as_slice(),
            "block {i} in the device"
        );
    }
    // Nothing maps the segment now; a reopen finds the same segment.
    let seg = Seg::<T>::open(t.name()).unwrap();
    assert_eq!(seg.free_memory(), free);
    assert!(seg.check_sanity());
    for (i, b) in blocks.iter().enumerate() {
        if i != 3 {
            b.assert_intact(&seg);
            assert!(
                seg.usable_size(b.ptr(&seg)).is_some(),
                "block {i} still live"
            );
        } else {
            assert!(seg.usable_size(b.ptr(&seg)).is_none(), "block 3 was freed");
        }
    }
    // A second round trip after changes made by the reopened segment.
    let extra = Block::new(&seg, 4000, 99);
    blocks[0].free(&seg);
    seg.flush().unwrap();
    let free2 = seg.free_memory();
    drop(seg);
    let seg = Seg::<T>::open_or_create(t.name(), SIZE).unwrap();
    assert_eq!(seg.free_memory(), free2);
    extra.assert_intact(&seg);
    blocks[9].assert_intact(&seg);
    // Flushing mappings that cannot write back is a no-op, not an error.
    drop(seg);
    let ro = Seg::<T>::options().read_only().open(t.name()).unwrap();
    ro.flush().expect("flush of a read-only mapping");
    let cow = Seg::<T>::options().copy_on_write().open(t.name()).unwrap();
    cow.flush().expect("flush of a copy-on-write mapping");
}

// ----- names ---------------------------------------------------------------------------

#[test]
fn shm_names_the_os_cannot_use_are_invalid_name() {
    let long = "n".repeat(256);
    for bad in [
        "",
        "a/b",
        "/leading_slash",
        ".",
        "..",
        "nul\0byte",
        long.as_str(),
    ] {
        let check = |what: &str, err: Error| {
            assert!(
                matches!(err, Error::InvalidName { .. }),
                "{what}({bad:?}): {err:?}"
            );
        };
        check(
            "create",
            Seg::<support::ShmTarget>::create(bad, SIZE).unwrap_err(),
        );
        check("open", Seg::<support::ShmTarget>::open(bad).unwrap_err());
        check(
            "open_or_create",
            Seg::<support::ShmTarget>::open_or_create(bad, SIZE).unwrap_err(),
        );
        check(
            "open_read_only",
            Seg::<support::ShmTarget>::options()
                .read_only()
                .open(bad)
                .unwrap_err(),
        );
        check(
            "remove",
            Seg::<support::ShmTarget>::remove(bad).unwrap_err(),
        );
    }
    // The longest valid name (255 bytes) works.
    let name = format!("{}_{}", support::unique_name(), "x".repeat(255));
    let name = &name[..255];
    let _guard = ShmGuard(name.to_owned());
    Seg::<support::ShmTarget>::create(name, SIZE).expect("a 255-byte name");
    assert!(support::shm_path(name).exists());
}

#[test]
fn file_paths_with_a_nul_byte_are_invalid_name() {
    let dir = support::TempDir::new();
    let bad = dir.join("nul\0byte");
    let err = Seg::<support::FileTarget>::create(&bad, SIZE).unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }), "create: {err:?}");
    let err = Seg::<support::FileTarget>::open(&bad).unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }), "open: {err:?}");
    let err = Seg::<support::FileTarget>::open_or_create(&bad, SIZE).unwrap_err();
    assert!(
        matches!(err, Error::InvalidName { .. }),
        "open_or_create: {err:?}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_file_segment_in_a_missing_directory_is_not_found() {
    let dir = support::TempDir::new();
    let path = dir.join("no_such_dir").join("segment");
    let err = Seg::<support::FileTarget>::create(&path, SIZE).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(
        err.to_string().contains("no_such_dir"),
        "names the path: {err}"
    );
}

#[test]
fn open_waits_no_longer_than_needed_for_a_ready_segment() {
    // A sanity bound on the happy path: opening a ready segment does not sleep through
    // any of the creation-race waits.
    let t = support::ShmTarget::new();
    let _seg = Seg::<support::ShmTarget>::create(t.name(), SIZE).unwrap();
    let started = std::time::Instant::now();
    for _ in 0..20 {
        Seg::<support::ShmTarget>::open(t.name()).unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "20 opens took {:?}",
        started.elapsed()
    );
}

/// A tmpfs of `size` (e.g. "1m") mounted on a fresh directory for one test, unmounted on
/// drop; `None` where this process may not mount (it needs root or CAP_SYS_ADMIN).
struct SmallFs(support::TempDir);

impl SmallFs {
    fn mount(size: &str) -> Option<SmallFs> {
        let dir = support::TempDir::new();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status();
        status.is_ok_and(|s| s.success()).then_some(SmallFs(dir))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

/// `reserve` (the default) allocates a file's storage at creation: a segment larger than
/// its file system is `OutOfSpace` at once and leaves nothing behind, and one that fits can
/// be written everywhere without SIGBUS.
#[test]
fn a_file_segment_larger_than_its_file_system_is_out_of_space() {
    let Some(fs) = SmallFs::mount("1m") else {
        eprintln!("skipped: cannot mount a 1 MiB tmpfs here (needs root or CAP_SYS_ADMIN)");
        return;
    };
    let path = fs.0.join("db");
    let err = shmkit_runtime::ManagedMappedFile::create(&path, 16 << 20).err();
    assert!(
        matches!(err, Some(Error::OutOfSpace { size, .. }) if size == 16 << 20),
        "{err:?}"
    );
    assert!(!path.exists(), "a failed create leaves nothing behind");

    let seg = shmkit_runtime::ManagedMappedFile::create(&path, 512 << 10).unwrap();
    let len = 400 << 10;
    let block = seg.allocate(len).unwrap();
    // SAFETY: a fresh block of `len` bytes of this segment.
    unsafe { block.as_ptr().write_bytes(0xAB, len) };
    seg.flush().unwrap();
}
