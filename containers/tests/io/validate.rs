//! Bytes from elsewhere: a `FixedBuf` found in a copy of its segment reads the same, and a
//! length above its capacity (which no write makes) is refused before it is handed out.

use core::fmt::Write;

use shmkit_containers::FixedBuf;
use shmkit_runtime::{AlignedBuffer, Error, ManagedExternalBuffer, ManagedHeapMemory};
use shmkit_test_support as support;

/// A heap segment holding "buf", a `FixedBuf<8>` with "abc" in it, and its offset.
fn segment() -> (ManagedHeapMemory, usize) {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    let at = seg.construct("buf", FixedBuf::<8>::new()).unwrap() as *const _ as usize
        - seg.base_address().as_ptr() as usize;
    write!(seg.find_mut::<FixedBuf<8>>("buf").unwrap().unwrap(), "abc").unwrap();
    (seg, at)
}

/// What a read-only copy of `seg` finds as "buf".
fn found(seg: &mut ManagedHeapMemory) -> Result<std::string::String, Error> {
    let image = AlignedBuffer::from_image(seg.image());
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    let buf = reader.find::<FixedBuf<8>>("buf")?.unwrap();
    Ok(std::string::String::from_utf8_lossy(buf.as_bytes()).into_owned())
}

#[test]
fn a_copy_of_the_segment_reads_the_buffer() {
    let (mut seg, _) = segment();
    assert_eq!(found(&mut seg).unwrap(), "abc");
    assert!(matches!(
        seg.find::<FixedBuf<16>>("buf"),
        Err(Error::TypeMismatch { .. })
    ));
}

#[test]
fn a_forged_length_beyond_the_capacity_is_refused() {
    let (mut seg, at) = segment();
    // A full buffer is fine: every byte is initialised, and any bytes are contents.
    support::corrupt(&mut seg, at, &8u64.to_ne_bytes());
    assert_eq!(found(&mut seg).unwrap(), "abc\0\0\0\0\0");
    support::corrupt(&mut seg, at, &9u64.to_ne_bytes());
    match found(&mut seg) {
        Err(Error::InvalidValue {
            field, expected, ..
        }) => {
            assert_eq!(field, "len");
            assert!(expected.contains("at most its capacity"), "{expected}");
        }
        other => panic!("{other:?}"),
    }
}
