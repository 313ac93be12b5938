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
