//! Files to map: create/open/remove semantics, permissions, resizing, read-only files.

use shmkit_runtime::os::{Access, MapMode, MappableFile, MappedRegion, Permissions};
use shmkit_runtime::Error;
use shmkit_test_support as support;
use support::region::{read, write};
use support::{mode_of_fd, pattern, TempPath};

#[test]
fn create_makes_a_zeroed_file_of_the_size() {
    let path = TempPath::new();
    let file = MappableFile::create(path.get(), 10_000, Permissions::default()).unwrap();
    assert_eq!(file.path(), path.get());
    assert_eq!(file.access(), Access::ReadWrite);
    assert_eq!(file.size().unwrap(), 10_000);
    assert_eq!(std::fs::read(path.get()).unwrap(), vec![0; 10_000]);
}

#[test]
fn create_of_an_existing_file_is_already_exists() {
    let path = TempPath::new();
    let _first = MappableFile::create(path.get(), 100, Permissions::default()).unwrap();
    let err = MappableFile::create(path.get(), 100, Permissions::default()).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.get().display().to_string()),
        "{err}"
    );
}

#[test]
fn open_of_a_missing_file_is_not_found() {
    let path = TempPath::new();
    let err = MappableFile::open(path.get(), Access::ReadWrite).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err =
        MappableFile::create(&path.get().join("sub"), 100, Permissions::default()).unwrap_err();
    assert!(
        matches!(err, Error::NotFound { .. }),
        "missing directory: {err}"
    );
}

#[test]
fn open_or_create_creates_once_and_keeps_the_existing_size() {
    let path = TempPath::new();
    let (first, created) =
        MappableFile::open_or_create(path.get(), 4096, Permissions::default()).unwrap();
    assert!(created);
    assert_eq!(first.size().unwrap(), 4096);
    let (second, created) =
        MappableFile::open_or_create(path.get(), 8192, Permissions::default()).unwrap();
    assert!(!created);
    assert_eq!(second.access(), Access::ReadWrite);
    assert_eq!(second.size().unwrap(), 4096, "opening does not resize");
}

#[test]
fn permissions_default_to_owner_read_write_and_ignore_the_umask() {
    let path = TempPath::new();
    let file = MappableFile::create(path.get(), 1, Permissions::default()).unwrap();
    assert_eq!(mode_of_fd(&file), 0o600);

    let path = TempPath::new();
    let file = MappableFile::create(path.get(), 1, Permissions::everyone()).unwrap();
    assert_eq!(mode_of_fd(&file), 0o666);
}

#[test]
fn grow_by_truncate_then_map_the_whole_file() {
    let path = TempPath::new();
    let file = MappableFile::create(path.get(), 4096, Permissions::default()).unwrap();
    {
        let region = MappedRegion::map(&file, MapMode::ReadWrite, 0, None).unwrap();
        assert_eq!(region.len(), 4096);
        write(&region, 0, &pattern(1, 4096));
    }
    // SAFETY: no region maps the bytes this may cut off.
    unsafe { file.truncate(3 * 4096) }.unwrap();
    assert_eq!(file.size().unwrap(), 3 * 4096);
    let region = MappedRegion::map(&file, MapMode::ReadWrite, 0, None).unwrap();
    assert_eq!(region.len(), 3 * 4096);
    assert_eq!(read(&region, 0, 4096), pattern(1, 4096), "old bytes kept");
    assert_eq!(
        read(&region, 4096, 2 * 4096),
        vec![0; 2 * 4096],
        "new bytes zero"
    );
}

#[test]
fn a_read_only_file_maps_read_only_or_copy_on_write() {
    let path = TempPath::new();
    std::fs::write(path.get(), pattern(1, 5000)).unwrap();
    let file = MappableFile::open(path.get(), Access::ReadOnly).unwrap();
    assert_eq!(file.access(), Access::ReadOnly);
    assert_eq!(file.size().unwrap(), 5000);

    // SAFETY: no region maps the bytes this may cut off.
    let err = unsafe { file.truncate(100) }.unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    let err = MappedRegion::map(&file, MapMode::ReadWrite, 0, None).unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");

    let region = MappedRegion::map(&file, MapMode::ReadOnly, 0, None).unwrap();
    assert_eq!(region.mode(), MapMode::ReadOnly);
    assert_eq!(read(&region, 0, 5000), pattern(1, 5000));

    let private = MappedRegion::map(&file, MapMode::CopyOnWrite, 0, None).unwrap();
    write(&private, 0, b"private");
    assert_eq!(read(&private, 0, 7), b"private");
    assert_eq!(read(&region, 0, 7), &pattern(1, 7)[..]);
    assert_eq!(
        std::fs::read(path.get()).unwrap(),
        pattern(1, 5000),
        "the file is untouched"
    );
}

#[test]
fn remove_deletes_the_file_once() {
    let path = TempPath::new();
    let file = MappableFile::create(path.get(), 4096, Permissions::default()).unwrap();
    let region = MappedRegion::map(&file, MapMode::ReadWrite, 0, None).unwrap();
    write(&region, 0, b"kept");
    assert!(MappableFile::remove(path.get()).unwrap());
    assert!(!MappableFile::remove(path.get()).unwrap());
    assert!(!path.get().exists());
    assert_eq!(
        read(&region, 0, 4),
        b"kept",
        "the mapping outlives the name"
    );
}
