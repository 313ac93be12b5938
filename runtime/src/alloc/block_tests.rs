//! The block format's marks through every algorithm, and TLSF state forged from outside.

use super::block::{mark_unlocked, ENTRY, HEADER, INTERNAL};
use super::crash_tests::{arena, arena_for, Arena};
use super::heap::Heap;
use super::tlsf::layout;
use super::SeqFit;

/// Level 0's head of class (0, 4), the 32-byte blocks, set to `to` with its bit left clear.
fn forge_empty_head(a: &Arena, to: u64) {
    // SAFETY: the state and its table lie at the front of the arena's memory, which is
    // ours; the head is an aligned u64 of the table.
    unsafe { (a.mem.cast::<u8>().add(layout::HEADS + 4 * 8).cast::<u64>()).write(to) };
}

#[test]
fn a_head_whose_bit_is_clear_is_reported_and_never_followed() {
    let mut a = arena(4);
    let blocks: Vec<u64> = (0..3).map(|_| a.t.alloc_block(32).unwrap()).collect();
    let victim = a.t.alloc_block(64).unwrap();
    // SAFETY: the payload of a used block of 64 bytes is ours.
    unsafe { a.t.payload(victim).as_ptr().write_bytes(0xAB, 56) };
    forge_empty_head(&a, victim);
    assert!(a.t.check().unwrap_err().contains("bitmap disagrees"));
    // Freeing a 32-byte block between used ones files it in class (0, 4): the stale head
    // must not be linked to (that would write the block's offset into `victim`).
    // SAFETY: a used block of this allocator, freed once.
    unsafe { a.t.free_block(blocks[1]) };
    // SAFETY: as above.
    let payload = unsafe { std::slice::from_raw_parts(a.t.payload(victim).as_ptr(), 56) };
    assert!(payload.iter().all(|&b| b == 0xAB));
    a.t.check().unwrap();
}

/// Whether block `off` is a used block carrying exactly `marks`, per the chain.
fn marked_with(t: &Heap, off: u64, marks: u64) -> bool {
    let mut found = false;
    t.for_each_used(|b, m| found |= b.offset == off && m == marks);
    found
}

/// Whether block `off` is a used block marked as an entry, per the chain.
fn marked(t: &Heap, off: u64) -> bool {
    marked_with(t, off, ENTRY)
}

fn mark_with(a: &Arena, off: u64, marks: u64, on: bool) {
    // SAFETY: `off` is a used block of the arena's allocator, ours.
    unsafe { mark_unlocked(a.mem.cast(), off + HEADER as u64, marks, on) };
}

fn mark(a: &Arena, off: u64, on: bool) {
    mark_with(a, off, ENTRY, on);
}

/// An arena of every algorithm of the crate.
const ARENAS: [fn() -> Arena; 2] = [|| arena(4), arena_for::<SeqFit>];

#[test]
fn a_mark_survives_neighbour_frees_and_rebuild_and_is_refused_on_a_free_block() {
    for (marks, new) in [ENTRY, INTERNAL]
        .into_iter()
        .flat_map(|m| ARENAS.map(|a| (m, a)))
    {
        let mut a = new();
        let [before, entry, after, last] = [32, 48, 32, 64].map(|n| a.t.alloc_block(n).unwrap());
        mark_with(&a, entry, marks, true);
        // Freeing the neighbours flips the block's PREV_FREE bit and rewrites the next
        // header.
        // SAFETY: used blocks of this allocator, each freed once.
        unsafe {
            a.t.free_block(before);
            a.t.free_block(after);
        }
        assert!(marked_with(&a.t, entry, marks));
        a.t.check().unwrap();
        // A rebuild (after a crash) derives every flag again from the chain, but keeps the
        // mark.
        a.t.rebuild().unwrap();
        assert!(marked_with(&a.t, entry, marks) && marked_with(&a.t, last, 0));
        a.t.check().unwrap();
        // SAFETY: `before` is a free block's header, inside the arena.
        let h = unsafe { a.t.raw_word(before) };
        // SAFETY: as above; a forged mark on a free block.
        unsafe { a.t.raw_set_word(before, h | marks) };
        assert!(a
            .t
            .check()
            .unwrap_err()
            .contains("carries a used block's mark"));
        a.t.rebuild().unwrap();
        a.t.check().unwrap();
        // Both marks at once are no block's.
        mark_with(&a, entry, ENTRY | INTERNAL, true);
        assert!(a
            .t
            .check()
            .unwrap_err()
            .contains("as an entry and as internal"));
    }
}

#[test]
fn a_freed_entry_block_is_handed_out_again_unmarked() {
    for new in ARENAS {
        freed_entry_block_unmarked(new());
    }
}

fn freed_entry_block_unmarked(mut a: Arena) {
    let entry = a.t.alloc_block(48).unwrap();
    let _fence = a.t.alloc_block(32).unwrap();
    mark(&a, entry, true);
    // SAFETY: a used block, freed once (still marked: freeing drops the mark).
    unsafe { a.t.free_block(entry) };
    a.t.check().unwrap();
    assert_eq!(a.t.alloc_block(48), Some(entry));
    assert!(!marked(&a.t, entry));
    mark(&a, entry, true);
    // Resizing in place keeps the mark where the block keeps its start.
    // SAFETY: `entry` is used; 40 is granule aligned and at least MIN_BLOCK.
    unsafe { a.t.shrink(entry, 40) };
    assert!(marked(&a.t, entry));
    a.t.check().unwrap();
}
