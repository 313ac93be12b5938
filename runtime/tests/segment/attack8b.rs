//! Attack probes (attack8b).

use shmkit_runtime::{Error, ManagedHeapMemory};
use shmkit_test_support as support;

const TYPEREC: u64 = 0x5459_5045_5245_4331;

/// Sets the `size` word (index 4) of every type record in `image` to `size`.
fn forge_record_sizes(image: &mut [u8], size: u64) -> usize {
    let mut n = 0;
    for at in (0..image.len() - 56).step_by(8) {
        if u64::from_ne_bytes(image[at..at + 8].try_into().unwrap()) == TYPEREC {
            image[at + 32..at + 40].copy_from_slice(&size.to_ne_bytes());
            n += 1;
        }
    }
    n
}

#[test]
fn probe_forged_type_record_size() {
    let mut seg = ManagedHeapMemory::new(1 << 14).unwrap();
    seg.construct_array("a", 8, 0x1111_1111_1111_1111u64).unwrap();
    seg.construct("b", 0x2222_2222_2222_2222u64).unwrap();
    let mut image = support::internals::image_bytes(&mut seg);
    assert!(forge_record_sizes(&mut image, 1) >= 1);
    support::internals::forge_entry_count(&mut image, 8, 64);
    match ManagedHeapMemory::from_image(&image) {
        Err(e) => println!("refused: {e}"),
        Ok(mut copy) => {
            let s = copy.find_slice::<u64>("a").unwrap().unwrap();
            println!("len {} {:x?}", s.len(), &s[..s.len().min(40)]);
            let b = copy.find::<u64>("b").unwrap().unwrap() as *const u64;
            println!("a covers b: {}", s.as_ptr_range().contains(&b));
            let m = copy.find_slice_mut::<u64>("a").unwrap().unwrap().get_mut_slice();
            m.fill(0xdead_beef_dead_beef);
            let r = copy.allocate(64);
            println!("allocate: {r:?}");
            let r = copy.check();
            println!("check: {r:?}");
        }
    }
    let _ = Error::InUse { what: String::new(), reason: String::new() };
}

/// A type record forged inside an object's elements (the TYPES head pointed at them):
/// `construct` counts the type's new object in the record, writing under a `&[u64]`.
#[test]
fn probe_type_record_inside_an_object() {
    let mut seg = ManagedHeapMemory::new(1 << 14).unwrap();
    seg.construct("x", 5u32).unwrap();
    let a = seg.construct_array("a", 8, 0u64).unwrap().as_ptr() as usize;
    let a_off = a - seg.base_address().as_ptr() as usize;
    let mut image = support::internals::image_bytes(&mut seg);
    let types = support::internals::offsets::INDEX_LOCK + 6 * 8;
    let head = u64::from_ne_bytes(image[types..types + 8].try_into().unwrap());
    let word = |image: &[u8], at: usize| u64::from_ne_bytes(image[at..at + 8].try_into().unwrap());
    // The u32 record: tag at `at`, size word at +32 == 4.
    let rec = (0..image.len() - 56)
        .step_by(8)
        .find(|&at| word(&image, at) == TYPEREC && word(&image, at + 32) == 4)
        .unwrap();
    let mut fake = image[rec..rec + 56].to_vec();
    fake[8..16].copy_from_slice(&head.to_ne_bytes());
    fake[48..56].copy_from_slice(&0u64.to_ne_bytes());
    image[a_off..a_off + 56].copy_from_slice(&fake);
    image[types..types + 8].copy_from_slice(&(a_off as u64).to_ne_bytes());
    match ManagedHeapMemory::from_image(&image) {
        Err(e) => println!("refused: {e}"),
        Ok(copy) => {
            let s = copy.find_slice::<u64>("a").unwrap().unwrap();
            let before = s[3];
            copy.construct("y", 6u32).unwrap();
            let after = s[3];
            println!("refs word through &[u64]: before {before} after {after}");
            assert_eq!(before, after, "a shared reference's bytes changed under it");
        }
    }
}

const ATTACH: u64 = 1 << 62;
const TRUSTED: u64 = ATTACH + 3;

/// Safe code takes the TRUSTED lock byte on a forged file through the public `os::ofd`
/// API; the next open is warm and skips the entry checks.
#[test]
fn probe_forged_trust_through_public_ofd() {
    use shmkit_runtime::os::ofd::{self, LockKind};
    use shmkit_runtime::os::{Access, MappableFile};
    use shmkit_runtime::ManagedMappedFile;
    let mut seg = ManagedHeapMemory::new(1 << 14).unwrap();
    seg.construct_array("a", 8, 0xAAu8).unwrap();
    let mut image = support::internals::image_bytes(&mut seg);
    support::internals::forge_entry_count(&mut image, 8, 4096);
    let file = support::TempPath::new();
    std::fs::write(file.get(), &image).unwrap();
    println!("cold: {:?}", ManagedMappedFile::open(file.get()).err());
    let liar = MappableFile::open(file.get(), Access::ReadOnly).unwrap();
    assert!(ofd::try_lock(&liar, TRUSTED, LockKind::Shared).unwrap());
    match ManagedMappedFile::options().exclusive().open(file.get()) {
        Err(e) => println!("warm refused: {e}"),
        Ok(mut warm) => {
            let n = warm.find_slice::<u8>("a").unwrap().unwrap().len();
            println!("warm open: `a` has {n} elements in a block of ~24 bytes");
            let s = warm.find_slice_mut::<u8>("a").unwrap().unwrap().get_mut_slice();
            s.fill(0xFF);
            println!("allocate: {:?}", warm.allocate(64).err());
        }
    }
}

/// Safe code releases an exclusive mapping's ATTACH lock through `backing().device()` and
/// the public `os::ofd::unlock`; a second mapping then reads what `&mut` writes.
#[test]
fn probe_unlock_exclusive_through_public_ofd() {
    use shmkit_runtime::os::ofd;
    use shmkit_runtime::ManagedMappedFile;
    let file = support::TempPath::new();
    let mut ex = ManagedMappedFile::options()
        .exclusive()
        .create(file.get(), 1 << 16)
        .unwrap();
    ex.construct("a", 1u64).unwrap();
    ofd::unlock(ex.backing().device(), ATTACH).unwrap();
    match ManagedMappedFile::open(file.get()) {
        Err(e) => println!("shared open refused: {e}"),
        Ok(shared) => {
            let r: &u64 = shared.find::<u64>("a").unwrap().unwrap();
            let before = *r;
            ex.find_mut::<u64>("a").unwrap().unwrap().set(2);
            println!("&u64 from the shared mapping: before {before} after {}", *r);
            assert_eq!(before, *r, "a shared reference's value changed under it");
        }
    }
}
