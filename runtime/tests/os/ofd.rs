//! Open-file-description locks: two descriptions conflict (in one process too), one
//! description's locks convert atomically, closing releases, and the test names the holder.

use shmkit_runtime::os::ofd::{self, LockKind};
use shmkit_runtime::os::{Access, Permissions, SharedMemoryObject};
use shmkit_runtime::Error;
use shmkit_test_support::ShmGuard;

const BYTE: u64 = 1 << 62;

fn two_descriptions(name: &ShmGuard) -> (SharedMemoryObject, SharedMemoryObject) {
    let a =
        SharedMemoryObject::create(name.get(), Access::ReadWrite, Permissions::default()).unwrap();
    let b = SharedMemoryObject::open(name.get(), Access::ReadWrite).unwrap();
    (a, b)
}

#[test]
fn shared_locks_coexist_and_exclude_an_exclusive_one() {
    let name = ShmGuard::new();
    let (a, b) = two_descriptions(&name);
    assert!(ofd::try_lock(&a, BYTE, LockKind::Shared).unwrap());
    assert!(ofd::try_lock(&b, BYTE, LockKind::Shared).unwrap());
    assert!(!ofd::try_lock(&b, BYTE, LockKind::Exclusive).unwrap());
    assert_eq!(
        ofd::conflicting(&b, BYTE, LockKind::Exclusive).unwrap(),
        Some(LockKind::Shared)
    );
    assert_eq!(ofd::conflicting(&b, BYTE, LockKind::Shared).unwrap(), None);
    ofd::unlock(&a, BYTE).unwrap();
    assert!(
        ofd::try_lock(&b, BYTE, LockKind::Exclusive).unwrap(),
        "b's own shared lock converts once a's is gone"
    );
    assert!(!ofd::try_lock(&a, BYTE, LockKind::Shared).unwrap());
    assert_eq!(
        ofd::conflicting(&a, BYTE, LockKind::Shared).unwrap(),
        Some(LockKind::Exclusive)
    );
}

#[test]
fn an_exclusive_lock_converts_to_shared_atomically() {
    let name = ShmGuard::new();
    let (a, b) = two_descriptions(&name);
    assert!(ofd::try_lock(&a, BYTE, LockKind::Exclusive).unwrap());
    assert!(ofd::try_lock(&a, BYTE, LockKind::Shared).unwrap());
    assert!(ofd::try_lock(&b, BYTE, LockKind::Shared).unwrap());
    assert!(!ofd::try_lock(&a, BYTE, LockKind::Exclusive).unwrap());
}

#[test]
fn closing_the_description_releases_its_locks_and_other_bytes_are_independent() {
    let name = ShmGuard::new();
    let (a, b) = two_descriptions(&name);
    assert!(ofd::try_lock(&a, BYTE, LockKind::Exclusive).unwrap());
    assert!(ofd::try_lock(&b, BYTE + 1, LockKind::Exclusive).unwrap());
    drop(a);
    assert!(ofd::try_lock(&b, BYTE, LockKind::Exclusive).unwrap());
}

#[test]
fn an_exclusive_lock_needs_a_writable_descriptor() {
    let name = ShmGuard::new();
    let _a =
        SharedMemoryObject::create(name.get(), Access::ReadWrite, Permissions::default()).unwrap();
    let reader = SharedMemoryObject::open(name.get(), Access::ReadOnly).unwrap();
    let err = ofd::try_lock(&reader, BYTE, LockKind::Exclusive).unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    assert!(ofd::try_lock(&reader, BYTE, LockKind::Shared).unwrap());
}
