//! Managed System V (XSI) shared memory: keys from paths, create/open/open_or_create,
//! removal semantics, read-only attachment, sizes and permissions.

use shmkit_runtime::os::XsiKey;
use shmkit_runtime::test_hooks::MIN_SEGMENT_SIZE;
use shmkit_runtime::{Error, ManagedXsiSharedMemory};
use shmkit_test_support as support;
use support::{map_perms, xsi_key, Block, TempDir, XsiIdGuard};

const SIZE: usize = 64 * 1024;

#[test]
fn keys_come_from_a_path_and_an_id() {
    let dir = TempDir::new();
    let a = dir.join("a");
    let b = dir.join("b");
    std::fs::write(&a, b"a").unwrap();
    std::fs::write(&b, b"b").unwrap();
    let ka = XsiKey::from_path(&a, 1).unwrap();
    assert_eq!(ka, XsiKey::from_path(&a, 1).unwrap(), "stable for one path");
    assert_ne!(ka, XsiKey::from_path(&a, 2).unwrap(), "the id counts");
    assert_ne!(ka, XsiKey::from_path(&b, 1).unwrap(), "the file counts");
    let err = XsiKey::from_path(&dir.join("missing"), 1).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = XsiKey::from_path(&a, 0).unwrap_err();
    assert!(matches!(err, Error::InvalidKey { .. }), "{err:?}");
}

#[test]
fn create_then_open_and_open_or_create_share_one_segment() {
    let dir = TempDir::new();
    let (key, _guard) = xsi_key(&dir);
    let created = ManagedXsiSharedMemory::create(key, SIZE).expect("create");
    let _id = XsiIdGuard(created.backing().shm().id());
    assert_eq!(created.size(), SIZE);
    assert!(created.all_memory_deallocated());
    assert!(created.check_sanity());
    assert_eq!(created.backing().shm().key(), key);
    let block = Block::new(&created, 3000, 1);

    let opened = ManagedXsiSharedMemory::open(key).expect("open");
    assert_ne!(opened.base_address(), created.base_address());
    assert_eq!(opened.backing().shm().id(), created.backing().shm().id());
    assert_eq!(opened.size(), SIZE);
    block.assert_intact(&opened);
    let other = Block::new(&opened, 100, 2);
    other.assert_intact(&created);
    assert_eq!(opened.free_memory(), created.free_memory());

    let again = ManagedXsiSharedMemory::open_or_create(key, 2 * SIZE).expect("open_or_create");
    assert_eq!(again.size(), SIZE, "an existing segment keeps its size");
    block.assert_intact(&again);
    other.free(&again);
    block.free(&again);
    assert!(created.all_memory_deallocated());

    // open_or_create of a free key creates.
    let (key2, _guard2) = xsi_key(&dir);
    let fresh = ManagedXsiSharedMemory::open_or_create(key2, SIZE).expect("creates");
    assert_eq!(fresh.size(), SIZE);
    assert!(fresh.all_memory_deallocated());
    assert_ne!(fresh.backing().shm().id(), created.backing().shm().id());
}

#[test]
fn duplicate_create_is_already_exists_and_leaves_the_segment_untouched() {
    let dir = TempDir::new();
    let (key, _guard) = xsi_key(&dir);
    let seg = ManagedXsiSharedMemory::create(key, SIZE).unwrap();
    let block = Block::new(&seg, 1000, 3);
    let free = seg.free_memory();
    let err = ManagedXsiSharedMemory::create(key, SIZE).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    assert_eq!(seg.free_memory(), free);
    block.assert_intact(&seg);
    let opened = ManagedXsiSharedMemory::open(key).expect("still there");
    block.assert_intact(&opened);
}

#[test]
fn open_of_a_missing_key_is_not_found() {
    let dir = TempDir::new();
    let (key, _guard) = xsi_key(&dir);
    let err = ManagedXsiSharedMemory::open(key).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = ManagedXsiSharedMemory::options()
        .read_only()
        .open(key)
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(
        !ManagedXsiSharedMemory::remove(key).unwrap(),
        "nothing to remove"
    );
}

#[test]
fn too_small_sizes_are_invalid_size_and_leave_nothing() {
    let dir = TempDir::new();
    let (key, _guard) = xsi_key(&dir);
    for size in [0, 1, MIN_SEGMENT_SIZE - 1] {
        let err = ManagedXsiSharedMemory::create(key, size).unwrap_err();
        assert!(
            matches!(err, Error::InvalidSize { .. }),
            "create({size}): {err:?}"
        );
        let err = ManagedXsiSharedMemory::open_or_create(key, size).unwrap_err();
        assert!(
            matches!(err, Error::InvalidSize { .. }),
            "open_or_create({size}): {err:?}"
        );
        let err = ManagedXsiSharedMemory::open(key).unwrap_err();
        assert!(
            matches!(err, Error::NotFound { .. }),
            "left a segment: {err:?}"
        );
    }
    let seg = ManagedXsiSharedMemory::create(key, MIN_SEGMENT_SIZE).expect("minimum");
    seg.allocate(16).unwrap();
}

#[test]
fn permissions_default_to_owner_read_write() {
    let dir = TempDir::new();
    let (key, _guard) = xsi_key(&dir);
    let seg = ManagedXsiSharedMemory::create(key, SIZE).unwrap();
    // SAFETY: `shmid_ds` is a C struct of integers, for which all-zero bytes are valid.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a valid, writable `shmid_ds` for IPC_STAT to fill in.
    let rc = unsafe { libc::shmctl(seg.backing().shm().id(), libc::IPC_STAT, &mut ds) };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    assert_eq!(ds.shm_perm.mode & 0o777, 0o600);
    assert_eq!(ds.shm_segsz, SIZE);
}

#[test]
fn remove_frees_the_key_at_once_while_attached_segments_keep_working() {
    let dir = TempDir::new();
    let (key, _guard) = xsi_key(&dir);
    let old = ManagedXsiSharedMemory::create(key, SIZE).unwrap();
    let _old_id = XsiIdGuard(old.backing().shm().id());
    let kept = Block::new(&old, 500, 4);
    assert!(ManagedXsiSharedMemory::remove(key).unwrap());
    let err = ManagedXsiSharedMemory::open(key).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(!ManagedXsiSharedMemory::remove(key).unwrap());

    // Still attached: still usable.
    kept.assert_intact(&old);
    let later = Block::new(&old, 700, 5);
    assert!(old.check_sanity());

    // The key is free for a new, independent segment.
    let new = ManagedXsiSharedMemory::create(key, SIZE).expect("create after remove");
    assert!(new.all_memory_deallocated());
    assert_ne!(new.backing().shm().id(), old.backing().shm().id());
    Block::new(&new, 500, 6);
    kept.assert_intact(&old);
    later.assert_intact(&old);
}

#[test]
fn read_only_attachment_reads_the_same_segment() {
    let dir = TempDir::new();
    let (key, _guard) = xsi_key(&dir);
    let rw = ManagedXsiSharedMemory::create(key, SIZE).unwrap();
    let blocks: Vec<Block> = (0..5)
        .map(|i| Block::new(&rw, 400 * (i + 1), i as u64))
        .collect();
    blocks[1].free(&rw);
    let free = rw.free_memory();
    let freed = rw.handle_from_address(blocks[1].ptr(&rw).as_ptr()).unwrap();
    // A reader would see the writer's changes half done: refused while it maps.
    let refused = ManagedXsiSharedMemory::options().read_only().open(key);
    assert!(matches!(refused, Err(Error::InUse { .. })), "{refused:?}");
    drop(rw);

    let ro = ManagedXsiSharedMemory::options()
        .read_only()
        .open(key)
        .expect("open_read_only");
    assert_eq!(map_perms(ro.base_address().as_ptr()), "r--s");
    assert_eq!(ro.size(), SIZE);
    assert_eq!(ro.free_memory(), free);
    assert!(ro.check_sanity());
    assert!(!ro.all_memory_deallocated());
    for b in blocks.iter().filter(|b| b.seed != 1) {
        b.assert_intact(&ro);
    }
    assert!(ro
        .usable_size(ro.address_from_handle(freed).unwrap())
        .is_none());
}

#[test]
fn a_private_key_segment_cannot_be_opened() {
    let seg = ManagedXsiSharedMemory::create(XsiKey::private(), SIZE).expect("private create");
    let _id = XsiIdGuard(seg.backing().shm().id());
    Block::new(&seg, 100, 1).assert_intact(&seg);
    let err = ManagedXsiSharedMemory::open(XsiKey::private()).unwrap_err();
    assert!(matches!(err, Error::InvalidKey { .. }), "{err:?}");
}
