//! `Arc` and `Weak` against std's (seeded random operations on slots in one segment):
//! values shared in place, counted, upgraded while they are there, dropped with their last
//! `Arc`, and their blocks freed with their last handle.

use shmkit_containers::{Arc, ArcError, ArcExt, String, StringExt, Vec, VecExt, Weak, WeakExt};
use shmkit_macros::ShmSafe;
use shmkit_runtime::sync::Mutex;
use shmkit_runtime::{AllocErrorKind, ManagedHeapMemory, ShmMut};
use shmkit_test_support::Rng;

use crate::model::OPS;

/// Slots of each kind in the model.
const SLOTS: usize = 4;

/// Random operations on `SLOTS` `Arc<String>` slots and as many `Weak` slots, and on std
/// `Option<Arc<std::string::String>>`/`Weak` models of them: after every step each slot
/// holds the same text with the same counts, and shares with the same slots.
fn run(
    arcs: &mut [ShmMut<'_, Arc<String>>],
    weaks: &mut [ShmMut<'_, Weak<String>>],
    seed: u64,
    ops: usize,
) {
    use std::sync::{Arc as StdArc, Weak as StdWeak};

    let mut rng = Rng::new(seed);
    let mut model_arcs: std::vec::Vec<Option<StdArc<std::string::String>>> = vec![None; SLOTS];
    let mut model_weaks: std::vec::Vec<Option<StdWeak<std::string::String>>> = vec![None; SLOTS];
    for step in 0..ops {
        let (i, j) = (
            rng.range(0, SLOTS as u64) as usize,
            rng.range(0, SLOTS as u64) as usize,
        );
        match rng.range(0, 8) {
            0 => {
                let text = format!("v{step}");
                arcs[i].insert(text.as_str()).unwrap();
                model_arcs[i] = Some(StdArc::new(text));
            }
            1 | 2 => {
                if i != j {
                    let (a, b) = pair(arcs, i, j);
                    a.share(b).unwrap();
                    model_arcs[i] = model_arcs[j].clone();
                }
            }
            3 => {
                arcs[i].clear();
                model_arcs[i] = None;
            }
            4 => {
                weaks[i].downgrade_from(&arcs[j]).unwrap();
                model_weaks[i] = model_arcs[j].as_ref().map(StdArc::downgrade);
            }
            5 => {
                let upgraded = model_weaks[j].as_ref().and_then(StdWeak::upgrade);
                match arcs[i].upgrade_from(&weaks[j]) {
                    Ok(()) => model_arcs[i] = Some(upgraded.expect("std upgrades too")),
                    Err(e) => assert_eq!((e, upgraded), (ArcError::Gone, None)),
                }
            }
            6 => {
                if i != j {
                    let (a, b) = pair(weaks, i, j);
                    a.share(b).unwrap();
                    model_weaks[i] = model_weaks[j].clone();
                }
            }
            _ => {
                let text = format!("+{step}");
                match (
                    arcs[i].value_mut(),
                    model_arcs[i].as_mut().and_then(StdArc::get_mut),
                ) {
                    (Some(mut s), Some(m)) => {
                        s.push_str(&text).unwrap();
                        m.push_str(&text);
                    }
                    (None, None) => {}
                    (ours, std) => panic!(
                        "step {step}: value_mut {:?} vs get_mut {std:?}",
                        ours.map(|s| s.to_string())
                    ),
                }
                if rng.range(0, 4) == 0 {
                    weaks[i].clear();
                    model_weaks[i] = None;
                }
            }
        }
        for k in 0..SLOTS {
            let (arc, model) = (&arcs[k], &model_arcs[k]);
            let what = format!("step {step} slot {k} (seed {seed:#x})");
            assert_eq!(
                arc.get().map(|s| s.as_str()),
                model.as_deref().map(|s| s.as_str()),
                "{what}"
            );
            assert_eq!(
                arc.strong_count(),
                model.as_ref().map_or(0, StdArc::strong_count),
                "{what}"
            );
            assert_eq!(
                arc.weak_count(),
                model.as_ref().map_or(0, StdArc::weak_count),
                "{what}"
            );
            let (weak, model_weak) = (&weaks[k], &model_weaks[k]);
            assert_eq!(
                weak.strong_count(),
                model_weak.as_ref().map_or(0, StdWeak::strong_count),
                "{what}"
            );
            for l in 0..SLOTS {
                let shared = match (model, &model_arcs[l]) {
                    (Some(a), Some(b)) => StdArc::ptr_eq(a, b),
                    (a, b) => a.is_none() && b.is_none(),
                };
                assert_eq!(arc.ptr_eq(&arcs[l]), shared, "{what} with {l}");
            }
        }
    }
}

/// Slot `i` mutably and slot `j` shared, `i != j`.
pub(crate) fn pair<'s, 'g, T>(
    slots: &'s mut [ShmMut<'g, T>],
    i: usize,
    j: usize,
) -> (&'s mut ShmMut<'g, T>, &'s ShmMut<'g, T>) {
    if i < j {
        let (low, high) = slots.split_at_mut(j);
        (&mut low[i], &high[0])
    } else {
        let (low, high) = slots.split_at_mut(i);
        (&mut high[0], &low[j])
    }
}

#[test]
fn random_operations_match_std_arc_and_weak() {
    for seed in [0xa5c, 7, 0xfeed_f00d] {
        let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
        {
            let arcs = seg
                .construct(
                    "arcs",
                    Mutex::new(core::array::from_fn::<_, SLOTS, _>(|_| {
                        Arc::<String>::new()
                    })),
                )
                .unwrap();
            let weaks = seg
                .construct(
                    "weaks",
                    Mutex::new(core::array::from_fn::<_, SLOTS, _>(|_| {
                        Weak::<String>::new()
                    })),
                )
                .unwrap();
            let (mut arcs, mut weaks) = (arcs.lock().unwrap(), weaks.lock().unwrap());
            let (mut arcs, mut weaks) = (
                arcs.as_shm_mut().into_slice(),
                weaks.as_shm_mut().into_slice(),
            );
            let mut arcs: std::vec::Vec<_> = arcs.iter_mut().collect();
            let mut weaks: std::vec::Vec<_> = weaks.iter_mut().collect();
            run(&mut arcs, &mut weaks, seed, OPS);
        }
        assert!(seg.destroy::<Mutex<[Arc<String>; SLOTS]>>("arcs").unwrap());
        assert!(seg
            .destroy::<Mutex<[Weak<String>; SLOTS]>>("weaks")
            .unwrap());
        assert!(seg.all_memory_deallocated(), "seed {seed:#x}");
    }
}

/// Two lock-guarded fields of a derived struct share one `Arc<String>`.
#[derive(ShmSafe)]
#[shm(crate = "crate::shm")]
#[repr(C)]
pub struct Pair {
    pub a: Mutex<shmkit_containers::Arc<shmkit_containers::String>>,
    pub b: Mutex<shmkit_containers::Arc<shmkit_containers::String>>,
}

#[test]
fn two_fields_share_one_string() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    // Pair's schema, stored by its first construction, stays for good (ARCHITECTURE.md
    // "Type schemas"): what the segment gets back is measured with it stored.
    let first: *const Pair = seg
        .construct(
            shmkit_runtime::Anonymous,
            Pair {
                a: Mutex::new(Arc::new()),
                b: Mutex::new(Arc::new()),
            },
        )
        .unwrap();
    seg.destroy_ptr(first).unwrap();
    let empty = seg.free_memory();
    {
        let pair = seg
            .construct(
                "pair",
                Pair {
                    a: Mutex::new(Arc::new()),
                    b: Mutex::new(Arc::new()),
                },
            )
            .unwrap();
        let (mut a, mut b) = (pair.a.lock().unwrap(), pair.b.lock().unwrap());
        a.insert("shared").unwrap();
        b.share(&a).unwrap();
        assert!(a.ptr_eq(&b) && *a == *b && b.strong_count() == 2);
        assert_eq!(format!("{:?}", *b), "Some(\"shared\")");
        // Shared: read only, and no `&mut` for either.
        assert!(a.value_mut().is_none() && b.value_mut().is_none());
        a.clear();
        assert_eq!(
            (b.strong_count(), b.get().map(|s| s.as_str())),
            (1, Some("shared"))
        );
        b.value_mut().unwrap().push_str(", now alone").unwrap();
        a.share(&b).unwrap();
        a.share(&b).unwrap(); // sharing what it shares already changes nothing
        assert_eq!(
            (a.strong_count(), a.get().unwrap().as_str()),
            (2, "shared, now alone")
        );
    }
    assert!(seg.destroy::<Pair>("pair").unwrap());
    assert_eq!(seg.free_memory(), empty);
}

/// The value goes with the last `Arc`; the block with the last handle.
#[test]
fn a_weak_keeps_the_block_not_the_value() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    {
        let arc = seg
            .construct("arc", Mutex::new(Arc::<Vec<String>>::new()))
            .unwrap();
        let weak = seg
            .construct("weak", Mutex::new(Weak::<Vec<String>>::new()))
            .unwrap();
        let (mut arc, mut weak) = (arc.lock().unwrap(), weak.lock().unwrap());
        arc.insert(["a", "b"]).unwrap();
        weak.downgrade_from(&arc).unwrap();
        assert_eq!(
            (arc.strong_count(), arc.weak_count(), weak.weak_count()),
            (1, 1, 1)
        );
        assert!(weak.refers_to(&arc) && format!("{:?}", *weak) == "(Weak)");
        let free = seg.free_memory();
        arc.clear();
        // The vector and its strings are freed, the block stays for the `Weak`.
        assert!(seg.free_memory() > free);
        assert_eq!((weak.strong_count(), weak.weak_count()), (0, 1));
        assert_eq!(arc.upgrade_from(&weak), Err(ArcError::Gone));
        assert!(arc.is_none());
        weak.clear();
        assert_eq!(arc.upgrade_from(&weak), Err(ArcError::Gone));
        // Upgrading while the value is there.
        arc.insert(None::<&str>.into_iter()).unwrap();
        weak.downgrade_from(&arc).unwrap();
        arc.clear();
        assert_eq!(weak.strong_count(), 0);
    }
    assert!(seg.destroy::<Mutex<Arc<Vec<String>>>>("arc").unwrap());
    assert!(seg.destroy::<Mutex<Weak<Vec<String>>>>("weak").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// Values built from sources inside vectors: `Some(src)` for a new value, `None` empty.
#[test]
fn vectors_of_arcs_are_built_from_sources() {
    let mut seg = ManagedHeapMemory::new(1 << 18).unwrap();
    seg.construct("arcs", Vec::<Arc<String>>::new()).unwrap();
    let mut arcs = seg.find_mut::<Vec<Arc<String>>>("arcs").unwrap().unwrap();
    arcs.push(Some("first")).unwrap();
    arcs.push(None::<&str>).unwrap();
    for _ in 0..40 {
        // Each new element shares the first one's value; the buffer moves the handles.
        arcs.push(None::<&str>).unwrap();
        let mut all = arcs.iter_mut();
        let first = all.next().unwrap();
        all.last().unwrap().share(&first).unwrap();
    }
    assert_eq!(arcs[0].strong_count(), 41);
    assert!(arcs[1].is_none() && arcs[41].ptr_eq(&arcs[0]));
    assert_eq!(
        arcs.iter()
            .filter(|a| a.get().is_some_and(|s| s == "first"))
            .count(),
        41
    );
    arcs.truncate(2);
    assert_eq!(arcs[0].strong_count(), 1);
    assert!(seg.destroy::<Vec<Arc<String>>>("arcs").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// Threads share one value into slots of their own and give them up, concurrently: the
/// counts add up (and under Miri, its race detector sees the counts' orderings).
#[test]
fn threads_share_and_release_concurrently() {
    const THREADS: usize = 4;
    let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
    seg.construct("source", Arc::<u64>::new()).unwrap();
    seg.find_mut::<Arc<u64>>("source")
        .unwrap()
        .unwrap()
        .insert(7)
        .unwrap();
    let slots = seg
        .construct_array_with("slots", THREADS, |_| Mutex::new(Arc::<u64>::new()))
        .unwrap();
    let weaks = seg
        .construct_array_with("weaks", THREADS, |_| Mutex::new(Weak::<u64>::new()))
        .unwrap();
    let source = seg.find::<Arc<u64>>("source").unwrap().unwrap();
    std::thread::scope(|s| {
        for (slot, weak) in slots.iter().zip(weaks) {
            s.spawn(move || {
                for _ in 0..OPS / 10 {
                    let (mut slot, mut weak) = (slot.lock().unwrap(), weak.lock().unwrap());
                    slot.share(source).unwrap();
                    weak.downgrade_from(&slot).unwrap();
                    slot.clear();
                    slot.upgrade_from(&weak).unwrap();
                    weak.clear();
                    assert_eq!(slot.get(), Some(&7));
                }
            });
        }
    });
    assert_eq!(
        (source.strong_count(), source.weak_count()),
        (1 + THREADS, 0)
    );
}

/// A handle shares values of its own segment only; a handle outside every segment holds
/// none.
#[test]
fn handles_share_within_their_segment_only() {
    let one = ManagedHeapMemory::new(1 << 16).unwrap();
    let two = ManagedHeapMemory::new(1 << 16).unwrap();
    let a = one.construct("a", Mutex::new(Arc::<u64>::new())).unwrap();
    let b = two.construct("b", Mutex::new(Arc::<u64>::new())).unwrap();
    let w = two.construct("w", Mutex::new(Weak::<u64>::new())).unwrap();
    let (mut a, mut b, mut w) = (a.lock().unwrap(), b.lock().unwrap(), w.lock().unwrap());
    a.insert(1).unwrap();
    assert!(matches!(b.share(&a), Err(ArcError::OtherSegment { .. })));
    assert!(matches!(
        w.downgrade_from(&a),
        Err(ArcError::OtherSegment { .. })
    ));
    assert!(b.is_none() && w.strong_count() == 0 && a.strong_count() == 1);
    let outside = Mutex::new(Arc::<u64>::new());
    let err = outside.lock().unwrap().insert(1).unwrap_err();
    assert!(
        matches!(err.kind(), AllocErrorKind::NotInSegment { .. }),
        "{err}"
    );
    assert!(matches!(
        outside.lock().unwrap().share(&a),
        Err(ArcError::OtherSegment { .. })
    ));
    let e: shmkit_runtime::Error = ArcError::Gone.into();
    assert!(e.to_string().contains("Weak"), "{e}");
}
