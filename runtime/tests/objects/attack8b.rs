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

/// A real segment's image with padding, reopened after its TYPES word is pointed at the
/// padding of an object.
#[test]
fn probe_pointer_into_padding() {
    let mut seg = ManagedHeapMemory::new(4096).unwrap();
    let p = seg.construct("a", [(1u8, 2u64); 8]).unwrap() as *const _ as usize;
    let off = p - seg.base_address().as_ptr() as usize;
    let mut buf = AlignedBuffer::from_image(seg.image());
    // Find the TYPES word? Use the reserved words of the header: try each header word.
    let _ = off;
    let r = ManagedExternalBuffer::open(&mut buf);
    println!("{:?}", r.err());
}
