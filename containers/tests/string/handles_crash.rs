//! The crash sweep of the handles: every mutating operation of `Arc`, `Weak` and `Box`
//! (of segment strings, which own blocks of their own) is stopped at each of its steps in
//! turn (`crashes_at`, the containers' crash points), as a SIGKILL there would stop it.
//! After each stop every handle reads its value, no count is below the handles that hold
//! it (a count may be above: a leak, never a free under a live handle), a writable copy
//! of the segment validates every slot, and dropping everything leaves a sound segment.
//! Under Miri too, which would see a value read or freed after it was dropped.

use shmkit_containers::{Arc, ArcExt, Box, BoxExt, String, Weak, WeakExt};
use shmkit_runtime::__private::crash::crashes_at;
use shmkit_runtime::sync::Mutex;
use shmkit_runtime::{ManagedHeapMemory, ShmMut};
use shmkit_test_support::sweep;

use crate::arc::pair;

type Arcs = Mutex<[Arc<String>; 3]>;
type Weaks = Mutex<[Weak<String>; 2]>;
type Boxes = Mutex<[Box<String>; 2]>;

/// The handles, each as a guard in place.
struct Handles<'a> {
    arcs: std::vec::Vec<ShmMut<'a, Arc<String>>>,
    weaks: std::vec::Vec<ShmMut<'a, Weak<String>>>,
    boxes: std::vec::Vec<ShmMut<'a, Box<String>>>,
}

type Op = fn(&mut Handles<'_>);

/// On the start state: `arcs[0]` and `arcs[1]` share "first", `arcs[2]` holds "second",
/// `weaks[0]` aims at "first" and `weaks[1]` at "second"; the boxes hold "boxed" and
/// "other".
const OPS: &[(&str, Op)] = &[
    ("insert over a shared value", |h| {
        h.arcs[0].insert("new").unwrap()
    }),
    ("insert over the last Arc", |h| {
        h.arcs[2].insert("new").unwrap()
    }),
    ("clear the last Arc", |h| h.arcs[2].clear()),
    ("clear the last Arc and Weak", |h| {
        h.arcs[2].clear();
        h.weaks[1].clear();
    }),
    ("clear a shared Arc", |h| h.arcs[1].clear()),
    ("share", |h| {
        let (a, b) = pair(&mut h.arcs, 2, 0);
        a.share(b).unwrap();
    }),
    ("downgrade", |h| {
        h.weaks[1].downgrade_from(&h.arcs[0]).unwrap()
    }),
    ("upgrade", |h| h.arcs[2].upgrade_from(&h.weaks[0]).unwrap()),
    ("share a Weak", |h| {
        let (a, b) = pair(&mut h.weaks, 1, 0);
        a.share(b).unwrap();
    }),
    ("insert into a full box", |h| {
        h.boxes[0].insert("again").unwrap()
    }),
    ("take_with", |h| {
        h.boxes[0].take_with(|s| s.len());
    }),
    ("clear a box", |h| h.boxes[1].clear()),
    ("swap boxes", |h| {
        let (a, b) = h.boxes.split_at_mut(1);
        a[0].swap(&mut b[0]).unwrap();
    }),
];

fn fresh() -> ManagedHeapMemory {
    let seg = ManagedHeapMemory::new(if cfg!(miri) { 1 << 15 } else { 1 << 16 }).unwrap();
    seg.construct("arcs", Arcs::default()).unwrap();
    seg.construct("weaks", Weaks::default()).unwrap();
    seg.construct("boxes", Boxes::default()).unwrap();
    with_handles(&seg, |h| {
        h.arcs[0].insert("first").unwrap();
        let (a, b) = pair(&mut h.arcs, 1, 0);
        a.share(b).unwrap();
        h.arcs[2].insert("second").unwrap();
        h.weaks[0].downgrade_from(&h.arcs[0]).unwrap();
        h.weaks[1].downgrade_from(&h.arcs[2]).unwrap();
        h.boxes[0].insert("boxed").unwrap();
        h.boxes[1].insert("other").unwrap();
    });
    seg
}

/// Runs `f` on the handles of `seg`, each slot's guard from its lock.
fn with_handles<R>(seg: &ManagedHeapMemory, f: impl FnOnce(&mut Handles<'_>) -> R) -> R {
    let arcs = seg.find::<Arcs>("arcs").unwrap().unwrap();
    let weaks = seg.find::<Weaks>("weaks").unwrap().unwrap();
    let boxes = seg.find::<Boxes>("boxes").unwrap().unwrap();
    let (mut a, mut w, mut b) = (
        arcs.lock().unwrap(),
        weaks.lock().unwrap(),
        boxes.lock().unwrap(),
    );
    let (mut a, mut w, mut b) = (
        a.as_shm_mut().into_slice(),
        w.as_shm_mut().into_slice(),
        b.as_shm_mut().into_slice(),
    );
    f(&mut Handles {
        arcs: a.iter_mut().collect(),
        weaks: w.iter_mut().collect(),
        boxes: b.iter_mut().collect(),
    })
}

/// What a process after the crash checks: every value reads whole, and each count covers
/// the handles that hold it.
fn check(h: &Handles<'_>, at: &str) {
    for arc in &h.arcs {
        if let Some(s) = arc.get() {
            assert!(!s.is_empty(), "{at}");
            let holders = h.arcs.iter().filter(|other| arc.ptr_eq(other)).count();
            let weaks = h.weaks.iter().filter(|w| w.refers_to(arc)).count();
            assert!(arc.strong_count() >= holders, "{at}: too few strong counts");
            assert!(arc.weak_count() >= weaks, "{at}: too few weak counts");
        }
    }
    for b in &h.boxes {
        assert!(b.get().is_none_or(|s| !s.is_empty()), "{at}");
    }
}

#[test]
fn every_handle_operation_stopped_at_every_step_leaves_readable_counted_handles() {
    let mut steps = 0;
    for (i, &(what, op)) in OPS.iter().enumerate() {
        for n in sweep::steps(i as u32) {
            let mut seg = fresh();
            let finished = with_handles(&seg, |h| crashes_at(n, || op(h)));
            let at = format!("{what} stopped at step {n}");
            with_handles(&seg, |h| check(h, &at));
            sweep::revalidate::<Arcs>(&mut seg, "arcs").unwrap_or_else(|e| panic!("{at}: {e}"));
            sweep::revalidate::<Weaks>(&mut seg, "weaks").unwrap_or_else(|e| panic!("{at}: {e}"));
            sweep::revalidate::<Boxes>(&mut seg, "boxes").unwrap_or_else(|e| panic!("{at}: {e}"));
            assert!(seg.destroy::<Arcs>("arcs").unwrap());
            assert!(seg.destroy::<Weaks>("weaks").unwrap());
            assert!(seg.destroy::<Boxes>("boxes").unwrap());
            seg.check().unwrap_or_else(|e| panic!("{at}: {e}"));
            match finished {
                Ok(()) => {
                    assert!(seg.all_memory_deallocated(), "{what} leaked");
                    break;
                }
                Err(_) => steps += 1,
            }
            assert!(n < 100, "{what} never ran to its end");
        }
    }
    assert!(
        steps * sweep::STRIDE as usize > OPS.len(),
        "only {steps} steps swept"
    );
}
