//! `VecCursor` reads, writes and seeks as std's `io::Cursor<Vec<u8>>`, and a full segment
//! is an error that loses nothing.

use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};

use shmkit_containers::{Vec, VecExt};
use shmkit_runtime::sync::Mutex;
use shmkit_runtime::{AllocError, ManagedHeapMemory};
use shmkit_test_support::Rng;

/// Operations per sequence: thousands natively, fewer under Miri.
const OPS: usize = if cfg!(miri) { 200 } else { 5000 };

/// The kind of an error, or the value: what the two cursors must agree on.
fn outcome<T>(r: io::Result<T>) -> Result<T, io::ErrorKind> {
    r.map_err(|e| e.kind())
}

#[test]
fn a_cursor_reads_writes_and_seeks_as_std_cursor_does() {
    for seed in [0x5eed, 0xc0ffee, 7] {
        let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
        seg.construct("v", Vec::<u8>::new()).unwrap();
        let mut v = seg.find_mut::<Vec<u8>>("v").unwrap().unwrap();
        let mut cursor = v.cursor();
        let mut model = io::Cursor::new(std::vec::Vec::<u8>::new());
        let mut rng = Rng::new(seed);
        for step in 0..OPS {
            let (len, pos) = (model.get_ref().len() as i64, model.position() as i64);
            // A position from before the start to past the end, so that errors and gaps
            // come up too, but the vector grows slowly.
            let to = rng.range(0, len as u64 + 24) as i64 - 8;
            let n = rng.range(0, 24) as usize;
            match rng.range(0, 10) {
                0..=2 => {
                    let bytes: std::vec::Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                    assert_eq!(outcome(cursor.write(&bytes)), outcome(model.write(&bytes)));
                }
                3 => {
                    let to = to.max(0) as u64;
                    assert_eq!(
                        outcome(cursor.seek(SeekFrom::Start(to))),
                        outcome(model.seek(SeekFrom::Start(to)))
                    );
                }
                4 => assert_eq!(
                    outcome(cursor.seek(SeekFrom::Current(to - pos))),
                    outcome(model.seek(SeekFrom::Current(to - pos)))
                ),
                5 => assert_eq!(
                    outcome(cursor.seek(SeekFrom::End(to - len))),
                    outcome(model.seek(SeekFrom::End(to - len)))
                ),
                6 => {
                    let (mut got, mut want) = (vec![0; n], vec![0; n]);
                    assert_eq!(
                        outcome(cursor.read(&mut got)),
                        outcome(model.read(&mut want))
                    );
                    assert_eq!(got, want);
                }
                7 => {
                    let (mut got, mut want) = (vec![0; n], vec![0; n]);
                    let (a, b) = (cursor.read_exact(&mut got), model.read_exact(&mut want));
                    assert_eq!(outcome(a), outcome(b));
                    assert_eq!(got, want);
                }
                8 => {
                    let got = cursor.fill_buf().unwrap().to_vec();
                    assert_eq!(got, model.fill_buf().unwrap());
                    let n = n.min(got.len());
                    cursor.consume(n);
                    model.consume(n);
                }
                _ => {
                    let to = to.max(0) as u64;
                    cursor.set_position(to);
                    model.set_position(to);
                }
            }
            assert_eq!(
                cursor.position(),
                model.position(),
                "seed {seed:#x}, step {step}"
            );
            assert_eq!(cursor.stream_position().unwrap(), model.position());
            assert_eq!(
                cursor.get_ref().as_slice(),
                model.get_ref().as_slice(),
                "seed {seed:#x}, step {step}"
            );
        }
        assert!(seg.destroy::<Vec<u8>>("v").unwrap());
        assert!(seg.all_memory_deallocated());
    }
}

#[test]
fn a_full_segment_is_out_of_memory_and_loses_nothing_written() {
    let mut seg = ManagedHeapMemory::new(16 * 1024).unwrap();
    seg.construct("v", Vec::<u8>::new()).unwrap();
    let mut v = seg.find_mut::<Vec<u8>>("v").unwrap().unwrap();
    let mut cursor = v.cursor();
    let chunk = [0xab; 1000];
    let err = loop {
        if let Err(e) = cursor.write_all(&chunk) {
            break e;
        }
    };
    assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
    assert!(err.get_ref().unwrap().is::<AllocError>(), "{err:?}");
    let written = cursor.get_ref().len();
    assert!(written >= 1000 && written % 1000 == 0, "{written}");
    assert_eq!(cursor.position(), written as u64);
    assert!(cursor.get_ref().iter().all(|&b| b == 0xab));
    // A write that would overwrite the last bytes and extend past the end changes no byte.
    cursor.seek(SeekFrom::End(-10)).unwrap();
    let err = cursor.write(&[1; 10_000]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
    assert_eq!(cursor.position(), written as u64 - 10);
    assert_eq!(cursor.get_ref().len(), written);
    assert!(cursor.get_ref().iter().all(|&b| b == 0xab));
    // Within the length nothing needs room: overwriting works in a full segment.
    cursor.write_all(b"0123456789").unwrap();
    let v = cursor.into_inner();
    assert_eq!(v.len(), written);
    assert_eq!(&v[written - 10..], b"0123456789");
    assert!(v[..written - 10].iter().all(|&b| b == 0xab));
}

#[test]
fn a_position_beyond_usize_is_invalid_input_and_writes_nothing() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("v", Vec::<u8>::new()).unwrap();
    let mut v = seg.find_mut::<Vec<u8>>("v").unwrap().unwrap();
    let mut cursor = v.cursor();
    cursor.write_all(b"abc").unwrap();
    cursor.set_position(u64::MAX);
    assert_eq!(
        cursor.write(b"x").unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(cursor.read(&mut [0; 4]).unwrap(), 0, "a read past the end");
    assert_eq!(*cursor.get_ref(), *b"abc");
}

/// Under a lock guard, as any container's methods: and a vector outside every segment
/// cannot grow, which is an error too.
#[test]
fn a_cursor_works_under_a_lock_guard() {
    let seg = ManagedHeapMemory::new(1 << 16).unwrap();
    let log = seg.construct("log", Mutex::new(Vec::<u8>::new())).unwrap();
    writeln!(log.lock().unwrap().cursor(), "one {}", 1).unwrap();
    let mut guard = log.lock().unwrap();
    let mut cursor = guard.cursor();
    cursor.seek(SeekFrom::End(0)).unwrap();
    writeln!(cursor, "two {}", 2).unwrap();
    cursor.rewind().unwrap();
    let lines: std::vec::Vec<std::string::String> = cursor.lines().map(Result::unwrap).collect();
    assert_eq!(lines, ["one 1", "two 2"]);

    let outside = Mutex::new(Vec::<u8>::new());
    let err = outside.lock().unwrap().cursor().write(b"x").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
    assert!(outside.lock().unwrap().is_empty());
}
