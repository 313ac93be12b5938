//! System V shared memory: keys, create/open/remove semantics, attaching.

use shmkit_runtime::os::{MapMode, MappableFile, Permissions, XsiKey, XsiSharedMemory};
use shmkit_runtime::Error;
use shmkit_test_support as support;
use support::region::{read, write};
use support::{pattern, TempPath, XsiIdGuard};

/// A key from a fresh file (kept alive by the returned path) and `id`.
fn fresh_key(id: u8) -> (TempPath, XsiKey) {
    let path = TempPath::new();
    MappableFile::create(path.get(), 0, Permissions::default()).unwrap();
    let key = XsiKey::from_path(path.get(), id).unwrap();
    (path, key)
}

/// The permission bits of segment `id`.
fn mode_of_segment(id: i32) -> u32 {
    // SAFETY: `shmid_ds` is a C struct of integers, for which all-zero bytes are valid.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a valid, writable `shmid_ds` for `IPC_STAT` to fill in.
    assert_eq!(unsafe { libc::shmctl(id, libc::IPC_STAT, &raw mut ds) }, 0);
    u32::from(ds.shm_perm.mode) & 0o777
}

#[test]
fn keys_come_from_a_path_and_an_id() {
    let path = TempPath::new();
    MappableFile::create(path.get(), 0, Permissions::default()).unwrap();
    let key = XsiKey::from_path(path.get(), 1).unwrap();
    assert_eq!(
        key,
        XsiKey::from_path(path.get(), 1).unwrap(),
        "the same path and id agree"
    );
    assert_ne!(key, XsiKey::from_path(path.get(), 2).unwrap());
    assert_ne!(key, XsiKey::private());
    assert_eq!(XsiKey::private().raw(), libc::IPC_PRIVATE);

    let err = XsiKey::from_path(path.get(), 0).unwrap_err();
    assert!(matches!(err, Error::InvalidKey { .. }), "{err}");
    let missing = TempPath::new();
    let err = XsiKey::from_path(missing.get(), 1).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[test]
fn create_open_and_attach_twice() {
    let (_path, key) = fresh_key(1);
    let created = XsiSharedMemory::create(key, 10_000, Permissions::default()).unwrap();
    let _guard = XsiIdGuard(created.id());
    assert_eq!(created.key(), key);
    assert_eq!(created.size().unwrap(), 10_000);
    assert_eq!(mode_of_segment(created.id()), 0o600);

    let opened = XsiSharedMemory::open(key).unwrap();
    assert_eq!(opened.id(), created.id());
    assert_eq!(opened.size().unwrap(), 10_000);

    let first = created.attach(MapMode::ReadWrite).unwrap();
    let second = opened.attach(MapMode::ReadWrite).unwrap();
    assert_eq!(first.len(), 10_000);
    assert!(!first.is_empty());
    assert_ne!(first.as_ptr(), second.as_ptr());
    assert_eq!(
        read(&first, 0, 10_000),
        vec![0; 10_000],
        "a new segment is zeroed"
    );
    write(&first, 0, &pattern(1, 10_000));
    assert_eq!(read(&second, 0, 10_000), pattern(1, 10_000));

    let read_only = opened.attach(MapMode::ReadOnly).unwrap();
    assert_eq!(read_only.mode(), MapMode::ReadOnly);
    assert_eq!(read(&read_only, 0, 10_000), pattern(1, 10_000));

    let err = opened.attach(MapMode::CopyOnWrite).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
}

#[test]
fn create_twice_is_already_exists_and_open_of_nothing_is_not_found() {
    let (_path, key) = fresh_key(2);
    let err = XsiSharedMemory::open(key).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    let created = XsiSharedMemory::create(key, 4096, Permissions::default()).unwrap();
    let _guard = XsiIdGuard(created.id());
    let err = XsiSharedMemory::create(key, 4096, Permissions::default()).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
}

#[test]
fn bad_sizes_and_the_private_key() {
    let (_path, key) = fresh_key(3);
    let err = XsiSharedMemory::create(key, 0, Permissions::default()).unwrap_err();
    assert!(matches!(err, Error::InvalidSize { .. }), "{err}");
    let err = XsiSharedMemory::open(XsiKey::private()).unwrap_err();
    assert!(matches!(err, Error::InvalidKey { .. }), "{err}");

    // Every create under the private key makes a new segment.
    let first = XsiSharedMemory::create(XsiKey::private(), 4096, Permissions::everyone()).unwrap();
    let _first_guard = XsiIdGuard(first.id());
    let second = XsiSharedMemory::create(XsiKey::private(), 4096, Permissions::default()).unwrap();
    let _second_guard = XsiIdGuard(second.id());
    assert_ne!(first.id(), second.id());
    assert_eq!(mode_of_segment(first.id()), 0o666);
}

#[test]
fn open_or_create_creates_once_then_opens() {
    let (_path, key) = fresh_key(4);
    let (first, created) =
        XsiSharedMemory::open_or_create(key, 4096, Permissions::default()).unwrap();
    let _guard = XsiIdGuard(first.id());
    assert!(created);
    let (second, created) =
        XsiSharedMemory::open_or_create(key, 8192, Permissions::default()).unwrap();
    assert!(!created);
    assert_eq!(second.id(), first.id());
    assert_eq!(second.size().unwrap(), 4096, "opening does not resize");
}

#[test]
fn remove_frees_the_key_but_keeps_attachments() {
    let (_path, key) = fresh_key(5);
    let segment = XsiSharedMemory::create(key, 4096, Permissions::default()).unwrap();
    let guard = XsiIdGuard(segment.id());
    let region = segment.attach(MapMode::ReadWrite).unwrap();
    write(&region, 0, b"still here");

    assert!(XsiSharedMemory::remove_id(segment.id()).unwrap());
    let err = XsiSharedMemory::open(key).unwrap_err();
    assert!(
        matches!(err, Error::NotFound { .. }),
        "the key is free: {err}"
    );
    assert_eq!(read(&region, 0, 10), b"still here");

    drop(region); // the last detach destroys the segment
    assert!(!XsiSharedMemory::remove_id(guard.0).unwrap());
}
