//! POSIX shared memory objects: create/open/remove semantics, names, permissions, sizes.

use shmkit_runtime::os::{Access, MapMode, MappedRegion, Permissions, SharedMemoryObject};
use shmkit_runtime::Error;
use shmkit_test_support as support;
use support::region::{read, write};
use support::{mode_of_fd, ShmGuard};

#[test]
fn create_then_open_sees_the_same_object() {
    let name = ShmGuard::new();
    let created =
        SharedMemoryObject::create(name.get(), Access::ReadWrite, Permissions::default()).unwrap();
    assert_eq!(created.name(), name.get());
    assert_eq!(created.access(), Access::ReadWrite);
    assert_eq!(created.size().unwrap(), 0, "a new object is empty");
    // SAFETY: no region maps the bytes this may cut off.
    unsafe { created.truncate(4096) }.unwrap();

    let opened = SharedMemoryObject::open(name.get(), Access::ReadOnly).unwrap();
    assert_eq!(opened.access(), Access::ReadOnly);
    assert_eq!(opened.size().unwrap(), 4096);
}

#[test]
fn create_of_an_existing_object_is_already_exists() {
    let name = ShmGuard::new();
    let _first =
        SharedMemoryObject::create(name.get(), Access::ReadWrite, Permissions::default()).unwrap();
    let err = SharedMemoryObject::create(name.get(), Access::ReadWrite, Permissions::default())
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert!(
        err.to_string().contains(name.get()),
        "the error names the object: {err}"
    );
}

#[test]
fn open_of_a_missing_object_is_not_found() {
    let name = ShmGuard::new();
    let err = SharedMemoryObject::open(name.get(), Access::ReadWrite).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[test]
fn open_or_create_creates_once_then_opens() {
    let name = ShmGuard::new();
    let (first, created) =
        SharedMemoryObject::open_or_create(name.get(), Access::ReadWrite, Permissions::default())
            .unwrap();
    assert!(created);
    // SAFETY: no region maps the bytes this may cut off.
    unsafe { first.truncate(100) }.unwrap();
    let (second, created) =
        SharedMemoryObject::open_or_create(name.get(), Access::ReadWrite, Permissions::default())
            .unwrap();
    assert!(!created);
    assert_eq!(
        second.size().unwrap(),
        100,
        "the same object, not a new one"
    );
}

#[test]
fn invalid_names_are_refused() {
    let too_long = "a".repeat(256);
    for name in [
        "",
        "a/b",
        "/leading",
        "trailing/",
        ".",
        "..",
        "nul\0byte",
        too_long.as_str(),
    ] {
        for err in [
            SharedMemoryObject::create(name, Access::ReadWrite, Permissions::default())
                .unwrap_err(),
            SharedMemoryObject::open(name, Access::ReadWrite).unwrap_err(),
            SharedMemoryObject::open_or_create(name, Access::ReadWrite, Permissions::default())
                .unwrap_err(),
            SharedMemoryObject::remove(name).unwrap_err(),
        ] {
            assert!(matches!(err, Error::InvalidName { .. }), "{name:?}: {err}");
        }
    }
}

#[test]
fn a_name_of_255_bytes_is_accepted() {
    let base = ShmGuard::new();
    let name = format!("{}{}", base.get(), "x".repeat(255 - base.get().len()));
    assert_eq!(name.len(), 255);
    let object = SharedMemoryObject::create(&name, Access::ReadWrite, Permissions::default());
    let removed = SharedMemoryObject::remove(&name);
    assert_eq!(object.unwrap().name(), name);
    assert!(removed.unwrap());
}

#[test]
fn default_permissions_are_owner_read_write() {
    assert_eq!(Permissions::default().mode(), 0o600);
    let name = ShmGuard::new();
    let object =
        SharedMemoryObject::create(name.get(), Access::ReadWrite, Permissions::default()).unwrap();
    assert_eq!(mode_of_fd(&object), 0o600);
}

#[test]
fn custom_permissions_are_applied_despite_the_umask() {
    let name = ShmGuard::new();
    let object =
        SharedMemoryObject::create(name.get(), Access::ReadWrite, Permissions::everyone()).unwrap();
    assert_eq!(
        mode_of_fd(&object),
        0o666,
        "a umask such as 022 must not narrow the mode"
    );

    let name = ShmGuard::new();
    let object =
        SharedMemoryObject::create(name.get(), Access::ReadWrite, Permissions::from_mode(0o640))
            .unwrap();
    assert_eq!(mode_of_fd(&object), 0o640);
}

#[test]
fn permissions_keep_only_the_rwx_bits() {
    assert_eq!(Permissions::from_mode(0o4755).mode(), 0o755);
    assert_eq!(Permissions::from_mode(0o3777).mode(), 0o777);
    assert_eq!(Permissions::everyone().mode(), 0o666);
}

#[test]
fn truncate_grows_and_shrinks() {
    let name = ShmGuard::new();
    let object =
        SharedMemoryObject::create(name.get(), Access::ReadWrite, Permissions::default()).unwrap();
    // SAFETY: no region maps the bytes this may cut off.
    unsafe { object.truncate(10_000) }.unwrap();
    assert_eq!(object.size().unwrap(), 10_000);
    // SAFETY: no region maps the bytes this may cut off.
    unsafe { object.truncate(100) }.unwrap();
    assert_eq!(object.size().unwrap(), 100);
    // SAFETY: no region maps the bytes this may cut off.
    let err = unsafe { object.truncate(u64::MAX) }.unwrap_err();
    assert!(matches!(err, Error::InvalidSize { .. }), "{err}");
}

#[test]
fn allocate_grows_and_never_shrinks() {
    let name = ShmGuard::new();
    let object =
        SharedMemoryObject::create(name.get(), Access::ReadWrite, Permissions::default()).unwrap();
    object.allocate(8192).unwrap();
    assert_eq!(object.size().unwrap(), 8192);
    object.allocate(100).unwrap();
    assert_eq!(object.size().unwrap(), 8192);
    object.allocate(0).unwrap();
    assert_eq!(object.size().unwrap(), 8192);
}

#[test]
fn a_read_only_handle_cannot_resize() {
    let name = ShmGuard::new();
    let _object =
        SharedMemoryObject::create(name.get(), Access::ReadWrite, Permissions::default()).unwrap();
    let read_only = SharedMemoryObject::open(name.get(), Access::ReadOnly).unwrap();
    // SAFETY: no region maps the bytes this may cut off.
    let err = unsafe { read_only.truncate(4096) }.unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    let err = read_only.allocate(4096).unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    assert_eq!(read_only.size().unwrap(), 0);
}

#[test]
fn remove_frees_the_name_but_keeps_mappings() {
    let name = ShmGuard::new();
    let object =
        SharedMemoryObject::create(name.get(), Access::ReadWrite, Permissions::default()).unwrap();
    // SAFETY: no region maps the bytes this may cut off.
    unsafe { object.truncate(4096) }.unwrap();
    let region = MappedRegion::map(&object, MapMode::ReadWrite, 0, None).unwrap();
    write(&region, 0, b"still here");
    drop(object);

    assert!(SharedMemoryObject::remove(name.get()).unwrap());
    assert!(
        !SharedMemoryObject::remove(name.get()).unwrap(),
        "already removed"
    );
    let err = SharedMemoryObject::open(name.get(), Access::ReadWrite).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    assert_eq!(read(&region, 0, 10), b"still here");
    write(&region, 100, b"writable");
    assert_eq!(read(&region, 100, 8), b"writable");

    // The name is free: a new, empty object takes it.
    let again =
        SharedMemoryObject::create(name.get(), Access::ReadWrite, Permissions::default()).unwrap();
    assert_eq!(again.size().unwrap(), 0);
}
