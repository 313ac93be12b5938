//! The index lock: a second robust lock, beside the allocator's, so that `atomic_func` can
//! keep other threads and processes from creating, finding or destroying objects while raw
//! allocation goes on. Lock order: index lock, then allocator lock.
//!
//! Lookups take it too, with one exception: `find` of a named object in a hash index first
//! probes without it (`ops::find_fast`), reading the table and the entry through atomic
//! loads that the lock holder's atomic stores publish (a seqlock-style read of plain bytes
//! would be a data race in Rust's memory model). The probe answers only when it finds a
//! live object and then finds this lock free (so no holder is midway through publishing
//! several objects together); anything else, an absence included, is decided under the
//! lock. What the probe may still be reading when the holder unlinks it is retired, not
//! freed (`retired`). A find that succeeds that way executes no locked instruction: on
//! the hot path they would serialise the overlapping cache misses of consecutive finds.
//!
//! It is re-entrant for the thread that holds it, so that `find` or `construct` work inside
//! `atomic_func` and inside the closures that build objects. The holder is recorded next to
//! the lock word (a per-process thread number in the other half of the header word); with
//! the owner id naming one of this process's mappings, a second mapping of the same
//! segment in the same thread sees it too.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};

use super::space::Space;
use crate::error::{Error, Result};
use crate::manager::header::words;
use crate::robust::{lock_with_recovery, RobustGuard, RobustMutex};

/// This thread's number in this process (never 0); 0 when the thread's locals are gone
/// (in a thread-local destructor), where nesting is not recognised.
fn thread_no() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    thread_local!(static NO: Cell<u32> = const { Cell::new(0) });
    NO.try_with(|no| match no.get() {
        0 => {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            no.set(n);
            n
        }
        n => n,
    })
    .unwrap_or(0)
}

/// Holds the index lock (or is a nested acquisition by its holder); releases on drop.
pub(crate) struct IndexGuard<'a> {
    _held: Option<Held<'a>>,
}

/// The outermost acquisition: clears the holder, then releases (or poisons) the lock
/// (neither in a forked child, see [`RobustGuard::inherited`]).
struct Held<'a> {
    holder: &'a AtomicU32,
    lock: RobustGuard<'a>,
}

impl<'a> AsMut<RobustGuard<'a>> for Held<'a> {
    fn as_mut(&mut self) -> &mut RobustGuard<'a> {
        &mut self.lock
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // A forked child's copy leaves the parent's holder in place, and a simulated crash
        // (tests) everything, as a killed process would.
        if !self.lock.inherited() && !crate::robust::crash::crashing() {
            self.holder.store(0, Ordering::Relaxed);
        }
    }
}

fn parts(s: &Space) -> (&RobustMutex, &AtomicU32) {
    let word = std::ptr::from_ref(s.word(words::INDEX_LOCK));
    // SAFETY: the 8-byte header word holds the mutex (a `repr(C)` `AtomicU32`) in its first
    // four bytes and the holder in the last four; both are aligned and live as long as the
    // mapping. The word is never accessed as a whole after formatting.
    unsafe {
        (
            &*word.cast::<RobustMutex>(),
            &*word.cast::<AtomicU32>().add(1),
        )
    }
}

/// Takes the index lock of `s`; `recover` repairs the indexes when its last owner died.
pub(crate) fn lock<'a>(
    s: &'a Space,
    recover: impl FnOnce(&Space) -> Result<()>,
) -> Result<IndexGuard<'a>> {
    if s.core().holds_lock() {
        // The allocator lock comes after the index lock: waiting for the index lock while
        // holding the allocator's could deadlock with an `atomic_func` that allocates.
        return Err(Error::LockReentered {
            what: s.core().what(),
        });
    }
    let (mutex, holder) = parts(s);
    let me = thread_no();
    if me != 0
        && holder.load(Ordering::Relaxed) == me
        && mutex.owner().is_some_and(|o| s.core().owner().is_ours(o))
    {
        return Ok(IndexGuard { _held: None });
    }
    // A failed recovery leaves the indexes half rebuilt: the lock is then poisoned, so that
    // nobody uses them as if they were sound.
    let held = lock_with_recovery(
        mutex,
        s.core().owner(),
        |lock| {
            holder.store(me, Ordering::Relaxed);
            Held { holder, lock }
        },
        |_| recover(s),
        || s.corrupt("the index lock was poisoned".into()),
    )?;
    Ok(IndexGuard { _held: Some(held) })
}

/// Whether the index lock word is all zero, which is free ([`RobustMutex`]): not held,
/// poisoned or waited for. One relaxed load, inlined into the lookup without the lock,
/// which defers to the locked path otherwise.
#[inline(always)]
pub(crate) fn free(s: &Space) -> bool {
    let word = std::ptr::from_ref(s.word(words::INDEX_LOCK)).cast::<AtomicU32>();
    // SAFETY: the first four bytes of the header word are the mutex's lock word, a
    // `repr(C)` `AtomicU32` (see `parts`), aligned and mapped as long as `s`.
    unsafe { &*word }.load(Ordering::Relaxed) == 0
}

/// Whether the index lock word names a holder (in a private copy: one that is gone).
pub(crate) fn held(s: &Space) -> bool {
    parts(s).0.owner().is_some()
}

/// Frees the index lock of a private copy of a segment, whose lock word may name a process
/// of the segment it was copied from.
pub(crate) fn force_unlock(s: &Space) {
    let (mutex, holder) = parts(s);
    holder.store(0, Ordering::Relaxed);
    mutex.force_unlock();
}
