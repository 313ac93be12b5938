//! Forged `Arc`/`Weak` handles and counts in a writable copy: two handles in two objects
//! sharing a block whose strong count says 1, counts at the limit, a `Weak` whose count
//! says 0 `Weak`s. Whatever is done to them afterwards (share, upgrade, downgrade, clear,
//! destroy), no value may be dropped or freed under a handle (old handles leak, see the
//! `arc` module docs). Miri: `cargo +nightly miri test -p shmkit-containers --test attack2
//! arc::`.

use shmkit_containers::{Arc, ArcExt, Vec, Weak, WeakExt};
use shmkit_runtime::ManagedHeapMemory;
use shmkit_test_support as support;

type A = Arc<Vec<u64>>;

fn off(seg: &ManagedHeapMemory, p: *const u8) -> usize {
    p as usize - seg.base_address().as_ptr() as usize
}

/// "a" holds an `Arc` of [1, 2, 3] (counts strong 1, weak 1); "b" an empty `Arc`, "w" an
/// empty `Weak`. Returns the segment and the offsets of "a", "b", "w" and the counts.
fn segment() -> (ManagedHeapMemory, [usize; 4]) {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("a", A::new()).unwrap();
    seg.construct("b", A::new()).unwrap();
    seg.construct("w", Weak::<Vec<u64>>::new()).unwrap();
    seg.find_mut::<A>("a")
        .unwrap()
        .unwrap()
        .insert([1u64, 2, 3])
        .unwrap();
    let a = seg.find::<A>("a").unwrap().unwrap();
    let value = off(&seg, (&raw const *a.get().unwrap()).cast());
    let offs = [
        off(&seg, (&raw const *a).cast()),
        off(
            &seg,
            (&raw const *seg.find::<A>("b").unwrap().unwrap()).cast(),
        ),
        off(
            &seg,
            (&raw const *seg.find::<Weak<Vec<u64>>>("w").unwrap().unwrap()).cast(),
        ),
        value - 16,
    ];
    (seg, offs)
}

/// Copies handle "a"'s 16 bytes to `to`, aimed at the same block.
fn twin(seg: &mut ManagedHeapMemory, a: usize, to: usize) {
    // Two plain words (no padding), read as the forger reads a file (memfd-free, for Miri).
    let mut h = [0u8; 16];
    // SAFETY: (test) 16 initialised bytes of the segment, no reference into it alive.
    unsafe {
        core::ptr::copy_nonoverlapping(seg.base_address().as_ptr().add(a), h.as_mut_ptr(), 16)
    };
    let w = i64::from_ne_bytes(h[..8].try_into().unwrap()) + a as i64 - to as i64;
    h[..8].copy_from_slice(&w.to_ne_bytes());
    support::corrupt(seg, to, &h);
}

/// Plays with every handle of the copy, then destroys them all: the value must stay
/// readable through any handle still holding it, and no drop may run twice.
fn exercise(copy: &mut ManagedHeapMemory) {
    copy.construct("c", A::new()).unwrap();
    copy.construct("d", Weak::<Vec<u64>>::new()).unwrap();
    for name in ["a", "b"] {
        let Ok(Some(src)) = copy.find::<A>(name) else {
            continue;
        };
        assert!(src.get().is_none_or(|v| v[..] == [1, 2, 3]));
        let src: *const A = src;
        // SAFETY: (test) `src` stays valid: "a"/"b" are not touched while "c"/"d" change.
        let src = unsafe { &*src };
        let mut c = copy.find_mut::<A>("c").unwrap().unwrap();
        let _ = c.share(src);
        assert!(
            c.value_mut().is_none(),
            "shared with an old handle: no &mut"
        );
        c.clear();
        let _ = c.share(src);
        let mut d = copy.find_mut::<Weak<Vec<u64>>>("d").unwrap().unwrap();
        let _ = d.downgrade_from(src);
        let mut c = copy.find_mut::<A>("c").unwrap().unwrap();
        c.clear();
        let w: *const Weak<Vec<u64>> = copy.find::<Weak<Vec<u64>>>("d").unwrap().unwrap();
        let mut c = copy.find_mut::<A>("c").unwrap().unwrap();
        // SAFETY: (test) as above.
        let _ = c.upgrade_from(unsafe { &*w });
        if let Some(v) = c.get() {
            assert_eq!(v[..], [1, 2, 3]);
        }
    }
    if let Ok(Some(w)) = copy.find::<Weak<Vec<u64>>>("w") {
        let w: *const Weak<Vec<u64>> = w;
        let mut c = copy.find_mut::<A>("c").unwrap().unwrap();
        // SAFETY: (test) as above.
        let _ = c.upgrade_from(unsafe { &*w });
        if let Some(v) = c.get() {
            assert_eq!(v[..], [1, 2, 3]);
        }
    }
    for name in ["a", "b", "c"] {
        if let Ok(Some(a)) = copy.find::<A>(name) {
            assert!(a.get().is_none_or(|v| v[..] == [1, 2, 3]));
        }
    }
    for name in ["w", "d"] {
        let _ = copy.destroy::<Weak<Vec<u64>>>(name);
    }
    for name in ["c", "a", "b"] {
        if let Ok(Some(a)) = copy.find::<A>(name) {
            assert!(a.get().is_none_or(|v| v[..] == [1, 2, 3]));
        }
        let _ = copy.destroy::<A>(name);
    }
    // The segment's own consistency after all that: a further copy opens.
    let again = ManagedHeapMemory::from_image(copy.image()).unwrap();
    drop(again);
}

fn counts(strong: u64, weak: u64) -> [u8; 8] {
    (strong | weak << 32).to_ne_bytes()
}

#[test]
fn two_arcs_in_two_objects_with_a_strong_count_of_one() {
    let (mut seg, [a, b, _, _]) = segment();
    twin(&mut seg, a, b);
    let mut copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    exercise(&mut copy);
}

#[test]
fn forged_counts_with_twins_and_a_weak() {
    for (s, w) in [
        (1, 1),
        (2, 1),
        (1, 2),
        (0, 1),
        (1, 0),
        (u32::MAX as u64, u32::MAX as u64),
        (0, 0),
    ] {
        let (mut seg, [a, b, wk, cnt]) = segment();
        twin(&mut seg, a, b);
        twin(&mut seg, a, wk);
        support::corrupt(&mut seg, cnt, &counts(s, w));
        let mut copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
        exercise(&mut copy);
    }
}

#[test]
fn forged_epochs() {
    for epoch in [0u64, 1, u64::MAX] {
        let (mut seg, [a, b, wk, _]) = segment();
        twin(&mut seg, a, b);
        twin(&mut seg, a, wk);
        for h in [a, b, wk] {
            support::corrupt(&mut seg, h + 8, &epoch.to_ne_bytes());
        }
        let mut copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
        exercise(&mut copy);
    }
}
