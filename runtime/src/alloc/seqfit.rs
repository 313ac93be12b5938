//! A sequential-fit memory algorithm (Boost's `simple_seq_fit`): the smallest footprint.
//!
//! Free blocks form one singly linked list in address order, its head in the state's first
//! algorithm word; a free block keeps only the link after its header:
//! ```text
//! free: [ size|FREE : u64 ][ next : u64 ] ...
//! ```
//! No table after the header and no footers, so a tiny segment (Boost's examples use 1,000
//! bytes) keeps every byte TLSF's level table would take. Allocation is first fit and free
//! merges with both neighbours, each a walk of the list: O(free blocks), which a segment
//! of a few kilobytes, the one this algorithm is for, keeps short. Large, busy segments
//! want [`Tlsf`](super::Tlsf).
//!
//! Crash consistency: a header's size is written only once the bytes it spans hold valid
//! blocks, and a block leaves the list before it is marked used, so a process killed at any
//! write leaves a walkable chain; `rebuild` derives the list and the counter from it.

use super::algorithm::{aligned_pad, MemoryAlgorithm};
use super::block::{FLAGS, FREE, MIN_BLOCK};
use super::heap::Heap;

/// The sequential-fit memory algorithm: one address-ordered free list, first fit, no table.
#[derive(Clone, Copy, Debug, Default)]
pub struct SeqFit;

/// The state word holding the list head (0: empty).
const HEAD: usize = 0;

/// The link word of free block `off`.
const fn link(off: u64) -> u64 {
    off + 8
}

/// Where a block of `size` bytes would sit in the list: the free block before it (0 for the
/// head) and the one after it (0 at the end).
struct Place {
    prev: u64,
    next: u64,
}

fn size_of(heap: &Heap, off: u64) -> u64 {
    heap.word(off) & !FLAGS
}

/// The list position of offset `off`: the last free block below it and the first above.
fn place_of(heap: &Heap, off: u64) -> Place {
    let (mut prev, mut cur) = (0, heap.algorithm_word(HEAD));
    while cur != 0 && cur < off {
        prev = cur;
        cur = heap.word(link(cur));
    }
    Place { prev, next: cur }
}

/// Points `prev`'s link (or the head) at `to`.
fn set_next(heap: &mut Heap, prev: u64, to: u64) {
    if prev == 0 {
        heap.set_algorithm_word(HEAD, to);
    } else {
        heap.set_word(link(prev), to);
    }
}

/// Adds `n` to (or, negative, takes it from) the free counter.
fn add_free(heap: &mut Heap, n: i64) {
    let bytes = heap.free_bytes().wrapping_add_signed(n);
    heap.set_free_bytes(bytes);
}

// SAFETY: allocation hands out only a block it took off the free list (a free block of the
// chain, so overlapping no used block) after the link words it kept were cleared; every
// update writes the header that spans new bytes last (see the module documentation and
// the crash sweep in `crash_tests`); `check` follows a link only to a free block of the
// chain it walked, and `rebuild` reads only headers.
unsafe impl MemoryAlgorithm for SeqFit {
    const NAME: &'static str = "seqfit";
    const KIND: u64 = 1;
    const KEPT_WORDS: (u64, u64) = (1, 0);

    fn init(heap: &mut Heap) {
        let (start, end) = (heap.start(), heap.end());
        heap.set_word(link(start), 0);
        heap.set_word(start, (end - start) | FREE);
        heap.set_algorithm_word(HEAD, start);
        heap.set_free_bytes(end - start);
    }

    fn allocate(heap: &mut Heap, size: u64) -> Option<u64> {
        let (mut prev, mut cur) = (0, heap.algorithm_word(HEAD));
        while cur != 0 {
            let have = size_of(heap, cur);
            if have >= size {
                take(heap, prev, cur, have, size);
                return Some(cur);
            }
            prev = cur;
            cur = heap.word(link(cur));
        }
        None
    }

    /// First fit too, the padding cut off while the block is still free (so a crash leaks
    /// nothing of it).
    fn allocate_aligned(heap: &mut Heap, size: u64, align: u64) -> Option<u64> {
        let (mut prev, mut cur) = (0, heap.algorithm_word(HEAD));
        while cur != 0 {
            let have = size_of(heap, cur);
            if let Some(pad) = aligned_pad(heap, cur, have, size, align) {
                if pad == 0 {
                    take(heap, prev, cur, have, size);
                    return Some(cur);
                }
                // Two free blocks where there was one: the second is listed after the
                // first, and exists in the chain, before the first shrinks to the padding.
                let at = cur + pad;
                let next = heap.word(link(cur));
                heap.set_word(link(at), next);
                heap.set_word(at, (have - pad) | FREE);
                heap.set_word(link(cur), at);
                heap.set_word(cur, pad | FREE);
                take(heap, cur, at, have - pad, size);
                return Some(at);
            }
            prev = cur;
            cur = heap.word(link(cur));
        }
        None
    }

    fn deallocate(heap: &mut Heap, off: u64) {
        let size = size_of(heap, off);
        let Place { prev, next } = place_of(heap, off);
        add_free(heap, size as i64);
        let merges_next = next != 0 && off + size == next;
        let merges_prev = prev != 0 && prev + size_of(heap, prev) == off;
        match (merges_prev, merges_next) {
            (true, true) => {
                // The three become one: `prev` reaches past `next`, which leaves the list.
                let after = heap.word(link(next));
                let total = size_of(heap, prev) + size + size_of(heap, next);
                heap.set_word(link(prev), after);
                heap.set_word(prev, total | FREE);
            }
            (true, false) => {
                let total = size_of(heap, prev) + size;
                heap.set_word(prev, total | FREE);
            }
            (false, true) => {
                // `off` takes `next`'s place in the list, then spans it.
                let after = heap.word(link(next));
                heap.set_word(link(off), after);
                heap.set_word(off, size | FREE);
                set_next(heap, prev, off);
                heap.set_word(off, (size + size_of(heap, next)) | FREE);
            }
            (false, false) => {
                heap.set_word(link(off), next);
                heap.set_word(off, size | FREE);
                set_next(heap, prev, off);
            }
        }
    }

    fn free_after(heap: &Heap, off: u64) -> u64 {
        let next = off + size_of(heap, off);
        let h = heap.word(next);
        if h & FREE != 0 {
            h & !FLAGS
        } else {
            0
        }
    }

    fn free_before(heap: &Heap, off: u64) -> u64 {
        let prev = place_of(heap, off).prev;
        let size = if prev == 0 { 0 } else { size_of(heap, prev) };
        if prev + size == off {
            size
        } else {
            0
        }
    }

    /// The block starts `delta` bytes earlier, so it loses its marks (they name a block
    /// start), as with TLSF.
    fn grow_backward(heap: &mut Heap, off: u64, delta: u64) -> u64 {
        let size = size_of(heap, off);
        let Place { prev, next } = place_of(heap, off);
        let psize = size_of(heap, prev);
        let new_off = off - delta;
        if delta == psize {
            // The free block goes whole: out of the list, then its header is ours.
            let before = place_of(heap, prev).prev;
            set_next(heap, before, next);
            heap.set_word(new_off, size + delta);
        } else {
            // Our header goes first, inside the free block that still spans it.
            heap.set_word(new_off, size + delta);
            heap.set_word(prev, (psize - delta) | FREE);
        }
        add_free(heap, -(delta as i64));
        new_off
    }

    fn grow_forward(heap: &mut Heap, off: u64, new_size: u64) {
        let h = heap.word(off);
        let size = h & !FLAGS;
        if new_size <= size {
            return;
        }
        let next = off + size;
        let nsize = size_of(heap, next);
        let prev = place_of(heap, next).prev;
        let after = heap.word(link(next));
        let tail = size + nsize - new_size;
        if tail >= MIN_BLOCK as u64 {
            // The tail takes the neighbour's place in the list before the block spans it.
            let rest = off + new_size;
            heap.set_word(link(rest), after);
            heap.set_word(rest, tail | FREE);
            set_next(heap, prev, rest);
            heap.set_word(off, new_size | (h & FLAGS));
            add_free(heap, -((nsize - tail) as i64));
        } else {
            set_next(heap, prev, after);
            heap.set_word(off, (size + nsize) | (h & FLAGS));
            add_free(heap, -(nsize as i64));
        }
    }

    fn shrink(heap: &mut Heap, off: u64, new_size: u64) -> u64 {
        let h = heap.word(off);
        let size = h & !FLAGS;
        if new_size >= size || size - new_size < MIN_BLOCK as u64 {
            return size;
        }
        // The tail becomes a used block of its own, then is freed (merging as it can).
        let rest = off + new_size;
        heap.set_word(rest, size - new_size);
        heap.set_word(off, new_size | (h & FLAGS));
        Self::deallocate(heap, rest);
        new_size
    }

    fn trim_end(heap: &mut Heap, min_end: u64) -> u64 {
        let end = heap.end();
        let Place { prev, next: _ } = place_of(heap, end);
        // The last free block, if it reaches the sentinel.
        let Some(last) = (prev != 0).then_some(prev) else {
            return end + 8;
        };
        let size = size_of(heap, last);
        if last + size != end {
            return end + 8;
        }
        let keep = match (min_end - 8).saturating_sub(last) {
            0 => 0,
            k => k.max(MIN_BLOCK as u64),
        };
        if keep + MIN_BLOCK as u64 > size {
            return end + 8;
        }
        let before = place_of(heap, last).prev;
        let sentinel = last + keep;
        heap.set_word(sentinel, 0);
        if keep == 0 {
            set_next(heap, before, 0);
        } else {
            heap.set_word(last, keep | FREE);
        }
        heap.set_end(sentinel);
        add_free(heap, -((size - keep) as i64));
        sentinel + 8
    }

    fn check(heap: &Heap) -> Result<(), String> {
        let free: Vec<u64> = heap
            .blocks()
            .filter(|&(_, h)| h & FREE != 0)
            .map(|(b, _)| b.offset)
            .collect();
        for pair in heap.blocks().collect::<Vec<_>>().windows(2) {
            if pair[0].1 & pair[1].1 & FREE != 0 {
                return Err(format!(
                    "free block at {} follows a free block",
                    pair[1].0.offset
                ));
            }
        }
        // The list must be exactly the chain's free blocks, in address order.
        let mut cur = heap.algorithm_word(HEAD);
        for &want in &free {
            if cur != want {
                return Err(format!(
                    "free list holds {cur} where the chain's next free block is {want}"
                ));
            }
            cur = heap.word(link(cur));
        }
        if cur != 0 {
            return Err(format!(
                "free list goes on to {cur} past the last free block"
            ));
        }
        Ok(())
    }

    fn rebuild(heap: &mut Heap) -> Result<(), String> {
        let (start, end) = (heap.start(), heap.end());
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut off = start;
        for (b, h) in heap.blocks().collect::<Vec<_>>() {
            if h & FREE != 0 {
                match runs.last_mut() {
                    Some((s, n)) if *s + *n == b.offset => *n += b.size,
                    _ => runs.push((b.offset, b.size)),
                }
            }
            off = b.offset + b.size;
        }
        if off != end {
            return Err(format!(
                "block chain ends at {off}, not at the sentinel {end}"
            ));
        }
        let mut next = 0;
        for &(s, n) in runs.iter().rev() {
            heap.set_word(link(s), next);
            heap.set_word(s, n | FREE);
            next = s;
        }
        heap.set_algorithm_word(HEAD, next);
        heap.set_free_bytes(runs.iter().map(|r| r.1).sum());
        Ok(())
    }
}

/// Hands out the front `want` bytes of listed free block `off` (`have` bytes, after
/// `prev` in the list); the rest, when it can stand as a block, stays listed in its place.
fn take(heap: &mut Heap, prev: u64, off: u64, have: u64, want: u64) {
    let next = heap.word(link(off));
    if have - want >= MIN_BLOCK as u64 {
        let rest = off + want;
        heap.set_word(link(rest), next);
        heap.set_word(rest, (have - want) | FREE);
        set_next(heap, prev, rest);
        heap.set_word(off, want);
        add_free(heap, -(want as i64));
    } else {
        set_next(heap, prev, next);
        heap.set_word(off, have);
        add_free(heap, -(have as i64));
    }
    // The link is payload now; cleared so that zeroed memory stays zeroed.
    heap.set_word(link(off), 0);
}
