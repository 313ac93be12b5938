//! Objects shared between real processes. The other processes are the helper binary
//! `shmkit-test-child` (its roles `objects-*`, in `tests/bin/child/objects.rs`).
//!
//! - a child finds and reads the objects its parent constructed, and constructs a reply,
//!   but cannot destroy what the parent may be reading (`InUse`);
//! - processes racing `find_or_construct` on one name get one object, built once;
//! - a process killed holding the index lock (inside `atomic_func`) or in the middle of
//!   constructing an array does not block the others, and leaves no half-built object;
//! - a child that finds objects (without the index lock) while its parent constructs them,
//!   grows the table and undoes constructions reads every object whole and exact.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shmkit_test_support as support;
use support::{within, ChildProc, FileTarget, Seg, ShmTarget, Target};

use crate::child;

const SIZE: usize = 256 * 1024;
const CHILD_LIMIT: Duration = Duration::from_secs(20);

// ----- a child reads what its parent constructed -------------------------------------------

fn child_reads_the_parents_objects<T: Target>() {
    let t = T::new();
    let seg = Seg::<T>::create(t.name(), SIZE).unwrap();
    seg.construct("answer", 42u64).unwrap();
    seg.construct_array_with("squares", 50, |i| (i * i) as u32)
        .unwrap();
    seg.construct_unique(-7i64).unwrap();
    let mut c = child(&t, "objects-verify", &[]);
    assert_eq!(c.expect_message(CHILD_LIMIT), "done");
    c.assert_success(CHILD_LIMIT);
    assert_eq!(seg.find::<u64>("reply").unwrap(), Some(&u64::from(c.pid())));
    assert_eq!(seg.find_slice::<u32>("squares").unwrap().unwrap().len(), 50);
    assert_eq!(seg.num_named_objects(), 3);
}

#[test]
fn a_child_finds_and_reads_objects_its_parent_constructed_shm() {
    child_reads_the_parents_objects::<ShmTarget>();
}

#[test]
fn a_child_finds_and_reads_objects_its_parent_constructed_file() {
    child_reads_the_parents_objects::<FileTarget>();
}

// ----- racing find_or_construct ------------------------------------------------------------

#[test]
fn processes_racing_find_or_construct_get_one_object_built_once() {
    const CHILDREN: usize = 3;
    const ROUNDS: usize = 30;
    let t = ShmTarget::new();
    let seg = Seg::<ShmTarget>::create(t.name(), SIZE).unwrap();
    let mut kids: Vec<ChildProc> = (0..CHILDREN)
        .map(|_| child(&t, "objects-race", &[("SHMKIT_ROUNDS", ROUNDS.to_string())]))
        .collect();
    for k in &mut kids {
        k.release();
    }
    let mut builders = vec![Vec::new(); ROUNDS];
    let mut seen = vec![Vec::new(); ROUNDS];
    for k in &mut kids {
        for _ in 0..ROUNDS {
            let msg = k.expect_message(CHILD_LIMIT);
            let f: Vec<u64> = msg.split(' ').map(|x| x.parse().unwrap()).collect();
            let round = f[0] as usize;
            if f[1] == 1 {
                builders[round].push(k.pid());
            }
            seen[round].push((f[2], f[3]));
        }
    }
    for k in &mut kids {
        k.assert_success(CHILD_LIMIT);
    }
    for round in 0..ROUNDS {
        assert_eq!(
            builders[round].len(),
            1,
            "round {round}: builders {:?}",
            builders[round]
        );
        let first = seen[round][0];
        assert!(
            seen[round].iter().all(|&s| s == first),
            "round {round}: {:?}",
            seen[round]
        );
        assert_eq!(
            first.0,
            u64::from(builders[round][0]),
            "the builder's value"
        );
        let obj = seg.find::<u64>(format!("racer_{round}").as_str()).unwrap();
        assert_eq!(obj, Some(&first.0));
    }
    assert_eq!(seg.num_named_objects(), ROUNDS);
}

// ----- killed processes -------------------------------------------------------------------

fn killed_holding_the_index_lock<T: Target>()
where
    Seg<T>: Send + Sync,
{
    let t = T::new();
    let seg = Arc::new(Seg::<T>::create(t.name(), SIZE).unwrap());
    seg.construct("before", 1u64).unwrap();
    let mut c = child(&t, "objects-hold-index-lock", &[]);
    assert_eq!(c.expect_message(CHILD_LIMIT), "locked");

    // Raw allocation goes on while another process is inside atomic_func...
    let s = Arc::clone(&seg);
    let raw = within(Duration::from_secs(5), "raw allocation", move || {
        s.allocate(100)
            .map(|p| s.handle_from_address(p.as_ptr()).unwrap())
    })
    .unwrap();
    // ...but a find waits for it.
    let (tx, rx) = std::sync::mpsc::channel();
    let s = Arc::clone(&seg);
    std::thread::spawn(move || {
        let _ = tx.send(s.find::<u64>("made_inside").map(|v| v.copied()));
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "a find went through while another process held the index lock"
    );
    assert!(!c.kill().success());
    let started = Instant::now();
    let found = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the waiting find hangs after the lock holder died")
        .expect("the waiting find fails after the lock holder died");
    eprintln!(
        "{}: index lock recovered {:?} after the kill",
        T::KIND,
        started.elapsed()
    );
    // The object the dead process had finished constructing is there, counted, listed.
    assert_eq!(found, Some(5));
    assert_eq!(seg.num_named_objects(), 2);
    assert_eq!(seg.named_objects().unwrap().count(), 2);
    assert!(seg.check_sanity(), "{:?}", seg.check());
    seg.construct("after", 3u64).unwrap();
    assert_eq!(seg.find::<u64>("before").unwrap(), Some(&1));
    // SAFETY: allocated above, not used afterwards.
    unsafe {
        seg.deallocate(seg.address_from_handle(raw).unwrap())
            .unwrap()
    };
}

#[test]
fn a_process_killed_inside_atomic_func_does_not_block_the_others_shm() {
    killed_holding_the_index_lock::<ShmTarget>();
}

#[test]
fn a_process_killed_inside_atomic_func_does_not_block_the_others_file() {
    killed_holding_the_index_lock::<FileTarget>();
}

#[test]
fn a_process_killed_while_constructing_leaves_no_half_built_object() {
    let t = ShmTarget::new();
    let mut seg = Seg::<ShmTarget>::create(t.name(), SIZE).unwrap();
    seg.construct("mine", 9u64).unwrap();
    let mut c = child(&t, "objects-die-while-constructing", &[]);
    assert_eq!(c.expect_message(CHILD_LIMIT), "building");
    assert!(
        seg.free_memory() < SIZE - 8000,
        "the child's array is allocated"
    );
    assert!(!c.kill().success());

    // The next lock holder rebuilds the index: the half-built array is gone, its memory
    // back, its name free.
    assert_eq!(seg.find_slice::<u64>("half").unwrap(), None);
    assert_eq!(seg.num_named_objects(), 1);
    assert_eq!(seg.construct_array("half", 3, 1u64).unwrap(), &[1, 1, 1]);
    assert!(seg.destroy::<u64>("half").unwrap());
    assert!(seg.destroy::<u64>("mine").unwrap());
    assert!(seg.all_memory_deallocated(), "the half-built array leaked");
    assert!(seg.check_sanity());
}

// ----- finding while another process constructs ----------------------------------------------

/// Yields one element but claims three: the construction is undone.
struct Short(bool);
impl Iterator for Short {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        (!std::mem::replace(&mut self.0, true)).then_some(u64::MAX)
    }
}
impl ExactSizeIterator for Short {
    fn len(&self) -> usize {
        3
    }
}

fn child_finds_while_the_parent_constructs<T: Target>() {
    const OBJECTS: usize = 3000;
    let t = T::new();
    let mut seg = Seg::<T>::create(t.name(), 1 << 20).unwrap();
    let mut c = child(
        &t,
        "objects-find-while-constructed",
        &[("SHMKIT_OBJECTS", OBJECTS.to_string())],
    );
    assert_eq!(c.expect_message(CHILD_LIMIT), "ready");
    c.release();
    for j in 0..OBJECTS {
        let name = format!("grow_{j}");
        seg.construct_array_with(name.as_str(), 1 + j % 4, |i| (j as u64) << 32 | i as u64)
            .unwrap();
        if j % 16 == 0 {
            // Slow enough that the child makes passes in between.
            std::thread::sleep(Duration::from_micros(200));
        }
        if j % 64 == 0 {
            let undone =
                seg.construct_from_iter(format!("undone_{}", j / 64 % 8).as_str(), Short(false));
            assert!(matches!(
                undone,
                Err(shmkit_runtime::Error::IteratorTooShort { .. })
            ));
        }
    }
    let report = c.expect_message(CHILD_LIMIT);
    assert!(report.starts_with("found all"), "{report}");
    c.assert_success(CHILD_LIMIT);
    eprintln!("{}: the child {report}", T::KIND);
    seg.check().unwrap();
    // Alone now: destroying gives back every object, and the tables and undone entries
    // retired while the child could have been reading them.
    for j in 0..OBJECTS {
        assert!(seg.destroy::<u64>(format!("grow_{j}").as_str()).unwrap());
    }
    assert!(seg.all_memory_deallocated());
}

#[test]
fn a_child_finds_whole_objects_while_its_parent_constructs_them_shm() {
    child_finds_while_the_parent_constructs::<ShmTarget>();
}

#[test]
fn a_child_finds_whole_objects_while_its_parent_constructs_them_file() {
    child_finds_while_the_parent_constructs::<FileTarget>();
}
