//! Crash-consistency sweep: every allocator operation is interrupted at each of its writes
//! (a simulated SIGKILL: each write is a crash point, see `robust::crash`), then `rebuild`
//! must give a consistent allocator in which every block that was live before is still
//! allocated and no more than the request in flight leaked. Run for every algorithm of the
//! crate.

use super::algorithm::{ops, Ops};
use super::block::{Block, HeapState, GRANULE};
use super::heap::Heap;
use super::{MemoryAlgorithm, SeqFit, Tlsf};
use crate::robust::crash::crashes_at;

/// A heap over 128 KiB of heap memory, its state and the algorithm's table kept at the
/// front of the range (as in a segment). Owned through a raw pointer (freed on drop), so
/// the heap's pointers into it stay valid while the `Arena` moves.
pub(crate) struct Arena {
    pub(crate) mem: *mut [u64],
    pub(crate) t: Heap,
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: `mem` came from `Box::into_raw` in `arena_of` and is freed once, here.
        unsafe { drop(Box::from_raw(self.mem)) }
    }
}

/// Bytes of an arena.
const ARENA: u64 = 1 << 17;

/// An arena whose algorithm is `ops`, with `table` bytes of table after the state.
fn arena_of(ops: &'static Ops, table: usize) -> Arena {
    let mem = Box::into_raw(vec![0u64; ARENA as usize / 8].into_boxed_slice());
    let start = (std::mem::size_of::<HeapState>() + table).next_multiple_of(GRANULE * 2) as u64;
    // SAFETY: the 128 KiB are ours alone, live as long as the `Arena` that frees them, and
    // hold the state and its table at the front.
    let mut t = unsafe { Heap::new(mem.cast(), mem.cast(), ARENA, ops) };
    // SAFETY: the range [start, 128 KiB) lies in `mem`, after the table, granule aligned.
    unsafe { t.init(start, ARENA) };
    Arena { mem, t }
}

/// A TLSF arena whose table has `levels` first levels (1: a small segment's table, whose
/// last list holds every block above 128 bytes).
pub(crate) fn arena(levels: usize) -> Arena {
    arena_of(ops::<Tlsf>(), Tlsf::levels_bytes(levels))
}

/// An arena of algorithm `A`, with the table it asks for.
pub(crate) fn arena_for<A: MemoryAlgorithm>() -> Arena {
    arena_of(ops::<A>(), A::table_bytes(ARENA as usize))
}

fn used(t: &Heap) -> Vec<Block> {
    let mut v = vec![];
    t.for_each_used(|b, _| v.push(b));
    v
}

/// Allocates blocks of `sizes`, then frees those at `free`; their offsets.
fn layout(t: &mut Heap, sizes: &[u64], free: &[usize]) -> Vec<u64> {
    let v: Vec<u64> = sizes.iter().map(|&s| t.alloc_block(s).unwrap()).collect();
    for &i in free {
        // SAFETY: a used block allocated just above, freed once.
        unsafe { t.free_block(v[i]) }
    }
    v
}

/// Runs `setup` (returning the block in flight and how many bytes may leak), then `op`,
/// crashing at its first, second, … write until it completes; checks each crashed state.
fn sweep(
    new: &dyn Fn() -> Arena,
    label: &str,
    name: &str,
    setup: impl Fn(&mut Heap) -> (u64, u64),
    op: impl Fn(&mut Heap, u64),
) -> Vec<String> {
    let mut bad = vec![];
    for n in 0..64u32 {
        let mut a = new();
        let (in_flight, may_leak) = setup(&mut a.t);
        let live: Vec<Block> = used(&a.t)
            .into_iter()
            .filter(|b| b.offset != in_flight)
            .collect();
        let free0 = a.t.free_bytes();
        if crashes_at(n, || op(&mut a.t, in_flight)).is_ok() {
            break;
        }
        if let Err(m) = a.t.rebuild() {
            bad.push(format!("{name}@{n} ({label}): rebuild: {m}"));
            continue;
        }
        if let Err(m) = a.t.check() {
            bad.push(format!("{name}@{n} ({label}): check: {m}"));
        }
        let now = used(&a.t);
        for b in &live {
            let covered = now
                .iter()
                .any(|x| x.offset <= b.offset && b.offset + b.size <= x.offset + x.size);
            if !covered {
                bad.push(format!("{name}@{n} ({label}): live block {b:?} lost"));
            }
        }
        let lost = free0.saturating_sub(a.t.free_bytes());
        if lost > may_leak {
            bad.push(format!("{name}@{n} ({label}): leaked {lost} > {may_leak}"));
        }
    }
    bad
}

#[test]
fn a_crash_at_any_write_leaks_at_most_the_request() {
    let mut bad = sweeps(&|| arena(Tlsf::MAX_LEVELS), "tlsf, every level");
    bad.extend(sweeps(&|| arena(1), "tlsf, 1 level"));
    bad.extend(sweeps(&arena_for::<SeqFit>, "seqfit"));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Every operation's sweep on arenas made by `new`.
fn sweeps(new: &dyn Fn() -> Arena, label: &str) -> Vec<String> {
    let mut bad = vec![];
    bad.extend(sweep(
        new,
        label,
        "allocate (split in place)",
        |t| {
            layout(t, &[48], &[]);
            (0, 64)
        },
        |t, _| {
            t.alloc_block(64);
        },
    ));
    bad.extend(sweep(
        new,
        label,
        "allocate (take a listed block)",
        |t| {
            layout(t, &[48, 200, 48], &[1]);
            (0, 200)
        },
        |t, _| {
            t.alloc_block(200);
        },
    ));
    for free in [&[][..], &[0][..], &[2][..], &[0, 2][..]] {
        for (label, big) in [("small", 64), ("large", 4000)] {
            let f = free.to_vec();
            bad.extend(sweep(
                new,
                label,
                &format!("free, {label} neighbours, {f:?} free"),
                move |t| (layout(t, &[big, 48, big, 48], &f)[1], 0),
                // SAFETY: the block in flight is used and freed once.
                |t, o| unsafe { t.free_block(o) },
            ));
        }
    }
    for d in [8u64, 16, 24, 40, 200] {
        bad.extend(sweep(
            new,
            label,
            &format!("grow forward by {d}"),
            move |t| (layout(t, &[48, 200, 48], &[1])[0], d),
            // SAFETY: `o` is used and followed by a free 200-byte block.
            move |t, o| unsafe { t.grow_forward(o, 48 + d) },
        ));
    }
    for d in [64u64, 200] {
        bad.extend(sweep(
            new,
            label,
            &format!("grow backward by {d}"),
            move |t| {
                (
                    layout(t, &[48, 200, 48, 48], &[1])[2],
                    if d == 200 { 0 } else { d },
                )
            },
            move |t, o| {
                // SAFETY: `o` is used after a free 200-byte block; `d` leaves 0 or 136.
                unsafe { t.grow_backward(o, d) };
            },
        ));
    }
    bad.extend(sweep(
        new,
        label,
        "shrink",
        |t| (layout(t, &[48, 400, 48], &[])[1], 0),
        |t, o| {
            // SAFETY: `o` is the used 400-byte block; 64 is a valid block size.
            unsafe { t.shrink(o, 64) };
        },
    ));
    bad.extend(sweep(
        new,
        label,
        "shrink into a free neighbour",
        |t| (layout(t, &[48, 400, 48, 48], &[2])[1], 0),
        |t, o| {
            // SAFETY: `o` is the used 400-byte block; 64 is a valid block size.
            unsafe { t.shrink(o, 64) };
        },
    ));
    bad.extend(sweep(
        new,
        label,
        "aligned allocation",
        |t| {
            layout(t, &[48], &[]);
            (0, 64)
        },
        |t, _| {
            t.alloc_aligned(64, 4096);
        },
    ));
    bad
}
