//! `SeqLock<T>`: reads never see a torn value while threads write, writers exclude each
//! other, a forged unfinished write is detected and repaired, and what `Debug` shows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shmkit_runtime::sync::{LockError, PoisonCause, ReadError, SeqLock, LIVENESS_POLL};
use shmkit_runtime::{Error, ManagedHeapMemory};

fn rounds(normal: u64) -> u64 {
    if cfg!(miri) {
        50
    } else {
        normal
    }
}

/// Words that a write sets all to one value: a copy whose words differ is torn.
type Pattern = [u64; 16];

fn assert_whole(v: &Pattern) -> u64 {
    assert!(v.iter().all(|w| *w == v[0]), "torn read: {v:?}");
    v[0]
}

#[test]
fn reads_see_what_was_written() {
    let s = SeqLock::new(1u64);
    assert_eq!(s.read(), Ok(1));
    s.write(2).unwrap();
    assert_eq!(s.try_read(), Some(2));
    assert_eq!(s.update(|v| std::mem::replace(v, 3)).unwrap(), 2);
    let mut g = s.lock().unwrap();
    *g += 1;
    assert_eq!(
        s.read(),
        Ok(3),
        "a guard's change is private until it drops"
    );
    drop(g);
    assert_eq!(s.read_timeout(Duration::from_secs(1)), Ok(4));
    assert_eq!(SeqLock::<[i32; 3]>::default().read(), Ok([0; 3]));
    assert!(!s.is_poisoned());
}

/// 100,000 reads (4 threads) while a writer writes patterned values: every copy is whole,
/// and each reader sees the values in the order written.
fn readers_never_see_a_torn_value(s: &SeqLock<Pattern>) {
    let reads_per_thread = rounds(25_000);
    let done = AtomicBool::new(false);
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                i += 1;
                s.write([i; 16]).unwrap();
            }
        });
        let readers: Vec<_> = (0..4)
            .map(|_| {
                sc.spawn(|| {
                    let mut last = 0;
                    for _ in 0..reads_per_thread {
                        let v = assert_whole(&s.read().unwrap());
                        assert!(v >= last, "went back from {last} to {v}");
                        last = v;
                        if let Some(v) = s.try_read() {
                            assert_whole(&v);
                        }
                    }
                })
            })
            .collect();
        let results: Vec<_> = readers.into_iter().map(|r| r.join()).collect();
        // Stops the writer before a reader's failure is reported (or the scope would wait
        // for it forever).
        done.store(true, Ordering::Relaxed);
        for r in results {
            if let Err(panic) = r {
                std::panic::resume_unwind(panic);
            }
        }
    });
}

#[test]
fn readers_never_see_a_torn_value_in_a_segment() {
    let seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    let s = seg
        .construct::<SeqLock<Pattern>>("s", SeqLock::new([0; 16]))
        .unwrap();
    readers_never_see_a_torn_value(s);
}

/// The same outside segments: what Miri checks with its weak-memory emulation on
/// (`MIRIFLAGS=-Zmiri-permissive-provenance cargo +nightly miri test -p shmkit-runtime
/// --test sync -- outside_segments`), which segments cannot have yet (see `.ci/miri`).
#[test]
fn readers_never_see_a_torn_value_outside_segments() {
    readers_never_see_a_torn_value(&SeqLock::new([0; 16]));
}

#[test]
fn writers_exclude_each_other() {
    let s = SeqLock::new([0u64; 4]);
    let per_thread = rounds(10_000);
    std::thread::scope(|sc| {
        for _ in 0..3 {
            sc.spawn(|| {
                for _ in 0..per_thread {
                    s.update(|v| {
                        v[0] += 1;
                        v[3] = v[0];
                    })
                    .unwrap();
                }
            });
        }
    });
    assert_eq!(s.read(), Ok([3 * per_thread, 0, 0, 3 * per_thread]));
}

#[test]
fn writing_while_holding_the_guard_is_an_error_not_a_hang() {
    let s = SeqLock::new(0u32);
    let _g = s.lock().unwrap();
    match s.write(1) {
        Err(Error::WouldDeadlock { .. }) => {}
        other => panic!("expected WouldDeadlock, got {other:?}"),
    }
    assert!(matches!(
        s.update(|_| ()),
        Err(LockError::Failed(Error::WouldDeadlock { .. }))
    ));
}

/// The bytes of a `SeqLock<u64>` whose write lock is free and whose sequence is odd: what a
/// writer leaves when it dies mid-write and its lock is then released (a private copy of a
/// segment), or forged bytes.
fn unfinished_write(value: u64) -> SeqLock<u64> {
    // Lock word, poison word, sequence, padding, the value: `repr(C)`, any bytes valid.
    let words: [u32; 6] = [0, 0, 7, 0, value as u32, (value >> 32) as u32];
    // SAFETY: `SeqLock<u64>` is 24 bytes of atomics, padding and a `u64`, any bits valid.
    unsafe { std::mem::transmute(words) }
}

#[test]
fn an_unfinished_write_is_reported_to_readers_and_repaired_by_the_next_writer() {
    let s = unfinished_write(5);
    let started = Instant::now();
    assert_eq!(s.read(), Err(ReadError::WriterDied));
    assert!(
        started.elapsed() >= LIVENESS_POLL,
        "looked at the writer too soon"
    );
    assert_eq!(s.try_read(), None);
    assert_eq!(
        s.read_timeout(Duration::from_millis(1)),
        Err(ReadError::TimedOut)
    );
    assert!(s.is_poisoned());
    let err: Error = ReadError::WriterDied.into();
    assert!(err.to_string().contains("next write"), "{err}");

    let Err(LockError::Poisoned(p)) = s.lock() else {
        panic!("the next writer must be told");
    };
    assert_eq!(p.cause(), PoisonCause::OwnerDied);
    assert_eq!(**p.get_ref(), 5);
    drop(p);
    assert_eq!(s.read(), Ok(5), "publishing made the sequence even");

    let s = unfinished_write(5);
    s.write(6).unwrap();
    assert!(!s.is_poisoned());
    assert_eq!(s.read(), Ok(6));
}

#[test]
fn a_thread_that_exits_holding_the_write_lock_poisons_it_but_tears_nothing() {
    static S: SeqLock<u64> = SeqLock::new(8);
    // `join`, not a scope: the thread's exit gives its owner id back.
    std::thread::spawn(|| std::mem::forget(S.lock().unwrap()))
        .join()
        .unwrap();
    assert_eq!(
        S.read(),
        Ok(8),
        "readers are not held up by a writer that is not writing"
    );
    let Err(LockError::Poisoned(p)) = S.lock() else {
        panic!("a dead writer poisons the lock");
    };
    assert_eq!(p.cause(), PoisonCause::OwnerDied);
    drop(p);
    assert!(!S.is_poisoned());
}

#[test]
fn debug_shows_the_lock_the_sequence_and_the_value() {
    let s = SeqLock::new(5u16);
    s.write(6).unwrap();
    let shown = format!("{s:?}");
    assert!(
        shown.contains("held_by: None") && shown.contains("seq: 2") && shown.contains("value: 6"),
        "{shown}"
    );
    let g = s.lock().unwrap();
    assert!(format!("{s:?}").contains("this thread"));
    assert_eq!(format!("{g:?}"), "6");
    drop(g);
    let shown = format!("{:?}", unfinished_write(1));
    assert!(shown.contains("<being written>"), "{shown}");
}
