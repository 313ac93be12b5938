//! The retired list: blocks that readers without the index lock may still be reading, kept
//! allocated until nobody can.
//!
//! `find` of a named object on a hash index runs without the index lock (`ops::find_fast`
//! over `HashIndex::probe`), so another thread of this mapping or another process may be
//! probing a hash table, or reading an entry it found there, while the lock holder unlinks
//! it: a table replaced by a larger one (or freed when its index empties) and the entry of
//! a construction that failed. Such a block is not freed but pushed here: its first word
//! becomes the link to the next (stored atomically: a reader may be loading that word, and
//! finds a table's or an entry's tag gone, so it takes the locked path), the head lives in
//! the header word [`RETIRED`](crate::manager::header::words::RETIRED). An entry's block
//! loses its entry mark first, so the list holds only used blocks that are no object
//! entries.
//!
//! The list is freed ([`drain`]) only where nobody else can be reading: through `&mut`
//! segment methods that run while no other mapping is attached (destruction,
//! `shrink_to_fit_indexes`), and when a private copy or a copy-on-write mapping is attached.
//! Memory stays bounded meanwhile: tables grow geometrically, so the tables retired between
//! two drains hold fewer slots than the current one, and a construction fails rarely.
//!
//! Crash consistency: retiring stores the block's link, then the head; draining stores the
//! head past a block, then frees it. A process dying in between leaks that block, never
//! frees one twice. Bytes from elsewhere are checked before the list is followed (`check`,
//! on a cold open), or cut at the first bad link (`repair`, in recovery).

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;

use super::space::{Blocks, Space};
use crate::alloc::block::{ENTRY, INTERNAL};
use crate::error::Result;
use crate::manager::header::words;

/// Pushes the used block at `off` (no entry, or no longer marked as one) onto the list
/// (under the index lock). Nothing may link it any more.
pub(crate) fn retire(s: &Space, off: u64) -> Result<()> {
    let head = s.word(words::RETIRED);
    crash_point();
    // Relaxed: a reader without the lock that loads this word only sees that it is no
    // longer a tag, and the next drain runs after everyone else is gone.
    s.shared(off)?.store(head.load(Relaxed), Relaxed);
    crash_point();
    head.store(off, Relaxed);
    Ok(())
}

/// Retires the block of the unlinked entry `e`: marks it internal instead of an entry,
/// then pushes it.
pub(crate) fn retire_entry(s: &Space, e: u64) -> Result<()> {
    // SAFETY: `e` is an entry block of this writable mapping that the caller unlinked and
    // owns.
    unsafe {
        s.core().mark(e, ENTRY, false);
        s.core().mark(e, INTERNAL, true);
    }
    retire(s, e)
}

/// Frees every retired block (under the index lock), where nobody else can be reading them:
/// no other mapping attached and no other thread using this one.
pub(crate) fn drain(s: &Space) -> Result<()> {
    let head = s.word(words::RETIRED);
    loop {
        let off = head.load(Relaxed);
        if off == 0 {
            return Ok(());
        }
        let next = s.shared(off)?.load(Relaxed);
        // Unlinked before it is freed: a crash in between leaks it, never frees it twice.
        crash_point();
        head.store(next, Relaxed);
        // SAFETY: a block of the list (checked on a cold open, or written by trusted
        // writers), linked nowhere else; nobody is reading it (caller).
        unsafe { s.free(off)? };
    }
}

/// Where the crash-consistency test may stop a process (see `robust::crash`).
#[inline(always)]
fn crash_point() {
    crate::robust::crash::point("retired list: a write");
}

/// The blocks of the list, each checked against `blocks` before its link is read: a used
/// block large enough for the link, no object entry, none of the object layer's own
/// structures in `own`, none twice. Stops at the first that is not, with its offset and why.
fn walk(s: &Space, blocks: &Blocks, own: &HashSet<u64>) -> (Vec<u64>, Option<(u64, &'static str)>) {
    let mut seen = Vec::new();
    let mut set = HashSet::new();
    let mut off = s.read_word(words::RETIRED);
    while off != 0 {
        let why = match blocks.len_of(off) {
            None => Some("it is not a used block that holds no object entry"),
            Some(len) if len < 8 => Some("its block is too small for a link"),
            Some(_) if own.contains(&off) => Some("it is one of the object layer's own tables"),
            Some(_) if !set.insert(off) => Some("the list comes back to it"),
            Some(_) => None,
        };
        if let Some(why) = why {
            return (seen, Some((off, why)));
        }
        seen.push(off);
        // Checked above: a used block of at least 8 bytes.
        off = s.load::<false>(off).unwrap_or(0);
    }
    (seen, None)
}

/// Checks the list of bytes from elsewhere (a cold open, `check()`) before anything frees
/// what it names; `own` are the offsets of the object layer's own blocks (index tables,
/// the registry, type records, the thread-cache table), which a forged link could name.
pub(crate) fn check(s: &Space, blocks: &Blocks, own: &HashSet<u64>) -> Result<()> {
    match walk(s, blocks, own) {
        (_, None) => Ok(()),
        (_, Some((off, why))) => Err(s.corrupt(format!("retired block at offset {off}: {why}"))),
    }
}

/// For recovery: cuts the list before its first bad link (what hangs from there leaks),
/// so that a later [`drain`] frees only blocks that [`check`] would accept.
pub(crate) fn repair(s: &Space, blocks: &Blocks, own: &HashSet<u64>) -> Result<()> {
    if let (good, Some(_)) = walk(s, blocks, own) {
        match good.last() {
            Some(&last) => s.shared(last)?.store(0, Relaxed),
            None => s.word(words::RETIRED).store(0, Relaxed),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::mem::offset_of;

    use crate::manager::header::{words, SegmentHeader};
    use crate::robust::crash::crashes_at;
    use crate::segment::{AlignedBuffer, ManagedHeapMemory};

    /// Elements that claim more than they have, so that the construction is undone.
    struct Short(u64);
    impl Iterator for Short {
        type Item = u64;
        fn next(&mut self) -> Option<u64> {
            (self.0 < 2).then(|| {
                self.0 += 1;
                self.0
            })
        }
    }
    impl ExactSizeIterator for Short {
        fn len(&self) -> usize {
            4
        }
    }

    /// A copy of `seg` as a process that died holding both locks leaves it: every byte of
    /// these segments is written (u64 values, zeroed memory), so the copy is plain bytes.
    fn as_left_by_a_dead_holder(seg: &mut ManagedHeapMemory) -> AlignedBuffer {
        // SAFETY: see above: no byte of this segment is uninitialised.
        let bytes: Vec<u8> = seg
            .image()
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        let mut img = AlignedBuffer::from(&bytes[..]);
        let dead = 12_345u32.to_ne_bytes();
        let index_lock = offset_of!(SegmentHeader, reserved) + 8 * words::INDEX_LOCK;
        for at in [offset_of!(SegmentHeader, lock), index_lock] {
            img.write_all_at(&dead, at).unwrap();
        }
        img
    }

    /// A process dies at each write in turn of growing the hash table (the old one is
    /// retired), undoing a failed construction (its entry is retired) and freeing the
    /// retired list. The copy it leaves opens (repaired as after a dead lock holder),
    /// checks clean, holds every object that was finished, and gives back all memory but
    /// the blocks in flight: no retired block is lost for good or freed twice.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "a simulated crash inside the rollback's destructor, while an error is being \
                  returned, leaks that error's message (a panicking drop leaks the return \
                  value), which Miri reports; the sweep runs natively"
    )]
    fn a_crash_at_any_write_while_retiring_or_draining_leaks_at_most_one_block() {
        let size = 8 * 1024;
        let empty = ManagedHeapMemory::new(size).unwrap().free_memory();
        for n in 0.. {
            let mut seg = ManagedHeapMemory::new(size).unwrap();
            // Three objects fill the first table (4 slots); the fourth grows it.
            for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
                seg.construct(name, i as u64).unwrap();
            }
            let crashed = crashes_at(n, || {
                seg.construct("d", 3u64).unwrap();
                let short = seg.construct_from_iter("short", Short(0));
                assert!(matches!(short, Err(crate::Error::IteratorTooShort { .. })));
                seg.shrink_to_fit_indexes().unwrap();
            })
            .is_err();
            let img = as_left_by_a_dead_holder(&mut seg);
            let mut copy = ManagedHeapMemory::from_image(&img)
                .unwrap_or_else(|e| panic!("crash at write {n}: the copy does not open: {e}"));
            copy.check()
                .unwrap_or_else(|e| panic!("crash at write {n}: {e}"));
            for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
                assert_eq!(copy.find::<u64>(name).unwrap(), Some(&(i as u64)), "{n}");
            }
            assert_eq!(copy.find::<u64>("short").unwrap(), None, "{n}");
            for name in ["a", "b", "c", "d"] {
                copy.destroy::<u64>(name).unwrap();
            }
            copy.check().unwrap();
            let leaked = empty - copy.free_memory();
            // The blocks in flight at most: a process killed while inserting "d" leaves its
            // entry (48 bytes, not linked yet) and the table being grown for it (8 slots
            // behind a 16-byte table header, plus its block header: 88 bytes), neither
            // reachable. (A killed process undoes nothing: `robust::crash`.)
            assert!(
                leaked <= 48 + 88,
                "crash at write {n}: {leaked} bytes leaked"
            );
            if !crashed {
                assert_eq!(leaked, 0);
                assert!(n > 10, "the sweep crashed at too few writes: {n}");
                break;
            }
        }
    }
}
