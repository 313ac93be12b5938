//! The algorithm of [`RwLock`](super::RwLock): who holds it, robust on both sides.
//!
//! A reader can die too, so every reader must be named, not counted. The lock is a state
//! word naming the one thread that may exclude readers (the writer, or the upgradable
//! reader), a word saying whether that writer is past waiting for readers, a poison word,
//! and [`READER_SLOTS`] slots, each naming one reader by owner id:
//!
//! ```text
//! state    [WAITERS:1][WRITER:1][holder id:30]   WRITER: readers must keep out
//! poison   PoisonCause word (0: clean)
//! writing  1 while the writer may change the data (a dead one then poisons)
//! readers  [WAITERS:1][reader id:31] × READER_SLOTS   0: free
//! ```
//!
//! - A reader claims a free slot (one compare-and-swap, at a slot picked by its id so
//!   threads spread out), then checks the state for `WRITER`; a writer sets `WRITER`, then
//!   checks every slot. Both sides are `SeqCst`, so of a racing pair at least one sees the
//!   other (Dekker): the reader then gives its slot back, the writer waits for the slot.
//!   Unlocking a read lock is one swap of the slot to 0.
//! - A thread that sleeps on a word sets its `WAITERS` bit first, by a compare-and-swap
//!   from the value it then sleeps on; whoever changes the word from that value to let the
//!   sleeper on does it with a swap (or another read-modify-write) that returns the bit,
//!   and wakes the word when the bit was set. The kernel compares the word before it puts
//!   a sleeper to sleep, so a change between the sleeper's look and its sleep makes it look
//!   again: no wake-up is lost. Each sleep is also bounded by [`LIVENESS_POLL`], after
//!   which the sleeper asks the kernel whether the thread it waits for lives.
//! - A dead state holder is taken over by whoever waits for it (a compare-and-swap from the
//!   word naming the dead one, so one waiter wins); if it was writing, the lock is
//!   poisoned before anyone else can get in. A dead reader's slot is cleared by whoever
//!   waits for it (a compare-and-swap from the dead id to 0).
//! - Any bytes are a state: ids nobody holds are dead and get cleared or taken over, a
//!   stray `WAITERS` bit costs one wake-up, a stray `writing` word poisons on takeover.
//!   Exclusion rests on the state word alone (one holder id at a time, replaced only once
//!   the kernel says it is dead), so forged bytes never admit two writers, and every wait
//!   ends at its deadline.

use std::fmt;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::os::fork;
// The `SeqCst` pairing at `RawRwLock::admitted` gets a fence under the model checker.
use crate::robust::atomic::{
    const_unless_loom, seqcst_under_the_model, AtomicU32,
    Ordering::{Relaxed, Release, SeqCst},
};
use crate::robust::crash::{point, thread_crashing};
use crate::robust::{wait, Owner, LIVENESS_POLL, SPINS};
use crate::sync::poison::PoisonCause;
use crate::sync::raw::{describe_holder, Denied, Locker, Wait};

/// How many threads can hold a read lock at once. With the three words before them, the
/// lock takes 128 bytes (two cache lines' worth). A reader beyond them waits for a slot.
/// (Two under the model checker, which explores each look at a slot.)
pub(crate) const READER_SLOTS: usize = if cfg!(loom) { 2 } else { 29 };

/// In the state word and in each slot: a thread sleeps (or slept) on this word.
const WAITERS: u32 = 1 << 31;
/// In the state word: the holder is a writer, or waits for the readers to leave to become
/// one; new readers wait. Clear with a holder: the holder is the upgradable reader.
const WRITER: u32 = 1 << 30;
/// In the state word: the holder's owner id (ids are below 2^30); 0 when nobody holds it.
const HOLDER: u32 = WRITER - 1;

/// A read lock held in a slot.
#[derive(Clone, Copy)]
pub(crate) struct ReadHeld {
    slot: usize,
    /// The fork generation it was taken in: a forked child's copy of a guard releases
    /// nothing (the slot names the parent's thread).
    forks: u32,
}

/// The state word held, by a writer or the upgradable reader.
#[derive(Clone, Copy)]
pub(crate) struct StateHeld {
    /// The holder's owner id.
    me: u32,
    /// Whether the thread was panicking already when it began to write (a panic that
    /// began earlier does not poison).
    panicking: bool,
    /// As in [`ReadHeld`].
    forks: u32,
}

impl StateHeld {
    fn new(me: u32) -> Self {
        StateHeld {
            me,
            panicking: std::thread::panicking(),
            forks: fork::generation(),
        }
    }

    /// Whether this is a forked child's copy, which holds nothing.
    fn stale(&self) -> bool {
        self.forks != fork::generation()
    }
}

/// The lock's words; all-zero is unlocked and clean.
#[repr(C)]
pub(crate) struct RawRwLock {
    state: AtomicU32,
    poison: AtomicU32,
    writing: AtomicU32,
    readers: [AtomicU32; READER_SLOTS],
}

/// The slot where a reader starts looking: spread by a multiplicative hash, so that
/// threads whose ids are neighbours do not all probe the same slots.
#[inline]
fn home(me: u32) -> usize {
    (me.wrapping_mul(0x9E37_79B9) >> 16) as usize % READER_SLOTS
}

/// How long the next sleep may last: the liveness poll, cut at the deadline. Denied once
/// the deadline has passed, and at once when the caller does not wait.
fn poll(wait: Wait) -> Result<Duration, Denied> {
    match wait {
        Wait::No => Err(Denied::WouldBlock),
        Wait::Until(None) => Ok(LIVENESS_POLL),
        Wait::Until(Some(deadline)) => match deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(left.min(LIVENESS_POLL)),
            _ => Err(Denied::WouldBlock),
        },
    }
}

/// The bounded spin before a waiter first sleeps or asks the kernel: [`SPINS`] looks a
/// pause apart for the whole call (none for a caller that does not wait).
struct Spin(u32);

impl Spin {
    fn new(wait: Wait) -> Self {
        Spin(match wait {
            Wait::No => 0,
            Wait::Until(_) => SPINS,
        })
    }

    /// Pauses and says true while spins are left.
    fn again(&mut self) -> bool {
        if self.0 == 0 {
            return false;
        }
        self.0 -= 1;
        std::hint::spin_loop();
        true
    }
}

/// Free reader slots.
#[cfg(not(loom))]
const fn free_slots() -> [AtomicU32; READER_SLOTS] {
    [const { AtomicU32::new(0) }; READER_SLOTS]
}

/// Free reader slots (loom's atomics are made at run time).
#[cfg(loom)]
fn free_slots() -> [AtomicU32; READER_SLOTS] {
    std::array::from_fn(|_| AtomicU32::new(0))
}

impl RawRwLock {
    const_unless_loom! {
        pub(crate) fn new() -> Self {
            RawRwLock {
                state: AtomicU32::new(0),
                poison: AtomicU32::new(0),
                writing: AtomicU32::new(0),
                readers: free_slots(),
            }
        }
    }

    // ----- readers --------------------------------------------------------------------

    /// Takes a read lock for the calling thread.
    #[inline]
    pub(crate) fn read(&self, wait: Wait) -> Result<ReadHeld, Denied> {
        let locker = Locker::of(self);
        let owner = locker.owner();
        let me = owner.thread_id().map_err(Denied::Failed)?;
        let slot = match self.try_read_now(me) {
            Some(slot) => slot,
            None => self.read_contended(owner, me, wait)?,
        };
        Ok(ReadHeld {
            slot,
            forks: fork::generation(),
        })
    }

    /// A read lock if the calling thread's home slot is free and no writer holds or waits
    /// for the lock, without waiting or asking the kernel anything: the uncontended path,
    /// and what `Debug` uses.
    #[inline]
    pub(crate) fn read_now(&self) -> Option<ReadHeld> {
        let me = Locker::of(self).owner().thread_id().ok()?;
        Some(ReadHeld {
            slot: self.try_read_now(me)?,
            forks: fork::generation(),
        })
    }

    /// The uncontended read: no writer, home slot free. A reader that finds more goes the
    /// slow way.
    #[inline]
    fn try_read_now(&self, me: u32) -> Option<usize> {
        if self.state.load(Relaxed) & WRITER != 0 {
            return None;
        }
        let slot = home(me);
        if !self.claim(slot, me) {
            return None;
        }
        self.admitted(slot).then_some(slot)
    }

    /// After claiming `slot`: whether no writer holds or waits for the lock; if one does,
    /// the slot is given back (the writer may wait on it).
    ///
    /// The claim and this load are `SeqCst`, as the writer's setting of `WRITER` and its
    /// loads of the slots: in the single order of those four, either the claim comes
    /// before the writer's load of this slot (the writer waits for the slot) or that load
    /// comes before the claim, and then the writer's `WRITER` comes before this load (the
    /// reader backs off). The load also acquires the last writer's release of the state.
    #[inline]
    fn admitted(&self, slot: usize) -> bool {
        seqcst_under_the_model();
        if self.state.load(SeqCst) & WRITER == 0 {
            point("rwlock read: admitted");
            return true;
        }
        self.vacate(slot);
        false
    }

    /// Claims `slot` for `me` if it is free (the claim `admitted` pairs with).
    #[inline]
    fn claim(&self, slot: usize, me: u32) -> bool {
        point("rwlock slot: claiming");
        let claimed = self.readers[slot]
            .compare_exchange(0, me, SeqCst, Relaxed)
            .is_ok();
        if claimed {
            point("rwlock slot: claimed, the writer bit not yet checked");
        }
        claimed
    }

    /// Frees `slot`, waking whoever announced that it sleeps on it (a draining writer,
    /// readers waiting for a slot). The swap returns the bit that a sleeper set by a
    /// compare-and-swap from the value it sleeps on: either the sleeper's bit is in what
    /// the swap returns, or the sleeper's compare-and-swap fails and it looks again.
    #[inline]
    fn vacate(&self, slot: usize) {
        point("rwlock slot release: before the swap");
        if self.readers[slot].swap(0, Release) & WAITERS != 0 {
            self.wake_slot(slot);
        }
        point("rwlock slot release: released");
    }

    #[cold]
    fn wake_slot(&self, slot: usize) {
        point("rwlock slot: freed, sleepers not yet woken");
        wait::wake_all(&self.readers[slot]);
    }

    #[cold]
    fn read_contended(&self, owner: &Owner, me: u32, wait: Wait) -> Result<usize, Denied> {
        let mut spin = Spin::new(wait);
        let mut watch = home(me);
        loop {
            let s = self.state.load(Relaxed);
            if s & WRITER != 0 {
                let holder = s & HOLDER;
                if holder == me {
                    return Err(self.would_deadlock(wait));
                }
                if spin.again() {
                    continue;
                }
                // The writer waits for this thread's other read lock.
                if self.holds_slot(me) {
                    return Err(self.would_deadlock(wait));
                }
                if !owner.thread_alive(holder) {
                    if self.take_over(s, me) {
                        self.release_state();
                    }
                    continue;
                }
                self.sleep_on_state(s, poll(wait)?);
                continue;
            }
            if let Some(slot) = self.claim_free_slot(me) {
                if self.admitted(slot) {
                    return Ok(slot);
                }
                continue;
            }
            if spin.again() {
                continue;
            }
            if self
                .readers
                .iter()
                .all(|r| r.load(Relaxed) & !WAITERS == me)
            {
                // Every slot is this thread's: nobody else can free one.
                return Err(self.would_deadlock(wait));
            }
            self.wait_for_slot(owner, me, &mut watch, poll(wait)?);
        }
    }

    /// Claims a free slot for `me`, looking from its home slot on; None when all are taken.
    fn claim_free_slot(&self, me: u32) -> Option<usize> {
        let start = home(me);
        (0..READER_SLOTS)
            .map(|i| (start + i) % READER_SLOTS)
            .find(|&slot| self.readers[slot].load(Relaxed) == 0 && self.claim(slot, me))
    }

    /// Every slot is taken: clears the watched slot if its reader died, or else sleeps on
    /// it for at most `poll` until its reader leaves; then watches the next one (a reader
    /// that stays long holds up a waiter for one poll at most). Slots of this thread are
    /// skipped while others are there to watch.
    fn wait_for_slot(&self, owner: &Owner, me: u32, watch: &mut usize, poll: Duration) {
        let mut slot = *watch;
        for _ in 0..READER_SLOTS {
            if self.readers[slot].load(Relaxed) & !WAITERS != me {
                break;
            }
            slot = (slot + 1) % READER_SLOTS;
        }
        *watch = (slot + 1) % READER_SLOTS;
        let v = self.readers[slot].load(Relaxed);
        let id = v & !WAITERS;
        if v == 0 {
            return;
        }
        if id != me && !owner.thread_alive(id) {
            self.clear_dead(slot, v);
            return;
        }
        self.sleep_on_slot(slot, v, poll);
    }

    /// Sleeps on `slot` while it holds `v`, for at most `poll` (see [`vacate`](Self::vacate)
    /// for why no wake-up is lost).
    fn sleep_on_slot(&self, slot: usize, v: u32, poll: Duration) {
        let r = &self.readers[slot];
        if v & WAITERS == 0
            && r.compare_exchange(v, v | WAITERS, Relaxed, Relaxed)
                .is_err()
        {
            return;
        }
        point("rwlock slot: waiters bit set, about to sleep");
        wait::wait(r, v | WAITERS, Some(poll));
        point("rwlock slot: awake");
    }

    /// Frees `slot`, found holding `v` whose reader is dead (nothing if it changed since).
    fn clear_dead(&self, slot: usize, v: u32) {
        if self.readers[slot]
            .compare_exchange(v, 0, Relaxed, Relaxed)
            .is_ok()
        {
            point("rwlock slot: a dead reader's cleared");
            if v & WAITERS != 0 {
                self.wake_slot(slot);
            }
        }
    }

    /// Whether a slot names `me`: the thread holds a read lock already.
    fn holds_slot(&self, me: u32) -> bool {
        self.readers
            .iter()
            .any(|r| r.load(Relaxed) & !WAITERS == me)
    }

    /// Releases a read lock.
    #[inline]
    pub(crate) fn release_read(&self, held: &ReadHeld) {
        // A thread unwinding from a simulated crash releases nothing (see `robust::crash`).
        if held.forks == fork::generation() && !thread_crashing() {
            self.vacate(held.slot);
        }
    }

    // ----- writers and the upgradable reader -----------------------------------------

    /// Takes the write lock for the calling thread: the state word, then waits for the
    /// readers to leave.
    #[inline]
    pub(crate) fn write(&self, wait: Wait) -> Result<StateHeld, Denied> {
        let locker = Locker::of(self);
        let owner = locker.owner();
        let me = owner.thread_id().map_err(Denied::Failed)?;
        if !self.take_free_state(me | WRITER) {
            self.claim_state(owner, me, WRITER, wait)?;
        }
        if let Err(denied) = self.drain(owner, me, wait) {
            self.release_state();
            return Err(denied);
        }
        self.start_writing();
        Ok(StateHeld::new(me))
    }

    /// Takes the state word as `value` if nobody holds it. SeqCst: the writer's half of the
    /// pairing described at `admitted`.
    #[inline]
    fn take_free_state(&self, value: u32) -> bool {
        point("rwlock state: trying a free word");
        let taken = self
            .state
            .compare_exchange(0, value, SeqCst, Relaxed)
            .is_ok();
        if taken {
            point("rwlock state: taken from a free word");
        }
        taken
    }

    /// The readers have left: from now on a death poisons.
    #[inline]
    fn start_writing(&self) {
        point("rwlock write: readers drained, not yet writing");
        self.writing.store(1, Relaxed);
        point("rwlock write: writing");
    }

    /// Takes the upgradable read lock for the calling thread: the state word without
    /// `WRITER`, so readers still come and go.
    pub(crate) fn upgradable(&self, wait: Wait) -> Result<StateHeld, Denied> {
        let locker = Locker::of(self);
        let owner = locker.owner();
        let me = owner.thread_id().map_err(Denied::Failed)?;
        if !self.take_free_state(me) {
            self.claim_state(owner, me, 0, wait)?;
        }
        Ok(StateHeld::new(me))
    }

    /// Makes the upgradable reader `held` the writer: sets `WRITER` (new readers wait) and
    /// waits for the readers to leave; on failure it stays the upgradable reader.
    pub(crate) fn upgrade(&self, held: &StateHeld, wait: Wait) -> Result<StateHeld, Denied> {
        if held.stale() {
            return Ok(*held);
        }
        let locker = Locker::of(self);
        // Only `WAITERS` can change beside us. SeqCst: the writer's half at `admitted`.
        point("rwlock upgrade: before setting the writer bit");
        self.state.fetch_or(WRITER, SeqCst);
        point("rwlock upgrade: writer bit set");
        if let Err(denied) = self.drain(locker.owner(), held.me, wait) {
            self.drop_writer_bit();
            return Err(denied);
        }
        self.start_writing();
        Ok(StateHeld::new(held.me))
    }

    /// The state word for `me`, with `mode` (`WRITER` or 0), after a failed fast attempt.
    #[cold]
    fn claim_state(&self, owner: &Owner, me: u32, mode: u32, wait: Wait) -> Result<(), Denied> {
        let mut spin = Spin::new(wait);
        loop {
            let s = self.state.load(Relaxed);
            let holder = s & HOLDER;
            if holder == 0 {
                // Keep `WAITERS`: others may sleep, and our release must wake them.
                if self
                    .state
                    .compare_exchange(s, me | mode | (s & WAITERS), SeqCst, Relaxed)
                    .is_ok()
                {
                    point("rwlock state: taken after waiting");
                    return Ok(());
                }
                continue;
            }
            if holder == me {
                return Err(self.would_deadlock(wait));
            }
            if spin.again() {
                continue;
            }
            if !owner.thread_alive(holder) {
                if self.take_over(s, me) {
                    if mode != WRITER {
                        self.drop_writer_bit();
                    }
                    return Ok(());
                }
                continue;
            }
            // A writer that waits for this thread's read lock would wait for us forever.
            if s & WRITER != 0 && self.holds_slot(me) {
                return Err(self.would_deadlock(wait));
            }
            self.sleep_on_state(s, poll(wait)?);
        }
    }

    /// Waits, holding the state word with `WRITER`, until no slot names a live reader.
    #[inline]
    fn drain(&self, owner: &Owner, me: u32, wait: Wait) -> Result<(), Denied> {
        // SeqCst: the writer's half of the pairing described at `admitted`.
        seqcst_under_the_model();
        match self.readers.iter().position(|r| r.load(SeqCst) != 0) {
            None => Ok(()),
            Some(first) => self.drain_from(first, owner, me, wait),
        }
    }

    #[cold]
    fn drain_from(&self, first: usize, owner: &Owner, me: u32, wait: Wait) -> Result<(), Denied> {
        let mut spin = Spin::new(wait);
        for slot in first..READER_SLOTS {
            loop {
                let v = self.readers[slot].load(SeqCst);
                if v == 0 {
                    break;
                }
                let id = v & !WAITERS;
                if id == me {
                    // This thread reads: it would wait for itself.
                    return Err(self.would_deadlock(wait));
                }
                if spin.again() {
                    continue;
                }
                if !owner.thread_alive(id) {
                    self.clear_dead(slot, v);
                    continue;
                }
                self.sleep_on_slot(slot, v, poll(wait)?);
            }
        }
        Ok(())
    }

    /// Takes the state word from its dead holder, found as `s`, for `me` as a writer (new
    /// readers wait), poisoning the lock if the dead one was writing: before anyone else
    /// can get in. False if the word changed meanwhile (look again).
    ///
    /// The dead holder's `writing` is seen as it left it: the kernel's lock table (or, for
    /// a thread of this process, the lock of its id registry) told of its end after its
    /// last store.
    fn take_over(&self, s: u32, me: u32) -> bool {
        if self
            .state
            .compare_exchange(s, me | WRITER | (s & WAITERS), SeqCst, Relaxed)
            .is_err()
        {
            return false;
        }
        // A crash here leaves `writing` for the next taker: no poison is lost.
        point("rwlock state: taken over, not yet poisoned");
        if self.writing.swap(0, Relaxed) != 0 {
            self.poison.store(PoisonCause::OwnerDied.word(), Relaxed);
        }
        point("rwlock state: taken over");
        true
    }

    /// Sleeps on the state word while it holds `s`, for at most `poll`. The holder lets
    /// sleepers on with a read-modify-write that returns the bit (a swap to 0, or clearing
    /// `WRITER`), and wakes when it is set: as for slots (see `vacate`), no wake-up is lost.
    fn sleep_on_state(&self, s: u32, poll: Duration) {
        if s & WAITERS == 0
            && self
                .state
                .compare_exchange(s, s | WAITERS, Relaxed, Relaxed)
                .is_err()
        {
            return;
        }
        point("rwlock state: waiters bit set, about to sleep");
        wait::wait(&self.state, s | WAITERS, Some(poll));
        point("rwlock state: awake");
    }

    /// Gives the state word up, waking its sleepers: all of them, since every reader and
    /// one writer may now get in.
    #[inline]
    fn release_state(&self) {
        point("rwlock state release: before the swap");
        if self.state.swap(0, Release) & WAITERS != 0 {
            self.wake_state();
        }
        point("rwlock state release: released");
    }

    /// Clears `WRITER` while keeping the state word (the writer becomes the upgradable
    /// reader), waking the readers that wait.
    fn drop_writer_bit(&self) {
        point("rwlock writer bit: before clearing");
        if self.state.fetch_and(!WRITER, Release) & WAITERS != 0 {
            self.wake_state();
        }
        point("rwlock writer bit: cleared");
    }

    #[cold]
    fn wake_state(&self) {
        point("rwlock state: let go, sleepers not yet woken");
        wait::wake_all(&self.state);
    }

    /// The writer stops writing: poisons the lock if the thread began to panic since it
    /// took the lock.
    fn end_writing(&self, held: &StateHeld) {
        point("rwlock write: ending");
        if !held.panicking && std::thread::panicking() {
            self.poison.store(PoisonCause::Panicked.word(), Relaxed);
        }
        self.writing.store(0, Relaxed);
        point("rwlock write: ended");
    }

    /// Releases the write lock.
    #[inline]
    pub(crate) fn release_write(&self, held: &StateHeld) {
        if held.stale() || thread_crashing() {
            return;
        }
        self.end_writing(held);
        self.release_state();
    }

    /// Releases the upgradable read lock.
    #[inline]
    pub(crate) fn release_upgradable(&self, held: &StateHeld) {
        if !held.stale() && !thread_crashing() {
            self.release_state();
        }
    }

    /// Turns the write lock into a read lock, no writer getting in between.
    pub(crate) fn downgrade_write(&self, held: &StateHeld) -> ReadHeld {
        if !held.stale() {
            self.end_writing(held);
        }
        self.downgrade_to_read(held)
    }

    /// Turns the write lock into the upgradable read lock, readers getting in at once.
    pub(crate) fn downgrade_write_to_upgradable(&self, held: &StateHeld) -> StateHeld {
        if held.stale() {
            return *held;
        }
        self.end_writing(held);
        self.drop_writer_bit();
        *held
    }

    /// Turns the state word held into a read lock: claims a slot first, then gives the
    /// word up. Waits while every slot is taken (by other readers, or by readers that
    /// found `WRITER` and are backing off); a thread that holds every slot itself waits
    /// forever, as the type's docs say.
    pub(crate) fn downgrade_to_read(&self, held: &StateHeld) -> ReadHeld {
        if held.stale() {
            return ReadHeld {
                slot: 0,
                forks: held.forks,
            };
        }
        let locker = Locker::of(self);
        let mut watch = home(held.me);
        let slot = loop {
            if let Some(slot) = self.claim_free_slot(held.me) {
                break slot;
            }
            self.wait_for_slot(locker.owner(), held.me, &mut watch, LIVENESS_POLL);
        };
        self.release_state();
        ReadHeld {
            slot,
            forks: held.forks,
        }
    }

    /// Runs `check` (a validator reading the protected data) where no writer can race it:
    /// under the upgradable read lock, taken without waiting. It needs no reader slot, and a
    /// dead or forged holder of the state word is taken over (the lock poisoned if it was
    /// writing) as by any locker. While a live thread holds the state word, a trusted
    /// process (an attached mapping: see ARCHITECTURE "Trust") writes the data through the
    /// lock or is about to, and `check` is skipped: reading it now could be a data race.
    pub(crate) fn check_under<E>(&self, check: impl FnOnce() -> Result<(), E>) -> Result<(), E> {
        match self.upgradable(Wait::Until(Some(Instant::now()))) {
            Ok(held) => {
                let checked = check();
                self.release_upgradable(&held);
                checked
            }
            Err(Denied::WouldBlock | Denied::Failed(_)) => Ok(()),
        }
    }

    /// Whether a thread sleeps (or slept) on the lock: a reader or writer on the state word,
    /// a writer or a reader beyond the slots on a slot.
    pub(crate) fn has_waiters(&self) -> bool {
        std::iter::once(&self.state)
            .chain(&self.readers)
            .any(|w| w.load(Relaxed) & WAITERS != 0)
    }

    // ----- poison -----------------------------------------------------------------------

    /// Whether the lock is poisoned.
    #[inline]
    pub(crate) fn poisoned(&self) -> Option<PoisonCause> {
        PoisonCause::from_word(self.poison.load(Relaxed))
    }

    /// Marks the data repaired.
    pub(crate) fn clear_poison(&self) {
        self.poison.store(0, Relaxed);
    }

    /// Why a thread cannot wait: [`Error::WouldDeadlock`], or for a caller that does not
    /// wait, that the lock is taken.
    fn would_deadlock(&self, wait: Wait) -> Denied {
        match wait {
            Wait::No => Denied::WouldBlock,
            Wait::Until(_) => Denied::Failed(Error::WouldDeadlock {
                what: format!("read-write lock at {:p}", self),
            }),
        }
    }
}

/// The holders (the writer or upgradable reader, and each reader, by owner id and
/// whether it is this thread, alive or dead), the poison and whether anyone waits. It asks
/// the kernel about each holder, and never blocks.
impl fmt::Debug for RawRwLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let locker = Locker::of(self);
        let owner = locker.owner();
        let s = self.state.load(Relaxed);
        let holder = (s & HOLDER != 0).then(|| describe_holder(owner, s & HOLDER));
        let (writer, upgradable) = if s & WRITER == 0 {
            (None, holder)
        } else if self.writing.load(Relaxed) == 0 {
            let pending = holder.map(|h| format!("{h}, waiting for the readers to leave"));
            (pending, None)
        } else {
            (holder, None)
        };
        let readers: Vec<String> = self
            .readers
            .iter()
            .map(|r| r.load(Relaxed) & !WAITERS)
            .filter(|&id| id != 0)
            .map(|id| describe_holder(owner, id))
            .collect();
        f.debug_struct("Lock")
            .field("writer", &writer)
            .field("upgradable", &upgradable)
            .field("readers", &readers.len())
            .field("reader_ids", &readers)
            .field("poisoned", &self.poisoned())
            .field("waiters", &self.has_waiters())
            .finish()
    }
}
