//! Allocator state forged from outside: a list head whose bitmap bit is clear.

use super::crash_tests::arena;
use super::*;

/// Level 0's head of class (0, 4), the 32-byte blocks, set to `to` with its bit left clear.
fn forge_empty_head(a: &super::crash_tests::Arena, to: u64) {
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
