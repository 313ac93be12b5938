//! Regression tests from attack 8b: forged type records, and trust forged by another
//! reader of the file. (A third finding,
//! safe code releasing an exclusive mapping's lock through a public `os::ofd`, is closed:
//! the module is crate-private, and no safe call reaches another description's locks.)

use std::os::fd::{AsFd, AsRawFd};

use shmkit_runtime::os::{Access, MappableFile};
use shmkit_runtime::test_hooks::vouch_byte;
use shmkit_runtime::{Error, ManagedHeapMemory, ManagedMappedFile};
use shmkit_test_support as support;

/// A type record's tag word ("TYPEREC1"), to find records in an image.
const TYPE_RECORD_TAG: u64 = 0x5459_5045_5245_4331;
/// The header word holding the head of the type-record list (`header::words::TYPES`).
const TYPES: usize = support::internals::offsets::INDEX_LOCK + 6 * 8;

fn word(image: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(image[at..at + 8].try_into().unwrap())
}

/// Offsets of the type records in `image` whose size word is `size`.
fn type_records(image: &[u8], size: u64) -> Vec<usize> {
    (0..image.len() - 56)
        .step_by(8)
        .filter(|&at| word(image, at) == TYPE_RECORD_TAG && word(image, at + 32) == size)
        .collect()
}

/// A type record whose size is forged smaller than the type's: the entry check sizes the
/// elements by the record, `find` by `size_of::<T>()`, so 64 one-byte "elements" pass the
/// check and `find_slice::<u64>` hands out 512 bytes over the next blocks' headers and
/// objects (`find_slice_mut` then `allocate`: SIGSEGV).
#[test]

fn a_forged_type_record_size_never_stretches_an_object_past_its_block() {
    let mut seg = ManagedHeapMemory::new(1 << 14).unwrap();
    seg.construct_array("a", 8, 0x1111u64).unwrap();
    seg.construct("b", 0x2222u64).unwrap();
    let mut image = support::internals::image_bytes(&mut seg);
    for at in type_records(&image, 8) {
        image[at + 32..at + 40].copy_from_slice(&1u64.to_ne_bytes());
    }
    support::internals::forge_entry_count(&mut image, 8, 64);
    let Ok(copy) = ManagedHeapMemory::from_image(&image) else {
        return;
    };
    let found = copy.find_slice::<u64>("a");
    assert!(
        !matches!(found, Ok(Some(s)) if s.len() > 8),
        "`a` was found with more elements than its block holds"
    );
}

/// A type record forged inside an object's elements (the list's head pointed at them): a
/// `construct` of that type counts its new object in the record, writing under a live
/// `&[u64]` of the object. Records must be used blocks of the chain, as entries are.
#[test]
fn a_type_record_forged_inside_an_object_is_refused() {
    let mut seg = ManagedHeapMemory::new(1 << 14).unwrap();
    seg.construct("x", 5u32).unwrap();
    let a = seg.construct_array("a", 8, 0u64).unwrap().as_ptr().addr();
    let a = a - seg.base_address().as_ptr().addr();
    let mut image = support::internals::image_bytes(&mut seg);
    let head = word(&image, TYPES);
    let real = type_records(&image, 4)[0];
    let mut fake = image[real..real + 56].to_vec();
    fake[8..16].copy_from_slice(&head.to_ne_bytes()); // next: the real list
    fake[48..56].copy_from_slice(&0u64.to_ne_bytes()); // no name
    image[a..a + 56].copy_from_slice(&fake);
    image[TYPES..TYPES + 8].copy_from_slice(&(a as u64).to_ne_bytes());
    let Ok(copy) = ManagedHeapMemory::from_image(&image) else {
        return;
    };
    let elements = copy.find_slice::<u64>("a").unwrap().unwrap();
    let before = elements.to_vec();
    let _ = copy.construct("y", 6u32);
    assert_eq!(before, elements, "the bytes under a `&[u64]` changed");
}

/// A forged file on which another reader holds bytes a mapping vouches on, shared (a
/// read-only description may take shared OFD locks; the `nix` crate offers it as a safe
/// call): the next open must still be cold and refuse it. Trust needs a lock that only a
/// writable description can take. (With a shared `TRUSTED` byte, the open was warm and an
/// exclusive open then overwrote block headers through `find_slice_mut`.)
#[test]
fn a_trust_lock_taken_outside_shmkit_does_not_skip_validation() {
    let mut seg = ManagedHeapMemory::new(1 << 14).unwrap();
    seg.construct_array("a", 8, 0xAAu8).unwrap();
    let mut image = support::internals::image_bytes(&mut seg);
    support::internals::forge_entry_count(&mut image, 8, 4096);
    let file = support::TempPath::new();
    std::fs::write(file.get(), &image).unwrap();
    assert!(ManagedMappedFile::open(file.get()).is_err(), "refused cold");
    let liar = MappableFile::open(file.get(), Access::ReadOnly).unwrap();
    let lock = libc::flock {
        l_type: libc::F_RDLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: vouch_byte(2) as libc::off_t,
        l_len: (vouch_byte(1 << 16) - vouch_byte(2) + 1) as libc::off_t,
        l_pid: 0,
    };
    // SAFETY: a valid descriptor and a valid `flock` for the duration of the call.
    let taken = unsafe { libc::fcntl(liar.as_fd().as_raw_fd(), libc::F_OFD_SETLK, &lock) };
    assert_eq!(taken, 0, "a reader takes shared locks on vouch bytes");
    let still_cold = ManagedMappedFile::open(file.get());
    assert!(
        matches!(still_cold, Err(Error::Corrupted { .. })),
        "{still_cold:?}"
    );
    let Ok(warm) = ManagedMappedFile::options().exclusive().open(file.get()) else {
        return;
    };
    let found = warm.find_slice::<u8>("a");
    assert!(
        !matches!(found, Ok(Some(s)) if s.len() > 8),
        "a forged entry reaches past its block on a warm open"
    );
}
