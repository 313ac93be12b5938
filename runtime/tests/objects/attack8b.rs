//! Attack probes (attack8b), Miri.

use std::mem::MaybeUninit;

use shmkit_runtime::{AlignedBuffer, ManagedExternalBuffer, ManagedHeapMemory};

#[repr(C, align(16))]
struct Raw([MaybeUninit<u8>; 4096]);

#[test]
fn probe_open_uninit_buffer() {
    let mut raw = Raw([MaybeUninit::uninit(); 4096]);
    let r = ManagedExternalBuffer::open(&mut raw.0);
    println!("{:?}", r.err());
}

#[test]
fn probe_from_image_uninit() {
    let raw = Raw([MaybeUninit::uninit(); 4096]);
    let r = ManagedHeapMemory::from_image(&raw.0[..]);
    println!("{:?}", r.err());
}

/// A real segment's image with uninitialised padding, its TYPES word pointed at an
/// object's padding: the type-record walk reads it before checking it is a record block.
#[test]
fn probe_pointer_into_padding() {
    let mut seg = ManagedHeapMemory::new(4096).unwrap();
    let p = seg.construct("a", [(1u8, 2u64); 8]).unwrap() as *const _ as usize;
    let off = p - seg.base_address().as_ptr() as usize;
    let mut buf = AlignedBuffer::from_image(seg.image());
    // words::TYPES = reserved[6]; the header's `reserved` offset via the named root word.
    let types = shmkit_test_support::internals::offsets::INDEX_LOCK + 6 * 8;
    let target = (off as u64 + 8).to_ne_bytes();
    for (i, b) in target.iter().enumerate() {
        buf[types + i] = MaybeUninit::new(*b);
    }
    let r = ManagedExternalBuffer::open(&mut buf);
    println!("{:?}", r.err());
}
