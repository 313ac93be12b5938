//! `FixedBuf`: bytes written as std's `Cursor<&mut [u8]>` writes them, text all or
//! nothing, read back through std's readers, in derived structs and under a lock.

use std::io::{self, BufRead, Read, Seek, SeekFrom};

use shmkit_containers::{FixedBuf, Vec, VecExt};
use shmkit_macros::ShmSafe;
use shmkit_runtime::sync::Mutex;
use shmkit_runtime::ManagedHeapMemory;

#[test]
fn io_writes_what_fits_as_std_does_then_says_the_buffer_is_full() {
    use std::io::Write;
    let seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("buf", FixedBuf::<8>::new()).unwrap();
    let mut seg = seg;
    let mut buf = seg.find_mut::<FixedBuf<8>>("buf").unwrap().unwrap();
    let mut std_bytes = [0u8; 8];
    let mut model = io::Cursor::new(&mut std_bytes[..]);
    for chunk in [&b"0123"[..], b"", b"456", b"789", b"x"] {
        let (got, want) = (buf.write_all(chunk), model.write_all(chunk));
        assert_eq!(
            got.as_ref().map_err(|e| e.kind()),
            want.as_ref().map_err(|e| e.kind())
        );
        assert_eq!(
            buf.as_bytes(),
            &model.get_ref()[..model.position() as usize]
        );
        if let Err(e) = got {
            assert_eq!(e.kind(), io::ErrorKind::WriteZero);
            assert_eq!(e.to_string(), "the FixedBuf of 8 bytes is full");
        }
    }
    assert_eq!(buf.as_bytes(), b"01234567");
    assert_eq!(
        buf.write(b"").unwrap(),
        0,
        "an empty write fits even when full"
    );
    // Cleared, it takes the bytes again; an `io::Write` `write!` writes what fits.
    buf.clear();
    assert!(buf.is_empty());
    assert!(write!(buf, "{}", 1234567890).is_err());
    assert_eq!(buf.as_bytes(), b"12345678");
    assert_eq!((buf.len(), buf.capacity()), (8, 8));
}

#[test]
fn a_failed_fmt_write_leaves_the_buffer_as_it_was() {
    use core::fmt::Write;
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("buf", FixedBuf::<8>::new()).unwrap();
    let mut buf = seg.find_mut::<FixedBuf<8>>("buf").unwrap().unwrap();
    write!(buf, "{}-{}", 12, 34).unwrap();
    // Two pieces: the first fits, the second does not, and the first is taken back.
    let (n, word) = (5, "six");
    assert!(write!(buf, "{n}{word}").is_err());
    assert_eq!(buf.as_str().unwrap(), "12-34");
    // A character is never cut: 'é' takes two bytes, and only one is left after "ab".
    buf.write_str("ab").unwrap();
    assert!(buf.write_char('é').is_err());
    assert_eq!(buf.as_str().unwrap(), "12-34ab");
    buf.write_char('!').unwrap();
    assert_eq!(buf.as_str().unwrap(), "12-34ab!");
    assert!(buf.write_str("").is_ok(), "nothing fits in a full buffer");
    buf.truncate(2);
    assert_eq!(format!("{:?}", *buf), r#"FixedBuf<8>(b"12")"#);
    buf.truncate(5);
    assert_eq!(buf.as_bytes(), b"12");
}

#[test]
fn bytes_that_are_not_text_are_an_error_of_as_str_and_read_back_through_std_readers() {
    use std::io::Write;
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("buf", FixedBuf::<32>::new()).unwrap();
    let mut buf = seg.find_mut::<FixedBuf<32>>("buf").unwrap().unwrap();
    writeln!(buf, "10 20").unwrap();
    writeln!(buf, "30").unwrap();
    let mut reader = io::Cursor::new(buf.as_bytes());
    let lines: std::vec::Vec<std::string::String> =
        (&mut reader).lines().map(Result::unwrap).collect();
    assert_eq!(lines, ["10 20", "30"]);
    reader.seek(SeekFrom::Start(3)).unwrap();
    let mut two = [0; 2];
    reader.read_exact(&mut two).unwrap();
    assert_eq!(&two, b"20");
    buf.write_all(&[0xff]).unwrap();
    assert_eq!(buf.as_str().unwrap_err().valid_up_to(), 9);
}

/// A record of plain data: the whole record derefs mutably through its guard.
#[derive(ShmSafe)]
#[shm(crate = "crate::shm")]
#[repr(C)]
struct Record {
    id: u32,
    line: FixedBuf<16>,
}

/// A position-dependent struct: its buffer is reached through the derived accessor.
#[derive(ShmSafe)]
#[shm(crate = "crate::shm")]
#[repr(C)]
struct Log {
    lines: Vec<u32>,
    last: FixedBuf<16>,
}

#[test]
fn a_buffer_in_a_derived_struct_and_under_a_lock_takes_write() {
    use core::fmt::Write;
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct(
        "record",
        Record {
            id: 7,
            line: FixedBuf::new(),
        },
    )
    .unwrap();
    let mut record = seg.find_mut::<Record>("record").unwrap().unwrap();
    let id = record.id;
    write!(record.line, "id {id}").unwrap();
    assert_eq!(record.line.as_str().unwrap(), "id 7");

    seg.construct(
        "log",
        Log {
            lines: Vec::new(),
            last: FixedBuf::new(),
        },
    )
    .unwrap();
    let mut log = seg.find_mut::<Log>("log").unwrap().unwrap();
    log.lines_mut().push(3).unwrap();
    let n = log.lines.len();
    write!(log.last_mut(), "{n} line").unwrap();
    assert_eq!(log.last.as_str().unwrap(), "1 line");

    let shared = seg
        .construct("shared", Mutex::new(FixedBuf::<16>::new()))
        .unwrap();
    write!(shared.lock().unwrap(), "{:>4}", 42).unwrap();
    assert!(write!(shared.lock().unwrap(), "{:>13}", 0).is_err());
    assert_eq!(shared.lock().unwrap().as_str().unwrap(), "  42");
}
