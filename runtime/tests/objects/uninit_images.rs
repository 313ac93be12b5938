//! Regression tests from attack 8b, for Miri: opening bytes that are (partly)
//! uninitialised. Safe code can no longer lend a segment bytes that nobody initialised:
//! a writable segment takes an `AlignedBuffer` (zeroed when made, written only by shmkit),
//! an image is plain bytes, a segment's own image or an `AlignedBuffer`. The forms that
//! took any `[MaybeUninit<u8>]` no longer compile: the `compile_fail` examples on
//! `ManagedExternalBuffer`, `ImageBytes` and `AlignedBuffer` keep them out.

use shmkit_runtime::{
    AlignedBuffer, Error, ManagedExternalBuffer, ManagedHeapMemory, OrderedIndex,
};
use shmkit_test_support::{corrupt, offsets};

/// `open` took `&mut [MaybeUninit<u8>]`, which safe code can fill with nothing, and the
/// header check read it as `u32`/`u64` (Miri: uninitialised memory at
/// `header::read_word`). Every buffer safe code can make or receive now opens, on every
/// path, as an error when it holds no segment, reading only initialised bytes (Miri).
#[test]
fn opening_an_uninitialised_buffer_is_an_error_not_undefined_behaviour() {
    const LEN: usize = 4096;
    let mut heap = ManagedHeapMemory::new(LEN).unwrap();
    heap.construct("p", [(1u8, 2u64); 8]).unwrap();
    // A segment's image with padding, cut short: its words are still where they were.
    let mut cut = AlignedBuffer::from_image(heap.image());
    cut.truncate(LEN / 2);
    let buffers = [
        ("new", AlignedBuffer::new(LEN)),
        ("try_new", AlignedBuffer::try_new(LEN).unwrap()),
        ("from bytes", AlignedBuffer::from(&[0u8; LEN][..])),
        (
            "read_from",
            AlignedBuffer::read_from(&[0u8; LEN][..], LEN).unwrap(),
        ),
        ("a cut image", cut),
    ];
    for (what, mut buf) in buffers {
        assert!(ManagedHeapMemory::from_image(&buf).is_err(), "{what}");
        let read_only = ManagedExternalBuffer::options().read_only().open(&buf);
        assert!(read_only.is_err(), "{what}");
        assert!(ManagedExternalBuffer::open(&mut buf).is_err(), "{what}");
    }
}

/// A real image whose padding stays uninitialised, with only the head of the type-record
/// list forged (to an object's padding): the record walk reads it before checking it is a
/// record block (Miri: `objects/types.rs` `read`, an uninitialised `Record`).
#[test]
fn a_type_list_pointing_into_padding_is_refused_without_reading_it() {
    let mut seg = ManagedHeapMemory::new(4096).unwrap();
    let a = seg.construct("a", [(1u8, 2u64); 8]).unwrap() as *const _ as usize;
    let padding = a - seg.base_address().as_ptr().addr() + 8;
    let types = offsets::INDEX_LOCK + 6 * 8;
    corrupt(&mut seg, types, &(padding as u64).to_ne_bytes());
    let mut buf = AlignedBuffer::from_image(seg.image());
    assert!(ManagedExternalBuffer::open(&mut buf).is_err());
}

/// An index root forged to a used block that is no entry: a raw allocation (or a
/// container's elements) whose first bytes are padding. Its block header does not mark it
/// as an entry, so the check refuses it before reading anything in it (Miri).
#[test]
fn a_root_naming_a_block_that_starts_with_padding_is_refused_without_reading_it() {
    let mut seg = ManagedHeapMemory::options()
        .index::<OrderedIndex>()
        .create(16 * 1024)
        .unwrap();
    seg.construct("a", 1u64).unwrap();
    let p = seg.allocate(64).unwrap();
    // SAFETY: a fresh block of 64 bytes, aligned for the elements.
    unsafe { p.as_ptr().cast::<[(u8, u64); 4]>().write([(1, 2); 4]) };
    let block = (p.as_ptr().addr() - seg.base_address().as_ptr().addr()) as u64;
    corrupt(&mut seg, offsets::NAMED_ROOT, &block.to_ne_bytes());
    let mut image = AlignedBuffer::from_image(seg.image());
    let opened = ManagedExternalBuffer::options()
        .index::<OrderedIndex>()
        .open(&mut image);
    assert!(matches!(opened, Err(Error::Corrupted { .. })), "{opened:?}");
}

/// The same root forged to a raw allocation whose first bytes are padding, and that
/// block's header forged to carry `ENTRY` (bit 2) too: the mark is a byte like any other,
/// and an entry header read there would be padding (attack 8: Miri, uninitialised memory
/// read as `Entry`). Safe code cannot forge such bytes: a copy of a segment in place, or a
/// buffer a writable segment used, may hold uninitialised bytes and refuses
/// `write_all_at`. Bytes from outside (a file, a pipe) are initialised: edited there, the
/// same forgery is refused at open, reading only initialised bytes.
#[test]
fn a_forged_entry_mark_on_a_block_that_starts_with_padding_is_refused_without_reading_it() {
    let mut seg = ManagedHeapMemory::options()
        .index::<OrderedIndex>()
        .create(16 * 1024)
        .unwrap();
    seg.construct("a", 1u64).unwrap();
    let p = seg.allocate(256).unwrap();
    // SAFETY: a fresh block of 256 bytes, aligned for the elements.
    unsafe { p.as_ptr().cast::<[(u8, u64); 16]>().write([(1, 2); 16]) };
    let block = (p.as_ptr().addr() - seg.base_address().as_ptr().addr()) as u64;
    // The block's header: 264 bytes (256 + the header word, 8-byte granules), used, the
    // block before it used, marked as an entry.
    let header: u64 = 264 | 4;
    let forge = |image: &mut AlignedBuffer| {
        image
            .write_all_at(&block.to_ne_bytes(), offsets::NAMED_ROOT)
            .and_then(|()| image.write_all_at(&header.to_ne_bytes(), block as usize - 8))
    };
    let mut copy = AlignedBuffer::from_image(seg.image());
    let refused = forge(&mut copy).unwrap_err();
    assert_eq!(
        refused.kind(),
        std::io::ErrorKind::InvalidInput,
        "{refused}"
    );
    let mut used = AlignedBuffer::new(16 * 1024);
    drop(ManagedExternalBuffer::create(&mut used).unwrap());
    assert!(
        forge(&mut used).is_err(),
        "a buffer a writable segment used"
    );
    if cfg!(miri) {
        return; // No descriptors under Miri's isolation.
    }
    let mut file = std::fs::File::from(
        rustix::fs::memfd_create("image", rustix::fs::MemfdFlags::CLOEXEC).unwrap(),
    );
    seg.write_image_to(&file).unwrap();
    std::io::Seek::rewind(&mut file).unwrap();
    let mut received = AlignedBuffer::read_from(&file, seg.size()).unwrap();
    forge(&mut received).unwrap();
    let opened = ManagedExternalBuffer::options()
        .index::<OrderedIndex>()
        .open(&mut received);
    assert!(matches!(opened, Err(Error::Corrupted { .. })), "{opened:?}");
}
