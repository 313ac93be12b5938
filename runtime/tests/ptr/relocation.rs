//! Moving values that hold offset pointers: relocation after a byte copy, through compound
//! types, and whole-buffer copies that need none.

use std::mem::{offset_of, MaybeUninit};
use std::num::Wrapping;
use std::ptr;

use shmkit_runtime::test_hooks::registry;
use shmkit_runtime::{relocate_value, relocate_values, OffsetPtr, ShmSafe};

/// A struct as `#[derive(ShmSafe)]` will implement it.
#[repr(C)]
struct Holder {
    id: u32,
    target: OffsetPtr<u64>,
    pairs: [(u8, OffsetPtr<u64>); 3],
    wrapped: Wrapping<OffsetPtr<u64>>,
}

// SAFETY: plain data and offset pointers, each relocated from its own old address.
unsafe impl ShmSafe for Holder {
    unsafe fn relocate(&mut self, moved_from: usize) {
        // SAFETY: every field moved along with `self`, from `moved_from` plus its offset.
        unsafe {
            self.id.relocate(moved_from + offset_of!(Holder, id));
            self.target
                .relocate(moved_from + offset_of!(Holder, target));
            self.pairs.relocate(moved_from + offset_of!(Holder, pairs));
            self.wrapped
                .relocate(moved_from + offset_of!(Holder, wrapped));
        }
    }
}

/// Builds a `Holder` in `slot` aiming at `targets` (in a third buffer).
fn build(slot: *mut Holder, targets: &[u64; 5]) {
    // SAFETY: `slot` is valid for writes and aligned; pointers are set in place afterwards.
    unsafe {
        slot.write(Holder {
            id: 1,
            target: OffsetPtr::null(),
            pairs: [
                (1, OffsetPtr::null()),
                (2, OffsetPtr::null()),
                (3, OffsetPtr::null()),
            ],
            wrapped: Wrapping(OffsetPtr::null()),
        });
        (*slot).target.set(&targets[0]);
        for (i, pair) in (*slot).pairs.iter_mut().enumerate() {
            pair.1.set(&targets[i + 1]);
        }
        (*slot).wrapped.0.set(&targets[4]);
    }
}

fn assert_aims_at(h: &Holder, targets: &[u64; 5]) {
    assert_eq!(h.target.get().cast_const(), &targets[0] as *const u64);
    for (i, pair) in h.pairs.iter().enumerate() {
        assert_eq!(
            pair.1.get().cast_const(),
            &targets[i + 1] as *const u64,
            "pair {i}"
        );
    }
    assert_eq!(h.wrapped.0.get().cast_const(), &targets[4] as *const u64);
    // SAFETY: all targets are live elements of `targets`.
    let read: Vec<u64> = [h.target.get(), h.pairs[2].1.get(), h.wrapped.0.get()]
        .iter()
        .map(|&p| unsafe { *p })
        .collect();
    assert_eq!(read, [targets[0], targets[3], targets[4]]);
}

#[test]
fn a_moved_struct_aims_at_its_old_targets_after_relocate_and_only_then() {
    let targets = Box::new([10u64, 11, 12, 13, 14]);
    let mut old = Box::new(MaybeUninit::<Holder>::uninit());
    let mut new = Box::new(MaybeUninit::<Holder>::uninit());
    build(old.as_mut_ptr(), &targets);
    // SAFETY: two distinct boxes, `old` initialised; `new` is relocated right after.
    unsafe { ptr::copy_nonoverlapping(old.as_ptr(), new.as_mut_ptr(), 1) };
    // SAFETY: `new` holds a full copy.
    let moved = unsafe { new.assume_init_mut() };
    assert_ne!(
        moved.target.get().cast_const(),
        &targets[0] as *const u64,
        "a bare copy is wrong"
    );
    // SAFETY: `moved` holds exactly the bytes that were at `old`.
    unsafe { moved.relocate(old.as_ptr().addr()) };
    assert_aims_at(moved, &targets);
}

#[test]
fn relocate_value_moves_and_fixes_in_one_step() {
    let targets = Box::new([20u64, 21, 22, 23, 24]);
    let mut old = Box::new(MaybeUninit::<Holder>::uninit());
    let mut new = Box::new(MaybeUninit::<Holder>::uninit());
    build(old.as_mut_ptr(), &targets);
    // SAFETY: distinct, aligned, `old` initialised; it is not used afterwards.
    unsafe { relocate_value(new.as_mut_ptr(), old.as_ptr()) };
    // SAFETY: initialised by the move.
    assert_aims_at(unsafe { new.assume_init_ref() }, &targets);
}

#[test]
fn relocate_values_grows_a_buffer_like_a_vec() {
    let targets = Box::new([30u64, 31, 32, 33, 34]);
    let mut small: Vec<MaybeUninit<Holder>> = (0..2).map(|_| MaybeUninit::uninit()).collect();
    for slot in &mut small {
        build(slot.as_mut_ptr(), &targets);
    }
    let mut big: Vec<MaybeUninit<Holder>> = (0..4).map(|_| MaybeUninit::uninit()).collect();
    // SAFETY: two initialised holders move into a disjoint, larger buffer.
    unsafe { relocate_values(big.as_mut_ptr().cast::<Holder>(), small.as_ptr().cast(), 2) };
    drop(small);
    for slot in &big[..2] {
        // SAFETY: initialised by the move.
        assert_aims_at(unsafe { slot.assume_init_ref() }, &targets);
    }
}

/// A tiny segment: a list of nodes and their values, all inside one buffer.
#[repr(C)]
struct Arena {
    head: OffsetPtr<Node>,
    nodes: [Node; 4],
}

#[repr(C)]
struct Node {
    value: u64,
    next: OffsetPtr<Node>,
}

#[test]
fn a_buffer_copied_whole_needs_no_relocation() {
    let mut a = Box::new(MaybeUninit::<Arena>::uninit());
    let a_ptr = a.as_mut_ptr();
    // SAFETY: `a` is valid for writes; every pointer is set in place after the write.
    unsafe {
        a_ptr.write(Arena {
            head: OffsetPtr::null(),
            nodes: [0, 1, 2, 3].map(|v| Node {
                value: v * 100,
                next: OffsetPtr::null(),
            }),
        });
        let nodes = ptr::addr_of_mut!((*a_ptr).nodes).cast::<Node>();
        (*a_ptr).head.set(nodes.add(2));
        (*nodes.add(2)).next.set(nodes);
        (*nodes).next.set(nodes.add(3));
    }
    let mut b = Box::new(MaybeUninit::<Arena>::uninit());
    let b_ptr = b.as_mut_ptr();
    // SAFETY: distinct boxes; the arena is copied byte for byte, as a copy-on-write mapping is.
    unsafe { ptr::copy_nonoverlapping(a_ptr, b_ptr, 1) };
    // Overwrite the original: the copy must not depend on it.
    // SAFETY: `a` is valid for writes; all-zero bytes are a valid `Arena` bit pattern to store.
    unsafe { ptr::write_bytes(a_ptr, 0, 1) };
    drop(a);
    // SAFETY: the box is live and only read through raw pointers while `reg` lives.
    let reg = unsafe { registry::register(b_ptr.cast(), size_of::<Arena>(), true) }.unwrap();

    let mut walked = Vec::new();
    // SAFETY: `b` is initialised; `head` is read in place.
    let mut cur = unsafe { (*b_ptr).head.get() };
    while !cur.is_null() {
        assert!(
            reg.info().contains(cur.cast()),
            "{cur:?} is outside the copy"
        );
        // SAFETY: `cur` is a node inside the initialised copy.
        unsafe {
            walked.push((*cur).value);
            cur = (*cur).next.get();
        }
    }
    assert_eq!(walked, [200, 0, 300]);
}
