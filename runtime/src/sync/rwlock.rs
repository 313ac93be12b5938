//! [`RwLock<T>`]: `std::sync::RwLock` for data in a segment, shared by threads and
//! processes, robust on the readers' side too, with an upgradable read.

mod raw;

use std::cell::UnsafeCell;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use super::poison::{LockError, LockResult, PoisonCause, PoisonError, TryLockError, TryLockResult};
use super::raw::{Denied, NamesItsThread, Wait};
use crate::error::Error;
use crate::layout::{PositionIndependent, ShmDerefMut, ShmMut};
use crate::robust::atomic::const_unless_loom;
use raw::{RawRwLock, ReadHeld, StateHeld};

/// A reader-writer lock for data that lives in a segment, shared by every thread of every
/// process that maps it: many readers or one writer, as `std::sync::RwLock`, plus an
/// upgradable read (Boost's upgradable mutex, `parking_lot`'s API).
///
/// # Robustness, on both sides
///
/// Every holder is a thread named by an owner id whose liveness the kernel keeps (see the
/// [module docs](super)), readers included: the lock keeps a table of
/// [`READER_SLOTS`](Self::READER_SLOTS) reader slots, each naming one reader.
/// - A reader that dies (its process killed, or its thread exited with the guard leaked)
///   is cleared from its slot by the writer waiting for it, within
///   [`LIVENESS_POLL`](super::LIVENESS_POLL) (plus one question to the kernel per live
///   reader): it never blocks writers for longer. A reader's death does not poison: it
///   changed nothing.
/// - A writer that dies is taken over by the next reader or writer within
///   `LIVENESS_POLL`, and the lock is poisoned with [`PoisonCause::OwnerDied`] before
///   anyone reads; a writer that panics poisons it with [`PoisonCause::Panicked`]. A
///   reader that panics does not poison (as std). A writer that died while still waiting
///   for readers to leave had not written: its death does not poison.
/// - Any bytes in the lock are a state: forged holders are dead ones, and no bytes can
///   admit two writers or make a wait outlast its timeout.
///
/// # Fairness and waiting
///
/// Writer-preferring: a writer first takes the lock's state word, which keeps new readers
/// out, then waits for the readers inside to leave; a stream of readers cannot starve it.
/// Writers among themselves are not queued (whoever gets there first after a release), and
/// a steady stream of writers can starve readers. While an upgradable reader holds the
/// lock, readers still get in and writers wait for it; its
/// [`upgrade`](RwLockUpgradableReadGuard::upgrade) then keeps new readers out and waits for
/// the others to leave, with no writer in between. Waiters spin briefly
/// ([`SPINS`](super::SPINS)), then sleep; every release wakes them (no lost wake-ups).
///
/// # Readers beyond the slots, and a thread's own locks
///
/// A reader that finds all `READER_SLOTS` slots taken waits for one to free up, never
/// fails (watching one slot at a time, the next after each `LIVENESS_POLL`). A thread may
/// hold several read locks at once (one slot each), but as with std's, a read lock taken
/// while a writer waits waits behind the writer: if the thread holds a read lock already,
/// that is a deadlock, reported as [`Error::WouldDeadlock`]. So are a write or upgradable
/// read while the thread writes, a write or an upgrade while it reads, and a read while
/// it writes. (A downgrade of an upgradable read by a thread that holds every slot itself
/// waits forever.)
///
/// The guards deref to `&T`; the write guard to `&mut T` for plain data
/// ([`PositionIndependent`]) and gives a [`ShmMut<T>`] for everything. Guards are not
/// `Send`: the lock names the thread that took it.
///
/// 128 bytes ahead of `T`; all-zero bytes are an unlocked, clean lock.
#[repr(C)]
pub struct RwLock<T> {
    pub(super) raw: RawRwLock,
    data: UnsafeCell<T>,
}

// SAFETY: as `std::sync::RwLock`: moving the lock moves `T`.
unsafe impl<T: Send> Send for RwLock<T> {}
// SAFETY: as `std::sync::RwLock`: readers share `&T` between threads, a writer hands `T`
// from one thread to the next.
unsafe impl<T: Send + Sync> Sync for RwLock<T> {}

/// What an acquisition gave: a guard (maybe poisoned) or why none.
type Acquired<G> = Result<LockResult<G>, TryLockError<G>>;

/// The guard `make` builds from what the raw lock gave, poisoned if `cause` says so.
fn acquired<H, G>(
    taken: Result<H, Denied>,
    make: impl FnOnce(H) -> G,
    cause: impl FnOnce() -> Option<PoisonCause>,
) -> Acquired<G> {
    match taken {
        Ok(held) => Ok(poisoned_if(make(held), cause())),
        Err(Denied::WouldBlock) => Err(TryLockError::WouldBlock),
        Err(Denied::Failed(e)) => Err(TryLockError::Failed(e)),
    }
}

/// `guard`, inside a [`PoisonError`] if the lock is poisoned.
#[inline]
fn poisoned_if<G>(guard: G, cause: Option<PoisonCause>) -> LockResult<G> {
    match cause {
        None => Ok(guard),
        Some(cause) => Err(LockError::Poisoned(PoisonError::new(guard, cause))),
    }
}

/// The result of an acquisition without deadline.
fn blocking<G>(acquired: Acquired<G>) -> LockResult<G> {
    match acquired {
        Ok(guard) => guard,
        Err(TryLockError::Failed(e)) => Err(LockError::Failed(e)),
        Err(TryLockError::Poisoned(p)) => Err(LockError::Poisoned(p)),
        // No deadline: never returned.
        Err(TryLockError::WouldBlock) => unreachable!("a lock without deadline timed out"),
    }
}

/// The result of an acquisition that may give up.
fn trying<G>(acquired: Acquired<G>) -> TryLockResult<G> {
    acquired.and_then(|guard| guard.map_err(Into::into))
}

fn until(timeout: Duration) -> Wait {
    Wait::Until(Instant::now().checked_add(timeout))
}

impl<T> RwLock<T> {
    /// How many threads can hold a read lock at once; more wait for a slot.
    pub const READER_SLOTS: usize = raw::READER_SLOTS;

    const_unless_loom! {
        /// An unlocked lock holding `value`.
        pub fn new(value: T) -> Self {
            RwLock {
                raw: RawRwLock::new(),
                data: UnsafeCell::new(value),
            }
        }
    }

    /// Blocks until this thread holds a read lock.
    #[inline]
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        match self.read_now() {
            Some(guard) => guard,
            None => blocking(self.acquire_read(Wait::Until(None))),
        }
    }

    /// Takes a read lock if that needs no waiting ([`TryLockError::WouldBlock`] otherwise).
    /// A writer found dead is taken over, as by [`read`](Self::read).
    #[inline]
    pub fn try_read(&self) -> TryLockResult<RwLockReadGuard<'_, T>> {
        match self.read_now() {
            Some(guard) => guard.map_err(Into::into),
            None => trying(self.acquire_read(Wait::No)),
        }
    }

    /// Blocks until this thread holds a read lock or `timeout` has passed
    /// ([`TryLockError::WouldBlock`]).
    pub fn read_timeout(&self, timeout: Duration) -> TryLockResult<RwLockReadGuard<'_, T>> {
        trying(self.acquire_read(until(timeout)))
    }

    /// The uncontended read (no writer, this thread's home slot free), its result built in
    /// place: the general path's is much larger than a guard.
    #[inline]
    fn read_now(&self) -> Option<LockResult<RwLockReadGuard<'_, T>>> {
        let held = self.raw.read_now()?;
        Some(poisoned_if(
            RwLockReadGuard::new(self, held),
            self.raw.poisoned(),
        ))
    }

    /// Blocks until this thread holds the write lock.
    #[inline]
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        blocking(self.acquire_write(Wait::Until(None)))
    }

    /// Takes the write lock if that needs no waiting ([`TryLockError::WouldBlock`]
    /// otherwise). Holders found dead are taken over or cleared, as by
    /// [`write`](Self::write).
    #[inline]
    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        trying(self.acquire_write(Wait::No))
    }

    /// Blocks until this thread holds the write lock or `timeout` has passed
    /// ([`TryLockError::WouldBlock`]).
    pub fn write_timeout(&self, timeout: Duration) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        trying(self.acquire_write(until(timeout)))
    }

    /// Blocks until this thread holds the upgradable read lock: read access that readers
    /// share, but no writer or other upgradable reader, so that it can become the write
    /// lock with nobody writing in between.
    pub fn upgradable_read(&self) -> LockResult<RwLockUpgradableReadGuard<'_, T>> {
        blocking(self.acquire_upgradable(Wait::Until(None)))
    }

    /// Takes the upgradable read lock if that needs no waiting
    /// ([`TryLockError::WouldBlock`] otherwise).
    pub fn try_upgradable_read(&self) -> TryLockResult<RwLockUpgradableReadGuard<'_, T>> {
        trying(self.acquire_upgradable(Wait::No))
    }

    /// Blocks until this thread holds the upgradable read lock or `timeout` has passed
    /// ([`TryLockError::WouldBlock`]).
    pub fn upgradable_read_timeout(
        &self,
        timeout: Duration,
    ) -> TryLockResult<RwLockUpgradableReadGuard<'_, T>> {
        trying(self.acquire_upgradable(until(timeout)))
    }

    #[cold]
    #[inline(never)]
    fn acquire_read(&self, wait: Wait) -> Acquired<RwLockReadGuard<'_, T>> {
        acquired(
            self.raw.read(wait),
            |held| RwLockReadGuard::new(self, held),
            || self.raw.poisoned(),
        )
    }

    #[inline]
    fn acquire_write(&self, wait: Wait) -> Acquired<RwLockWriteGuard<'_, T>> {
        acquired(
            self.raw.write(wait),
            |held| RwLockWriteGuard::new(self, held),
            || self.raw.poisoned(),
        )
    }

    fn acquire_upgradable(&self, wait: Wait) -> Acquired<RwLockUpgradableReadGuard<'_, T>> {
        acquired(
            self.raw.upgradable(wait),
            |held| RwLockUpgradableReadGuard::new(self, held),
            || self.raw.poisoned(),
        )
    }

    /// Whether a writer panicked or died holding the lock (and nobody cleared it).
    pub fn is_poisoned(&self) -> bool {
        self.raw.poisoned().is_some()
    }

    /// How the last writer of a poisoned lock ended; None when it is not poisoned.
    pub fn poison_cause(&self) -> Option<PoisonCause> {
        self.raw.poisoned()
    }

    /// Marks the data repaired: later lockers get clean guards.
    pub fn clear_poison(&self) {
        self.raw.clear_poison();
    }

    /// The data, through exclusive access to the lock (no locking needed).
    pub fn get_mut(&mut self) -> Result<&mut T, PoisonError<&mut T>>
    where
        T: PositionIndependent,
    {
        let cause = self.raw.poisoned();
        let data = self.data.get_mut();
        match cause {
            None => Ok(data),
            Some(cause) => Err(PoisonError::new(data, cause)),
        }
    }

    /// The data of a lock held by value (never one in a segment, which lives in place).
    pub fn into_inner(self) -> Result<T, PoisonError<T>> {
        let cause = self.raw.poisoned();
        let data = self.data.into_inner();
        match cause {
            None => Ok(data),
            Some(cause) => Err(PoisonError::new(data, cause)),
        }
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(value: T) -> Self {
        RwLock::new(value)
    }
}

/// The lock's state (holders, poison, waiters) and, if a read lock can be had at once
/// (never waiting, taking nothing over), the data.
impl<T: fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        d.field("lock", &self.raw);
        match self.raw.read_now() {
            Some(held) => d.field("data", &&*RwLockReadGuard::new(self, held)),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

super::lock_is_shm_safe!(RwLock, |lock| lock.data.get_mut());

// SAFETY: the lock words mean the same anywhere (owner ids, not addresses); `T` is plain.
unsafe impl<T: PositionIndependent> PositionIndependent for RwLock<T> {}

/// A read lock on a [`RwLock`]: the data is shared with other readers until the guard is
/// dropped. A reader that panics does not poison the lock.
#[must_use = "dropping the guard releases the lock at once"]
pub struct RwLockReadGuard<'a, T> {
    lock: &'a RwLock<T>,
    held: ReadHeld,
    _not_send: NamesItsThread,
}

// SAFETY: sharing the guard shares `&T` only, as std's `RwLockReadGuard`.
unsafe impl<T: Sync> Sync for RwLockReadGuard<'_, T> {}

impl<'a, T> RwLockReadGuard<'a, T> {
    fn new(lock: &'a RwLock<T>, held: ReadHeld) -> Self {
        RwLockReadGuard {
            lock,
            held,
            _not_send: NamesItsThread::default(),
        }
    }
}

impl<T> Deref for RwLockReadGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: a read lock is held: nobody writes the data.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> Drop for RwLockReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.raw.release_read(&self.held);
    }
}

/// The upgradable read lock on a [`RwLock`]: read access shared with readers, exclusive of
/// writers and other upgradable readers, so that [`upgrade`](Self::upgrade) gives the
/// write lock with no writer in between. Transitions are associated functions
/// (`RwLockUpgradableReadGuard::upgrade(guard)`), not to hide methods of `T`.
#[must_use = "dropping the guard releases the lock at once"]
pub struct RwLockUpgradableReadGuard<'a, T> {
    lock: &'a RwLock<T>,
    held: StateHeld,
    _not_send: NamesItsThread,
}

// SAFETY: sharing the guard shares `&T` only.
unsafe impl<T: Sync> Sync for RwLockUpgradableReadGuard<'_, T> {}

impl<'a, T> RwLockUpgradableReadGuard<'a, T> {
    fn new(lock: &'a RwLock<T>, held: StateHeld) -> Self {
        RwLockUpgradableReadGuard {
            lock,
            held,
            _not_send: NamesItsThread::default(),
        }
    }

    /// The lock and what is held, the guard forgotten (a transition takes over its release).
    fn into_parts(s: Self) -> (&'a RwLock<T>, StateHeld) {
        let s = ManuallyDrop::new(s);
        (s.lock, s.held)
    }

    /// Becomes the write lock: keeps new readers out and waits for the readers inside to
    /// leave. [`Error::WouldDeadlock`] (the upgradable lock released) if this thread holds
    /// a read lock on it too.
    pub fn upgrade(s: Self) -> Result<RwLockWriteGuard<'a, T>, Error> {
        match Self::upgrade_within(s, Wait::Until(None)) {
            Ok(guard) => Ok(guard),
            Err((_released, Denied::Failed(e))) => Err(e),
            // No deadline: never returned.
            Err((_, Denied::WouldBlock)) => unreachable!("an upgrade without deadline timed out"),
        }
    }

    /// Becomes the write lock if no reader is inside; gives the guard back otherwise.
    pub fn try_upgrade(s: Self) -> Result<RwLockWriteGuard<'a, T>, Self> {
        Self::upgrade_within(s, Wait::No).map_err(|(s, _)| s)
    }

    /// As [`upgrade`](Self::upgrade), giving the guard back if readers are still inside
    /// after `timeout` (or this thread is one of them).
    pub fn upgrade_timeout(s: Self, timeout: Duration) -> Result<RwLockWriteGuard<'a, T>, Self> {
        Self::upgrade_within(s, until(timeout)).map_err(|(s, _)| s)
    }

    fn upgrade_within(s: Self, wait: Wait) -> Result<RwLockWriteGuard<'a, T>, (Self, Denied)> {
        match s.lock.raw.upgrade(&s.held, wait) {
            Ok(held) => {
                let (lock, _) = Self::into_parts(s);
                Ok(RwLockWriteGuard::new(lock, held))
            }
            Err(denied) => Err((s, denied)),
        }
    }

    /// Becomes a read lock, letting a writer (or upgradable reader) in once the readers
    /// leave.
    pub fn downgrade(s: Self) -> RwLockReadGuard<'a, T> {
        let (lock, held) = Self::into_parts(s);
        RwLockReadGuard::new(lock, lock.raw.downgrade_to_read(&held))
    }
}

impl<T> Deref for RwLockUpgradableReadGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the upgradable read lock excludes writers.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> Drop for RwLockUpgradableReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.raw.release_upgradable(&self.held);
    }
}

/// The write lock on a [`RwLock`]: the data is this thread's until the guard is dropped,
/// which releases the lock (poisoning it if the thread is panicking).
#[must_use = "dropping the guard releases the lock at once"]
pub struct RwLockWriteGuard<'a, T> {
    lock: &'a RwLock<T>,
    held: StateHeld,
    _not_send: NamesItsThread,
}

// SAFETY: sharing the guard shares `&T` only, as std's `RwLockWriteGuard`.
unsafe impl<T: Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<'a, T> RwLockWriteGuard<'a, T> {
    fn new(lock: &'a RwLock<T>, held: StateHeld) -> Self {
        RwLockWriteGuard {
            lock,
            held,
            _not_send: NamesItsThread::default(),
        }
    }

    fn into_parts(s: Self) -> (&'a RwLock<T>, StateHeld) {
        let s = ManuallyDrop::new(s);
        (s.lock, s.held)
    }

    /// Mutable access to the data in place: for position-dependent data (containers,
    /// offset pointers), whose methods take a `ShmMut`.
    #[inline]
    pub fn as_shm_mut(&mut self) -> ShmMut<'_, T> {
        // SAFETY: the write lock makes this the only access to the data; `ShmMut` hands
        // out `&mut T` only for position-independent types, so position-dependent data is
        // not moved.
        unsafe { ShmMut::new(&mut *self.lock.data.get()) }
    }

    /// Becomes a read lock, with no writer in between; waiting readers get in at once.
    pub fn downgrade(s: Self) -> RwLockReadGuard<'a, T> {
        let (lock, held) = Self::into_parts(s);
        RwLockReadGuard::new(lock, lock.raw.downgrade_write(&held))
    }

    /// Becomes the upgradable read lock, with no writer in between; waiting readers get
    /// in at once.
    pub fn downgrade_to_upgradable(s: Self) -> RwLockUpgradableReadGuard<'a, T> {
        let (lock, held) = Self::into_parts(s);
        RwLockUpgradableReadGuard::new(lock, lock.raw.downgrade_write_to_upgradable(&held))
    }
}

impl<T> ShmDerefMut for RwLockWriteGuard<'_, T> {
    #[inline]
    fn as_shm_mut(&mut self) -> ShmMut<'_, T> {
        RwLockWriteGuard::as_shm_mut(self)
    }
}

impl<T> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the write lock is held: nobody else accesses the data.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: PositionIndependent> DerefMut for RwLockWriteGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above; plain data may be moved out and back.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for RwLockWriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.raw.release_write(&self.held);
    }
}

macro_rules! forward_fmt {
    ($($guard:ident),*) => {$(
        impl<T: fmt::Debug> fmt::Debug for $guard<'_, T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&**self, f)
            }
        }

        impl<T: fmt::Display> fmt::Display for $guard<'_, T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&**self, f)
            }
        }
    )*};
}

forward_fmt!(RwLockReadGuard, RwLockUpgradableReadGuard, RwLockWriteGuard);
