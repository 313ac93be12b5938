//! Mapped regions: ranges, unaligned offsets, sharing, copy-on-write, flushing, fixed
//! addresses and anonymous memory.

use std::ptr::NonNull;

use shmkit_runtime::os::{
    page_size, Access, MapMode, MappableFile, MappedRegion, Permissions, SharedMemoryObject,
    XsiRegion,
};
use shmkit_runtime::Error;
use shmkit_test_support as support;
use support::region::{read, write};
use support::{pattern, ShmGuard, TempPath};

/// A new shared memory object of `len` bytes holding `pattern(1, len)`.
fn object_with_pattern(name: &ShmGuard, len: usize) -> SharedMemoryObject {
    let object =
        SharedMemoryObject::create(name.get(), Access::ReadWrite, Permissions::default()).unwrap();
    // SAFETY: no region maps the bytes this may cut off.
    unsafe { object.truncate(len as u64) }.unwrap();
    let region = MappedRegion::map(&object, MapMode::ReadWrite, 0, None).unwrap();
    write(&region, 0, &pattern(1, len));
    object
}

#[test]
fn regions_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<MappedRegion>();
    send_sync::<XsiRegion>();
}

#[test]
fn page_size_is_a_power_of_two() {
    assert!(page_size().is_power_of_two());
    assert!(page_size() >= 4096);
}

#[test]
fn map_the_whole_device_or_a_part() {
    let name = ShmGuard::new();
    let len = 3 * page_size();
    let object = object_with_pattern(&name, len);

    let whole = MappedRegion::map(&object, MapMode::ReadOnly, 0, None).unwrap();
    assert_eq!(whole.len(), len);
    assert!(!whole.is_empty());
    assert_eq!(whole.mode(), MapMode::ReadOnly);
    assert_eq!(read(&whole, 0, len), pattern(1, len));

    let tail = MappedRegion::map(&object, MapMode::ReadOnly, page_size() as u64, None).unwrap();
    assert_eq!(
        tail.len(),
        2 * page_size(),
        "None maps from the offset to the end"
    );
    assert_eq!(read(&tail, 0, tail.len()), pattern(1, len)[page_size()..]);

    let middle =
        MappedRegion::map(&object, MapMode::ReadOnly, page_size() as u64, Some(100)).unwrap();
    assert_eq!(middle.len(), 100);
    assert_eq!(
        read(&middle, 0, 100),
        pattern(1, len)[page_size()..page_size() + 100]
    );
}

#[test]
fn empty_or_out_of_bounds_ranges_are_invalid_sizes() {
    let name = ShmGuard::new();
    let object =
        SharedMemoryObject::create(name.get(), Access::ReadWrite, Permissions::default()).unwrap();
    let err = MappedRegion::map(&object, MapMode::ReadWrite, 0, None).unwrap_err();
    assert!(
        matches!(err, Error::InvalidSize { .. }),
        "an empty object: {err}"
    );

    // SAFETY: no region maps the bytes this may cut off.
    unsafe { object.truncate(1000) }.unwrap();
    for (offset, len) in [
        (0, Some(0)),
        (1000, None),
        (2000, None),
        (0, Some(1001)),
        (999, Some(2)),
        (u64::MAX, Some(1)),
    ] {
        let err = MappedRegion::map(&object, MapMode::ReadWrite, offset, len).unwrap_err();
        assert!(
            matches!(err, Error::InvalidSize { .. }),
            "offset {offset}, len {len:?}: {err}"
        );
    }
    assert_eq!(
        MappedRegion::map(&object, MapMode::ReadWrite, 999, Some(1))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn offsets_need_not_be_page_aligned() {
    let name = ShmGuard::new();
    let len = 3 * page_size();
    let object = object_with_pattern(&name, len);

    let region = MappedRegion::map(&object, MapMode::ReadWrite, 100, Some(50)).unwrap();
    assert_eq!(region.len(), 50);
    assert_eq!(region.as_ptr() as usize % page_size(), 100);
    assert_eq!(read(&region, 0, 50), pattern(1, len)[100..150]);

    let offset = page_size() + 7;
    let rest = MappedRegion::map(&object, MapMode::ReadOnly, offset as u64, None).unwrap();
    assert_eq!(rest.len(), len - offset);
    assert_eq!(read(&rest, 0, rest.len()), pattern(1, len)[offset..]);

    write(&region, 0, b"through the unaligned region");
    let whole = MappedRegion::map(&object, MapMode::ReadOnly, 0, None).unwrap();
    assert_eq!(read(&whole, 100, 28), b"through the unaligned region");
}

#[test]
fn a_read_only_device_cannot_be_mapped_read_write() {
    let name = ShmGuard::new();
    let _object = object_with_pattern(&name, 1000);
    let read_only = SharedMemoryObject::open(name.get(), Access::ReadOnly).unwrap();
    let err = MappedRegion::map(&read_only, MapMode::ReadWrite, 0, None).unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    assert!(err.to_string().contains(name.get()), "{err}");

    let region = MappedRegion::map(&read_only, MapMode::ReadOnly, 0, None).unwrap();
    assert_eq!(read(&region, 0, 1000), pattern(1, 1000));
    let private = MappedRegion::map(&read_only, MapMode::CopyOnWrite, 0, None).unwrap();
    write(&private, 0, b"mine");
    assert_eq!(read(&private, 0, 4), b"mine");
}

#[test]
fn two_mappings_of_one_object_share_their_bytes() {
    let name = ShmGuard::new();
    let object = object_with_pattern(&name, page_size());
    let other_handle = SharedMemoryObject::open(name.get(), Access::ReadWrite).unwrap();
    let first = MappedRegion::map(&object, MapMode::ReadWrite, 0, None).unwrap();
    let second = MappedRegion::map(&other_handle, MapMode::ReadWrite, 0, None).unwrap();
    assert_ne!(first.as_ptr(), second.as_ptr());

    write(&first, 10, b"hello");
    assert_eq!(read(&second, 10, 5), b"hello");
    write(&second, 20, b"world");
    assert_eq!(read(&first, 20, 5), b"world");
}

#[test]
fn copy_on_write_changes_stay_private() {
    let name = ShmGuard::new();
    let len = 2 * page_size();
    let object = object_with_pattern(&name, len);
    let shared = MappedRegion::map(&object, MapMode::ReadWrite, 0, None).unwrap();
    let private = MappedRegion::map(&object, MapMode::CopyOnWrite, 0, None).unwrap();
    assert_eq!(private.mode(), MapMode::CopyOnWrite);
    assert_eq!(
        read(&private, 0, len),
        pattern(1, len),
        "starts as the device's bytes"
    );

    write(&private, 0, b"private");
    assert_eq!(read(&private, 0, 7), b"private");
    assert_eq!(
        read(&shared, 0, 7),
        &pattern(1, 7)[..],
        "another mapping does not see it"
    );
    let fresh = MappedRegion::map(&object, MapMode::ReadOnly, 0, None).unwrap();
    assert_eq!(
        read(&fresh, 0, len),
        pattern(1, len),
        "the device does not see it"
    );
}

#[test]
fn flush_writes_back_and_checks_its_range() {
    let path = TempPath::new();
    let len = 3 * page_size();
    let file = MappableFile::create(path.get(), len as u64, Permissions::default()).unwrap();
    let region = MappedRegion::map(&file, MapMode::ReadWrite, 0, None).unwrap();
    write(&region, 0, &pattern(1, len));
    region.flush().unwrap();
    assert_eq!(std::fs::read(path.get()).unwrap(), pattern(1, len));

    region.flush_range(10, 100).unwrap();
    region.flush_range(page_size() + 1, page_size()).unwrap();
    region.flush_range(0, len).unwrap();
    region.flush_range(len, 0).unwrap();
    region.flush_async().unwrap();

    let unaligned = MappedRegion::map(&file, MapMode::ReadWrite, 100, Some(page_size())).unwrap();
    unaligned.flush_range(page_size() - 1, 1).unwrap();
    unaligned.flush().unwrap();

    for (offset, range_len) in [(len - 1, 2), (len + 1, 0), (usize::MAX, 2), (1, usize::MAX)] {
        let err = region.flush_range(offset, range_len).unwrap_err();
        assert!(
            matches!(err, Error::RangeOutOfBounds { .. }),
            "{offset}+{range_len}: {err}"
        );
    }
    let err = unaligned.flush_range(page_size(), 1).unwrap_err();
    assert!(matches!(err, Error::RangeOutOfBounds { .. }), "{err}");
}

#[test]
fn map_at_never_clobbers_an_existing_mapping() {
    let name = ShmGuard::new();
    let len = 2 * page_size();
    let object = object_with_pattern(&name, len);
    let existing = MappedRegion::anonymous_shared(len).unwrap();
    write(&existing, 0, &[7; 64]);
    write(&existing, page_size(), &[8; 64]);

    let start = NonNull::new(existing.as_ptr()).unwrap();
    let second_page = NonNull::new(existing.as_ptr().wrapping_add(page_size())).unwrap();
    for addr in [start, second_page] {
        let err = MappedRegion::map_at(&object, MapMode::ReadWrite, 0, None, addr).unwrap_err();
        match &err {
            Error::AlreadyExists { what } => assert!(what.starts_with("address 0x"), "{what}"),
            _ => panic!("expected AlreadyExists, got {err}"),
        }
    }
    assert_eq!(read(&existing, 0, 64), [7; 64]);
    assert_eq!(read(&existing, page_size(), 64), [8; 64]);
}

/// Maps with `map_at` at an address that was free a moment ago. Other tests' threads may take
/// it in between, so try a few addresses.
fn map_at_a_free_address(object: &SharedMemoryObject, offset: u64, len: usize) -> MappedRegion {
    for _ in 0..10 {
        let probe = MappedRegion::anonymous_shared(len + page_size()).unwrap();
        let addr = probe.as_ptr().wrapping_add(offset as usize % page_size());
        drop(probe);
        match MappedRegion::map_at(
            object,
            MapMode::ReadWrite,
            offset,
            Some(len),
            NonNull::new(addr).unwrap(),
        ) {
            Ok(region) => {
                assert_eq!(region.as_ptr(), addr);
                return region;
            }
            Err(Error::AlreadyExists { .. }) => continue,
            Err(err) => panic!("map_at: {err}"),
        }
    }
    panic!("no free address found in 10 tries");
}

#[test]
fn map_at_maps_at_a_free_address() {
    let name = ShmGuard::new();
    let len = 2 * page_size();
    let object = object_with_pattern(&name, len);
    let region = map_at_a_free_address(&object, 0, len);
    assert_eq!(region.len(), len);
    assert_eq!(read(&region, 0, len), pattern(1, len));

    let unaligned = map_at_a_free_address(&object, 100, 50);
    assert_eq!(unaligned.as_ptr() as usize % page_size(), 100);
    assert_eq!(read(&unaligned, 0, 50), pattern(1, len)[100..150]);
}

#[test]
fn map_at_needs_the_address_as_far_into_its_page_as_the_offset() {
    let name = ShmGuard::new();
    let object = object_with_pattern(&name, page_size());
    let probe = MappedRegion::anonymous_shared(2 * page_size()).unwrap();
    let aligned = NonNull::new(probe.as_ptr()).unwrap();
    let err = MappedRegion::map_at(&object, MapMode::ReadOnly, 100, Some(10), aligned).unwrap_err();
    assert!(matches!(err, Error::InvalidAddress { .. }), "{err}");
    let low = NonNull::new(std::ptr::without_provenance_mut(50)).unwrap();
    let err = MappedRegion::map_at(&object, MapMode::ReadOnly, 100, Some(10), low).unwrap_err();
    assert!(matches!(err, Error::InvalidAddress { .. }), "{err}");
}

#[test]
fn anonymous_shared_memory_is_zeroed_and_writable() {
    let err = MappedRegion::anonymous_shared(0).unwrap_err();
    assert!(matches!(err, Error::InvalidSize { .. }), "{err}");

    let region = MappedRegion::anonymous_shared(1000).unwrap();
    assert_eq!(region.len(), 1000);
    assert_eq!(region.mode(), MapMode::ReadWrite);
    assert_eq!(region.as_ptr() as usize % page_size(), 0);
    assert_eq!(read(&region, 0, 1000), vec![0; 1000]);
    write(&region, 0, &pattern(1, 1000));
    assert_eq!(read(&region, 0, 1000), pattern(1, 1000));
    region.flush().unwrap();
}
