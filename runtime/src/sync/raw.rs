//! The part of every user lock that decides who holds it: a robust lock word naming the
//! holding thread (see `robust::thread_ids`) and a poison word, with the lookup of whose
//! names the lock is taken in (the owner of the mapping the lock lives in).

use crate::robust::atomic::{const_unless_loom, AtomicU32, Ordering::Relaxed};
use std::fmt;
use std::sync::OnceLock;
use std::time::Instant;

use super::poison::PoisonCause;
use crate::error::Error;
use crate::manager::SegmentCore;
use crate::os::fork;
use crate::registry;
use crate::robust::crash::{point, thread_crashing};
use crate::robust::{Acquired, Owner, RobustMutex};

/// Whose names locks at an address are taken in: the owner of the mapping that holds it,
/// or for memory outside every segment (a lock on the stack or heap), the process's own.
pub(crate) struct Locker {
    segment: Option<SegmentCore>,
}

impl Locker {
    /// The locker of the lock at `at`.
    #[inline]
    pub(crate) fn of<T>(at: &T) -> Self {
        Locker {
            segment: registry::segment_at(std::ptr::from_ref(at).cast()),
        }
    }

    #[inline]
    pub(crate) fn owner(&self) -> &Owner {
        match &self.segment {
            // The mapping holding the lock stays mapped while the lock is borrowed, and its
            // owner with it (`registry::segment_at`).
            Some(segment) => segment.owner(),
            None => outside(),
        }
    }
}

/// The owner of locks outside every segment: memory of this process alone.
fn outside() -> &'static Owner {
    static OUTSIDE: OnceLock<Owner> = OnceLock::new();
    OUTSIDE.get_or_init(Owner::private)
}

/// This thread's owner id in the segment mapping it last took a lock in (`start..start +
/// len`), valid while the registry is at generation `registry` (no mapping has come or
/// gone) and the process at fork generation `forks`: a thread's id on an owner lasts as
/// long as the thread. Not under loom, whose threads share one OS thread's locals.
#[cfg(not(loom))]
#[derive(Clone, Copy)]
struct LastLock {
    registry: u64,
    start: usize,
    len: usize,
    forks: u32,
    id: u32,
}

#[cfg(not(loom))]
thread_local! {
    // The last two mappings locked in, the latest first (a thread taking turns between
    // two mappings keeps hitting).
    static LAST_LOCK: std::cell::Cell<[LastLock; 2]> = const {
        let none = LastLock { registry: 0, start: 0, len: 0, forks: 0, id: 0 };
        std::cell::Cell::new([none, none])
    };
}

/// How long a lock call may wait.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    /// Not at all.
    No,
    /// Until the deadline, if any.
    Until(Option<Instant>),
}

/// Why a lock was not taken.
pub(crate) enum Denied {
    WouldBlock,
    Failed(Error),
}

/// Makes a guard `!Send`: a lock names the thread that took it, and a release from another
/// thread would leave the lock naming a thread that no longer holds it.
pub(crate) type NamesItsThread = std::marker::PhantomData<*const ()>;

/// A held [`RawMutex`]: what its release needs to know.
#[derive(Clone, Copy)]
pub(crate) struct Held {
    /// The poison found on taking it.
    pub(crate) poisoned: Option<PoisonCause>,
    /// Whether the thread was panicking already (a panic that began earlier does not poison).
    panicking: bool,
    /// The fork generation it was taken in: a forked child's copy of a guard releases
    /// nothing (the lock is the parent's thread's).
    forks: u32,
}

impl Held {
    /// The same hold, reporting no poison (a nested level: the outermost reported it).
    pub(crate) fn without_poison(self) -> Self {
        Held {
            poisoned: None,
            ..self
        }
    }

    /// Whether this is a forked child's copy of its parent's hold: what it protects is the
    /// parent's to change and release.
    #[inline]
    pub(crate) fn inherited(&self) -> bool {
        self.forks != fork::generation()
    }
}

/// A robust lock word and a poison word; 8 bytes, all-zero is unlocked and clean.
#[repr(C)]
#[derive(Default)]
pub(crate) struct RawMutex {
    word: RobustMutex,
    poison: AtomicU32,
}

impl RawMutex {
    const_unless_loom! {
        pub(crate) fn new() -> Self {
            RawMutex {
                word: RobustMutex::new(),
                poison: AtomicU32::new(0),
            }
        }
    }

    /// Takes the lock for the calling thread. A holder found dead poisons it
    /// ([`PoisonCause::OwnerDied`]); the poison is reported in [`Held::poisoned`]. A thread
    /// that holds it already is refused: `WouldBlock` without waiting, else `WouldDeadlock`.
    #[inline]
    pub(crate) fn acquire(&self, wait: Wait) -> Result<Held, Denied> {
        match self.acquire_or_nest(wait)? {
            (held, false) => Ok(held),
            (_, true) => Err(match wait {
                Wait::No => Denied::WouldBlock,
                Wait::Until(_) => Denied::Failed(Error::WouldDeadlock { what: self.what() }),
            }),
        }
    }

    /// As [`acquire`](Self::acquire), but when the calling thread holds the lock already
    /// it is not taken again and the flag says so (for a lock that nests).
    #[inline]
    pub(crate) fn acquire_or_nest(&self, wait: Wait) -> Result<(Held, bool), Denied> {
        let me = self.my_id().map_err(Denied::Failed)?;
        let mut nested = false;
        if !self.word.try_lock(me) {
            let locker = Locker::of(self);
            let owner = locker.owner();
            // This thread may hold it through another mapping of the segment, under the id
            // it has there.
            nested = self
                .word
                .owner()
                .is_some_and(|holder| holder == me || owner.held_by_this_thread(holder));
            if !nested {
                self.acquire_contended(owner, me, wait)?;
            }
        }
        let held = Held {
            poisoned: PoisonCause::from_word(self.poison.load(Relaxed)),
            panicking: std::thread::panicking(),
            forks: fork::generation(),
        };
        Ok((held, nested))
    }

    /// The calling thread's owner id for this lock: from the thread's last lock in the same
    /// mapping, while the registry and the fork generation say it is still that mapping.
    #[inline(always)]
    fn my_id(&self) -> Result<u32, Error> {
        #[cfg(not(loom))]
        if let Ok(hits) = LAST_LOCK.try_with(std::cell::Cell::get) {
            let at = std::ptr::from_ref(self).addr();
            for hit in hits {
                if hit.registry == registry::generation()
                    && at.wrapping_sub(hit.start) < hit.len
                    && hit.forks == fork::generation()
                {
                    return Ok(hit.id);
                }
            }
        }
        self.my_id_slow()
    }

    #[cold]
    #[inline(never)]
    fn my_id_slow(&self) -> Result<u32, Error> {
        #[cfg(not(loom))]
        let forks = fork::generation();
        let id = Locker::of(self).owner().thread_id()?;
        #[cfg(not(loom))]
        if let Some((registry, start, len)) =
            registry::last_hit_range(std::ptr::from_ref(self).cast())
        {
            let _ = LAST_LOCK.try_with(|last| {
                let latest = last.get()[0];
                last.set([
                    LastLock {
                        registry,
                        start,
                        len,
                        forks,
                        id,
                    },
                    latest,
                ]);
            });
        }
        Ok(id)
    }

    #[cold]
    fn acquire_contended(&self, owner: &Owner, me: u32, wait: Wait) -> Result<(), Denied> {
        let Wait::Until(deadline) = wait else {
            return Err(Denied::WouldBlock);
        };
        match self
            .word
            .lock_contended(me, &|id| owner.thread_alive(id), deadline)
        {
            Acquired::Clean => Ok(()),
            Acquired::OwnerDied => {
                point("mutex: taken over, not yet poisoned");
                self.poison.store(PoisonCause::OwnerDied.word(), Relaxed);
                Ok(())
            }
            Acquired::TimedOut => Err(Denied::WouldBlock),
            Acquired::Poisoned => Err(Denied::Failed(Error::Corrupted {
                what: self.what(),
                reason: "its lock word names no holder a shmkit lock can have".into(),
            })),
        }
    }

    /// Runs `check` (a validator reading the protected data) where no writer can race it:
    /// under the lock, taken without waiting (a dead or forged holder is taken over, and the
    /// lock poisoned, as any locker would). While a live holder has it, the data is being
    /// written by a trusted process (an attached mapping: see ARCHITECTURE "Trust") through
    /// the lock, and `check` is skipped: reading it now would be a data race. A lock word
    /// no shmkit lock can hold (`Corrupted`) can never be taken, so no writer races `check`:
    /// it runs, since a mapping with exclusive access reaches the data without the lock.
    pub(crate) fn check_under<E>(&self, check: impl FnOnce() -> Result<(), E>) -> Result<(), E> {
        match self.acquire(Wait::Until(Some(Instant::now()))) {
            Ok(held) => {
                let checked = check();
                self.release(&held);
                checked
            }
            Err(Denied::Failed(Error::Corrupted { .. })) => check(),
            Err(Denied::WouldBlock | Denied::Failed(_)) => Ok(()),
        }
    }

    /// Releases a lock taken as `held`, poisoning it if the thread began to panic since. A
    /// thread unwinding from a simulated crash releases nothing (see `robust::crash`).
    #[inline]
    pub(crate) fn release(&self, held: &Held) {
        if held.inherited() || thread_crashing() {
            return;
        }
        self.poison_if_interrupted(held);
        self.word.unlock();
    }

    /// Poisons the lock if a panic began while `held` was held: for every level of a
    /// reentrant lock, which may go in any order (the last one is not always the one a
    /// panic interrupted).
    #[inline]
    pub(crate) fn poison_if_interrupted(&self, held: &Held) {
        if !held.panicking && std::thread::panicking() && !thread_crashing() {
            self.poison.store(PoisonCause::Panicked.word(), Relaxed);
        }
    }

    /// Whether the lock is poisoned.
    pub(crate) fn poisoned(&self) -> Option<PoisonCause> {
        PoisonCause::from_word(self.poison.load(Relaxed))
    }

    /// Marks the data repaired.
    pub(crate) fn clear_poison(&self) {
        self.poison.store(0, Relaxed);
    }

    /// Whether a live thread holds the lock now: whether a holder seen in the middle of
    /// something can still finish it. Asks the kernel; never blocks.
    pub(crate) fn held_by_live_owner(&self) -> bool {
        let locker = Locker::of(self);
        self.word
            .owner()
            .is_some_and(|id| locker.owner().thread_alive(id))
    }

    /// Whether a waiter sleeps (or slept) on the lock.
    pub(crate) fn has_waiters(&self) -> bool {
        self.word.has_waiters()
    }

    fn what(&self) -> String {
        format!("lock at {:p}", self)
    }
}

/// The holder (by owner id, and whether it is this thread or alive), the poison and
/// whether anyone waits; it asks the kernel about the holder, and never blocks.
impl fmt::Debug for RawMutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let locker = Locker::of(self);
        let owner = locker.owner();
        let holder = self.word.owner().map(|id| describe_holder(owner, id));
        f.debug_struct("Lock")
            .field("held_by", &holder)
            .field("poisoned", &self.poisoned())
            .field("waiters", &self.has_waiters())
            .finish()
    }
}

/// A lock holder for `Debug`: its owner id, and whether it is this thread, alive or dead
/// (asking the kernel).
pub(crate) fn describe_holder(owner: &Owner, id: u32) -> String {
    let whose = if owner.thread_id().ok() == Some(id) {
        "this thread"
    } else if owner.thread_alive(id) {
        "alive"
    } else {
        "dead"
    };
    format!("owner {id} ({whose})")
}
