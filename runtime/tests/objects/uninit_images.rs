//! Regression tests from attack 8b, for Miri: opening bytes that are (partly)
//! uninitialised. They pass natively; under Miri each reports undefined behaviour on
//! today's main (ignored until fixed; run with `.ci/miri` plus `-- --ignored`).

use std::mem::MaybeUninit;

use shmkit_runtime::{AlignedBuffer, ManagedExternalBuffer, ManagedHeapMemory};

/// A page of uninitialised bytes, aligned as a segment needs.
#[repr(C, align(16))]
struct Uninit([MaybeUninit<u8>; 4096]);

/// `open` takes `&mut [MaybeUninit<u8>]`, which safe code can fill with nothing; the header
/// check reads it as `u32`/`u64` (Miri: uninitialised memory at `header::read_word`).
#[test]
#[ignore = "attack8b (Miri): opening a MaybeUninit buffer reads uninitialised bytes as integers"]
fn opening_an_uninitialised_buffer_is_an_error_not_undefined_behaviour() {
    let mut raw = Uninit([MaybeUninit::uninit(); 4096]);
    assert!(ManagedExternalBuffer::open(&mut raw.0).is_err());
    let raw = Uninit([MaybeUninit::uninit(); 4096]);
    assert!(ManagedHeapMemory::from_image(&raw.0[..]).is_err());
    assert!(ManagedExternalBuffer::options()
        .read_only()
        .open(&raw.0[..])
        .is_err());
}

/// A real image whose padding stays uninitialised, with only the head of the type-record
/// list forged (to an object's padding): the record walk reads it before checking it is a
/// record block (Miri: `objects/types.rs` `read`, an uninitialised `Record`).
#[test]
fn a_type_list_pointing_into_padding_is_refused_without_reading_it() {
    let mut seg = ManagedHeapMemory::new(4096).unwrap();
    let a = seg.construct("a", [(1u8, 2u64); 8]).unwrap() as *const _ as usize;
    let padding = a - seg.base_address().as_ptr().addr() + 8;
    let mut buf = AlignedBuffer::from_image(seg.image());
    let types = shmkit_test_support::internals::offsets::INDEX_LOCK + 6 * 8;
    for (i, b) in (padding as u64).to_ne_bytes().into_iter().enumerate() {
        buf[types + i] = MaybeUninit::new(b);
    }
    assert!(ManagedExternalBuffer::open(&mut buf).is_err());
}
