//! [`SeqLock<T>`]: a value that one writer at a time replaces and any number of readers copy
//! without blocking it and without writing anything.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use super::poison::{LockError, LockResult, PoisonCause, PoisonError};
use super::raw::{Denied, Held, NamesItsThread, RawMutex, Wait};
use crate::error::Error;
use crate::layout::{
    compound_fingerprint, PositionIndependent, SchemaKind, ShmObservable, ShmSafe,
};
use crate::os::fork;
use crate::robust::atomic::{const_unless_loom, fence, AtomicU32, Ordering};
use crate::robust::crash::{point, thread_crashing};
use crate::robust::pause;
use crate::robust::{LIVENESS_POLL, SPINS};
use crate::segment::Observed;

/// Plain data that a [`SeqLock`] may hold: readers copy its bytes while a writer may be
/// changing them, and keep the copy only if no write overlapped. A torn copy is never
/// returned, but it is built, so it must be a valid value too, and every byte must be
/// initialised (a writer copies the whole value word by word).
///
/// Implemented for the integer and float primitives and arrays of `SeqLockData`.
/// `SeqLock` refuses to compile (naming the rule) for a type whose `ShmSafe` impl says some
/// bit patterns are invalid, or whose derived layout has a gap between or after its fields.
///
/// # Safety
///
/// Every bit pattern of the type's size must be a valid value (no `bool`, `char`, enum,
/// `NonZero*`, reference or pointer anywhere in it), and it must have no padding bytes,
/// also inside its fields: `#[repr(C)]` with fields that fill it exactly.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be held by a `SeqLock`",
    label = "not `SeqLockData`",
    note = "a SeqLock holds plain data whose every bit pattern is valid and which has no padding: integers, floats, arrays of them, and `#[repr(C)]` structs of those with `unsafe impl SeqLockData`"
)]
pub unsafe trait SeqLockData: PositionIndependent + Copy {}

macro_rules! seqlock_data {
    ($($t:ty),*) => {$(
        // SAFETY: every bit pattern is a value, and a primitive has no padding.
        unsafe impl SeqLockData for $t {}
    )*};
}

seqlock_data!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64);

// SAFETY: elements without padding and with any bit pattern valid, laid end to end.
unsafe impl<T: SeqLockData, const N: usize> SeqLockData for [T; N] {}

/// Why a read of a [`SeqLock`] returned no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The writer died in the middle of a write, leaving the value torn; the next write
    /// repairs it.
    WriterDied,
    /// The timeout passed while a live writer was in the middle of a write (or while
    /// writes came too fast to copy the value between two of them).
    TimedOut,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadError::WriterDied => {
                "the seqlock's writer died in the middle of a write; the value is torn until \
                 the next write"
            }
            ReadError::TimedOut => "no consistent value of the seqlock could be read in time",
        })
    }
}

impl std::error::Error for ReadError {}

impl From<ReadError> for Error {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::WriterDied => Error::Poisoned {
                what: "a seqlock (its value is torn until the next write)".into(),
                cause: "died",
            },
            ReadError::TimedOut => Error::Timeout {
                what: "a seqlock".into(),
                reason: "a writer was in the middle of a write for the whole timeout".into(),
            },
        }
    }
}

/// How long a reader that found a write in progress for longer than its spins pauses
/// between looks, after yielding its CPU once per look for as many looks again.
const READ_PAUSE: Duration = Duration::from_micros(50);

/// A value of plain data that writers replace one at a time and readers copy without
/// blocking: the sound way to publish telemetry, prices, positions or configuration that
/// changes while many processes read it.
///
/// - **Readers** ([`read`](Self::read), [`try_read`](Self::try_read)) never block a writer,
///   never write a byte and never see a torn value: they copy the value with atomic loads
///   between two loads of a sequence number, and retry when a write overlapped. They are
///   wait-free when no write overlaps, and can starve while writes follow each other
///   without pause.
/// - **Writers** ([`write`](Self::write), [`update`](Self::update), [`lock`](Self::lock))
///   take a robust lock, as [`Mutex`](super::Mutex) does: one writes at a time, and a
///   writer that died holding it is taken over within [`LIVENESS_POLL`](super::LIVENESS_POLL).
///   A write makes the sequence odd, copies the value in with atomic stores and makes it
///   even again; only that copy is inside the odd window (an `update`'s closure runs on a
///   private copy before it).
/// - **A writer that dies in the middle of a copy** leaves the sequence odd and the value
///   torn. Readers wait for the writer while it lives (a writer preempted mid-copy), and
///   once it is dead [`read`](Self::read) returns [`ReadError::WriterDied`] instead of
///   spinning: readers look at the writer's liveness after [`LIVENESS_POLL`] of an
///   unchanged odd sequence. The next writer repairs it: its [`lock`](Self::lock) reports
///   [`PoisonCause::OwnerDied`] with the torn value in the guard, and any publish (or a
///   [`write`](Self::write), which replaces every byte) makes the value whole again and
///   clears the poison.
///
/// Readers that cannot write (a telemetry reader with read access only) use a
/// [`SegmentObserver`](crate::SegmentObserver): a read-only mapping that lets writers in,
/// and lends a seqlock as [`Observed`], with the reading methods only. A
/// [`ReadOnly`](crate::ReadOnly) mapping does not lend it (it is not
/// [`ShmImmutable`](crate::ShmImmutable): it keeps writers out for good, and its `&T` would
/// offer the writing methods, which would store into read-only pages).
///
/// The sequence number is 32 bits: a reader preempted for exactly a multiple of 2³¹
/// writes between its two loads would take a torn copy for whole (Linux's seqcount has
/// the same bound).
///
/// Twelve bytes ahead of `T` (the write lock and the sequence); all-zero bytes are an
/// unlocked seqlock holding the all-zero `T`. Any bytes are a state: a forged odd sequence
/// reads as a dead writer's, which the next writer repairs.
#[repr(C)]
pub struct SeqLock<T: SeqLockData> {
    raw: RawMutex,
    seq: AtomicU32,
    data: words::Data<T>,
}

// SAFETY: the value is only copied in and out through atomics, writers one at a time under
// `raw`, and `T` is plain data.
unsafe impl<T: SeqLockData + Send> Send for SeqLock<T> {}
// SAFETY: as above.
unsafe impl<T: SeqLockData + Send> Sync for SeqLock<T> {}

impl<T: SeqLockData> SeqLock<T> {
    const_unless_loom! {
        /// A seqlock holding `value`.
        pub fn new(value: T) -> Self {
            SeqLock {
                raw: RawMutex::new(),
                seq: AtomicU32::new(0),
                data: words::Data::new(value),
            }
        }
    }

    /// A copy of the value, retrying while writes overlap: spins [`SPINS`] times, then
    /// yields and pauses between looks. Waits for a live writer in the middle of a write
    /// (preempted, or stopped), and returns [`ReadError::WriterDied`] within about
    /// [`LIVENESS_POLL`] when it died there.
    pub fn read(&self) -> Result<T, ReadError> {
        self.read_until(None)
    }

    /// As [`read`](Self::read), giving up with [`ReadError::TimedOut`] after `timeout`.
    pub fn read_timeout(&self, timeout: Duration) -> Result<T, ReadError> {
        self.read_until(Instant::now().checked_add(timeout))
    }

    /// A copy of the value if no write is in progress and none overlaps the copy.
    #[inline]
    pub fn try_read(&self) -> Option<T> {
        self.read_once().ok()
    }

    /// One copy between two loads of the sequence; on failure, the sequence last seen.
    #[inline]
    fn read_once(&self) -> Result<T, u32> {
        const { check::<T>() };
        // Relaxed loads and fences instead of acquire loads: the same ordering, and the
        // kind of load that is defined on read-only memory.
        let before = self.seq.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if before & 1 != 0 {
            return Err(before);
        }
        let copy = self.data.load();
        // If any load above saw a store of a later write, this fence synchronises with that
        // write's release fence, so the load below sees at least its odd sequence.
        fence(Ordering::Acquire);
        let after = self.seq.load(Ordering::Relaxed);
        if after != before {
            return Err(after);
        }
        // SAFETY: every byte was loaded (initialised), and any bit pattern is a `T`
        // (`SeqLockData`); no write overlapped, so it is also the value as published.
        Ok(unsafe { copy.assume_init() })
    }

    #[cold]
    fn read_until(&self, deadline: Option<Instant>) -> Result<T, ReadError> {
        // The odd sequence seen and since when, to tell a dead writer from a slow one.
        let mut stuck: Option<(u32, Instant)> = None;
        // Failed looks at one sequence: writers making progress are retried at once, a
        // write that stays unfinished is waited for ever more patiently.
        let mut looks = 0u32;
        let mut last = None;
        loop {
            let seq = match self.read_once() {
                Ok(value) => return Ok(value),
                Err(seq) => seq,
            };
            if last.replace(seq) != Some(seq) {
                looks = 0;
            }
            looks = looks.saturating_add(1);
            if looks < SPINS {
                std::hint::spin_loop();
                continue;
            }
            let now = pause::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(ReadError::TimedOut);
            }
            if seq & 1 != 0 {
                match stuck {
                    Some((s, since)) if s == seq => {
                        if now.duration_since(since) >= LIVENESS_POLL {
                            if self.writer_died_at(seq) {
                                return Err(ReadError::WriterDied);
                            }
                            stuck = Some((seq, now));
                        }
                    }
                    _ => stuck = Some((seq, now)),
                }
            }
            if looks < 2 * SPINS {
                pause::yield_now();
            } else {
                pause::sleep(deadline.map_or(READ_PAUSE, |d| READ_PAUSE.min(d - now)));
            }
        }
    }

    /// Whether the write that made the sequence `seq` (odd) can no longer finish: no live
    /// thread holds the write lock, and the sequence is still `seq` after looking.
    fn writer_died_at(&self, seq: u32) -> bool {
        // The load that saw the odd sequence read a release store: with this fence the
        // lock word is seen as its writer left it, naming that writer (or later), never
        // as it was before the writer took it.
        fence(Ordering::Acquire);
        if self.raw.held_by_live_owner() {
            return false;
        }
        // Seeing the lock released (by a release swap), or its holder dead (the kernel's
        // answer comes after the holder's end), makes the writer's last sequence store
        // visible to the load below.
        fence(Ordering::Acquire);
        self.seq.load(Ordering::Relaxed) == seq
    }

    /// Takes the write lock and returns a guard holding a private copy of the value; the
    /// copy is published when the guard drops (not if the thread panicked meanwhile: a
    /// panicking writer leaves the value as it was, and the lock poisoned as
    /// [`PoisonCause::Panicked`]).
    ///
    /// Poisoned when the last writer died holding the lock ([`PoisonCause::OwnerDied`]; the
    /// copy may then be torn, if it died while publishing) or panicked: the guard is inside
    /// the error. Publishing it clears the poison.
    pub fn lock(&self) -> LockResult<SeqLockWriteGuard<'_, T>> {
        let held = self.acquire().map_err(LockError::Failed)?;
        // The lock is held: no store races with these loads.
        let odd = self.seq.load(Ordering::Relaxed) & 1 != 0;
        // SAFETY: as in `read_once`: initialised, and any bit pattern is a `T`.
        let value = unsafe { self.data.load().assume_init() };
        let guard = SeqLockWriteGuard {
            lock: self,
            value,
            held,
            panicking: std::thread::panicking(),
            forks: fork::generation(),
            _not_send: NamesItsThread::default(),
        };
        // A sequence left odd is a write that never finished, whatever the poison word says
        // (forged bytes, or a private copy taken mid-write).
        match held.poisoned.or(odd.then_some(PoisonCause::OwnerDied)) {
            None => Ok(guard),
            Some(cause) => Err(LockError::Poisoned(PoisonError::new(guard, cause))),
        }
    }

    /// Changes the value through [`lock`](Self::lock)'s guard, publishing it when `f`
    /// returns; `f`'s result is returned. A poisoned lock is an error holding the guard
    /// (`f` did not run).
    pub fn update<R>(
        &self,
        f: impl FnOnce(&mut T) -> R,
    ) -> Result<R, LockError<SeqLockWriteGuard<'_, T>>> {
        let mut guard = self.lock()?;
        Ok(f(&mut guard))
    }

    /// Replaces the value. Ignores poison, since it writes every byte: a value torn by a
    /// dead writer is whole again afterwards, and the poison is cleared.
    /// [`Error::WouldDeadlock`] when this thread holds the lock's guard.
    pub fn write(&self, value: T) -> Result<(), Error> {
        let held = self.acquire()?;
        self.publish(&value);
        self.raw.release(&held);
        Ok(())
    }

    /// Whether the last writer died or panicked holding the lock (and nobody published
    /// since), or left a write unfinished that no live writer is finishing.
    pub fn is_poisoned(&self) -> bool {
        self.raw.poisoned().is_some()
            || (self.seq.load(Ordering::Relaxed) & 1 != 0 && !self.raw.held_by_live_owner())
    }

    fn acquire(&self) -> Result<Held, Error> {
        match self.raw.acquire(Wait::Until(None)) {
            Ok(held) => Ok(held),
            Err(Denied::Failed(e)) => Err(e),
            // No deadline: never returned.
            Err(Denied::WouldBlock) => unreachable!("a lock without deadline timed out"),
        }
    }

    /// Copies `value` in as the writer holding the lock, between an odd and an even
    /// sequence, and clears the poison: the value is whole.
    fn publish(&self, value: &T) {
        const { check::<T>() };
        // An odd sequence (a dead writer's) stays odd: readers that saw it keep retrying.
        let odd = self.seq.load(Ordering::Relaxed) | 1;
        point("seqlock publish: before the odd sequence");
        // A release store, so that a reader that sees it odd also sees the lock word naming
        // this writer (see `writer_died_at`).
        self.seq.store(odd, Ordering::Release);
        // Orders the odd sequence before every data store below, for readers whose loads
        // see one of them (their acquire fence pairs with this one).
        fence(Ordering::Release);
        self.data.store(value);
        point("seqlock publish: before the even sequence");
        self.seq.store(odd.wrapping_add(1), Ordering::Release);
        point("seqlock publish: even again, poison not yet cleared");
        self.raw.clear_poison();
    }
}

/// Refuses, at compile time, a `T` whose `ShmSafe` impl or derived layout contradicts
/// `SeqLockData`: any bit pattern valid, no gap between or after derived fields.
const fn check<T: SeqLockData>() {
    assert!(
        T::ALL_BIT_PATTERNS_VALID,
        "SeqLock<T> needs a T whose every bit pattern is valid (no bool, char, enum or NonZero)"
    );
    if let Some(schema) = T::SCHEMA {
        if let SchemaKind::Enum(_) = schema.kind {
            panic!("SeqLock<T> needs a T whose every bit pattern is valid (not an enum)");
        }
        let mut filled = 0;
        let mut i = 0;
        while i < schema.fields.len() {
            filled += schema.fields[i].size;
            i += 1;
        }
        assert!(
            filled == schema.size,
            "SeqLock<T> needs a T without padding: its fields must fill it exactly"
        );
    }
}

impl<T: SeqLockData + Default> Default for SeqLock<T> {
    fn default() -> Self {
        SeqLock::new(T::default())
    }
}

/// The write lock's state, the sequence and, if one can be read right now, the value.
impl<T: SeqLockData + fmt::Debug> fmt::Debug for SeqLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SeqLock");
        d.field("lock", &self.raw)
            .field("seq", &self.seq.load(Ordering::Relaxed));
        match self.try_read() {
            Some(value) => d.field("value", &value),
            None => d.field("value", &format_args!("<being written>")),
        };
        d.finish()
    }
}

// SAFETY: the lock words and the sequence are atomics (any bytes are a state, see the type
// docs), and any bytes are a `T` (`SeqLockData`); `T` is plain data, nothing to relocate.
unsafe impl<T: SeqLockData> ShmSafe for SeqLock<T> {
    const LAYOUT_FINGERPRINT: u64 = compound_fingerprint("SeqLock", &[T::LAYOUT_FINGERPRINT]);
    const POINTEE_FINGERPRINT: u64 = compound_fingerprint("SeqLock", &[T::POINTEE_FINGERPRINT]);
    const ALL_BIT_PATTERNS_VALID: bool = true;

    fn type_fingerprint() -> u64 {
        compound_fingerprint("SeqLock", &[T::type_fingerprint()])
    }
}

// SAFETY: owner ids, a counter and plain data mean the same anywhere.
unsafe impl<T: SeqLockData> PositionIndependent for SeqLock<T> {}

// SAFETY: every word of it (lock, sequence, value) is accessed atomically, any bytes are a
// state (so `validate` reads nothing), and reading stores nothing (see the type docs).
unsafe impl<T: SeqLockData> ShmObservable for SeqLock<T> {}

/// What an observer (a [`SegmentObserver`](crate::SegmentObserver), which cannot write)
/// does with a seqlock: read it.
impl<T: SeqLockData> Observed<'_, SeqLock<T>> {
    /// As [`SeqLock::read`].
    pub fn read(&self) -> Result<T, ReadError> {
        self.get().read()
    }

    /// As [`SeqLock::read_timeout`].
    pub fn read_timeout(&self, timeout: Duration) -> Result<T, ReadError> {
        self.get().read_timeout(timeout)
    }

    /// As [`SeqLock::try_read`].
    pub fn try_read(&self) -> Option<T> {
        self.get().try_read()
    }
}

/// The write lock of a [`SeqLock`] with a private copy of the value: change it through
/// `DerefMut`; dropping the guard publishes it (readers see the whole change at once) and
/// releases the lock. Not `Send`: the lock names the thread that took it.
#[must_use = "dropping the guard publishes the value and releases the lock at once"]
pub struct SeqLockWriteGuard<'a, T: SeqLockData> {
    lock: &'a SeqLock<T>,
    value: T,
    held: Held,
    /// Whether the thread was panicking already when it took the lock.
    panicking: bool,
    /// The fork generation it was taken in: a forked child's copy publishes nothing.
    forks: u32,
    _not_send: NamesItsThread,
}

impl<T: SeqLockData> Deref for SeqLockWriteGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: SeqLockData> DerefMut for SeqLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: SeqLockData> Drop for SeqLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        // A crashed writer's process runs nothing more (see `robust::crash`).
        if thread_crashing() {
            return;
        }
        let panicked = !self.panicking && std::thread::panicking();
        if self.forks == fork::generation() && !panicked {
            self.lock.publish(&self.value);
        }
        self.lock.raw.release(&self.held);
    }
}

impl<T: SeqLockData + fmt::Debug> fmt::Debug for SeqLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.value, f)
    }
}

/// The value's storage, copied in and out with atomic accesses of one width, the widest its
/// alignment allows: every access to a seqlock's data after construction has that width, so
/// atomic accesses of different sizes never overlap.
///
/// Natively the words are std's atomics over the value's own memory (reached through
/// pointers, as `from_ptr` does). A model checker's atomics cannot be made over existing
/// memory, so under `--cfg loom` the words are the model's 32-bit atomics, kept beside the
/// seqlock: the sequence and fence protocol and the word-by-word copies run unchanged on
/// them, and loom may answer each relaxed load with any store the memory model allows, so a
/// copy that a missing fence lets tear is found. What the model does not check is the cast
/// of the real value's memory to atomics (Miri does, `.ci/miri`).
mod words {
    use std::mem::{size_of, MaybeUninit};

    use crate::robust::crash::point;

    trait Word: Sized {
        type Int: Copy;
        fn load(&self) -> Self::Int;
        fn store(&self, v: Self::Int);
    }

    macro_rules! word {
        ($($a:ty => $i:ty),*) => {$(
            impl Word for $a {
                type Int = $i;
                #[inline(always)]
                fn load(&self) -> $i {
                    <$a>::load(self, Relaxed)
                }
                #[inline(always)]
                fn store(&self, v: $i) {
                    <$a>::store(self, v, Relaxed)
                }
            }
        )*};
    }

    #[cfg(loom)]
    pub(super) use model::Data;
    #[cfg(not(loom))]
    pub(super) use native::Data;

    #[cfg(not(loom))]
    mod native {
        use std::cell::UnsafeCell;
        use std::mem::{align_of, size_of, MaybeUninit};
        use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};

        use super::{load_with, store_with, Word};

        word!(AtomicU8 => u8, AtomicU16 => u16, AtomicU32 => u32, AtomicU64 => u64);

        /// The value itself.
        #[repr(transparent)]
        pub(in super::super) struct Data<T>(UnsafeCell<T>);

        const fn fits<T, W>() -> bool {
            align_of::<T>() >= align_of::<W>() && size_of::<T>() % size_of::<W>() == 0
        }

        /// Runs `$f::<T, W>` on the data as words `W`, the widest that tile `T`.
        macro_rules! widest {
            ($t:ty, $f:ident($cell:expr $(, $arg:expr)*)) => {
                if fits::<$t, AtomicU64>() {
                    $f::<$t, AtomicU64>($cell.cast() $(, $arg)*)
                } else if fits::<$t, AtomicU32>() {
                    $f::<$t, AtomicU32>($cell.cast() $(, $arg)*)
                } else if fits::<$t, AtomicU16>() {
                    $f::<$t, AtomicU16>($cell.cast() $(, $arg)*)
                } else {
                    $f::<$t, AtomicU8>($cell.cast() $(, $arg)*)
                }
            };
        }

        impl<T> Data<T> {
            pub(in super::super) const fn new(value: T) -> Self {
                Data(UnsafeCell::new(value))
            }

            /// The bytes of the value, loaded word by word with relaxed atomic loads.
            #[inline]
            pub(in super::super) fn load(&self) -> MaybeUninit<T> {
                // The words lie within the value (`W` tiles `T`, which is at least as
                // aligned); while shared, the value is only reached through atomics of
                // this width.
                widest!(T, load_with(self.0.get()))
            }

            /// Stores the bytes of `value` word by word with relaxed atomic stores. `T`
            /// must have no padding (`SeqLockData`): every byte of `value` is read.
            #[inline]
            pub(in super::super) fn store(&self, value: &T) {
                widest!(T, store_with(self.0.get(), value))
            }
        }
    }

    #[cfg(loom)]
    mod model {
        use std::marker::PhantomData;
        use std::mem::{align_of, size_of, MaybeUninit};

        use super::{load_with, store_with, Word};
        use crate::robust::atomic::{AtomicU32, Ordering::Relaxed};

        word!(AtomicU32 => u32);

        /// The model's words standing in for the value's.
        pub(in super::super) struct Data<T> {
            words: Box<[AtomicU32]>,
            _value: PhantomData<T>,
        }

        impl<T> Data<T> {
            pub(in super::super) fn new(value: T) -> Self {
                const {
                    assert!(
                        size_of::<T>() % 4 == 0 && align_of::<T>() >= 4,
                        "the model copies values of whole 32-bit words"
                    )
                };
                let from = std::ptr::from_ref(&value).cast::<u32>();
                let words = (0..size_of::<T>() / 4)
                    // SAFETY: word `i` lies within `value`, which is aligned for `u32`
                    // (asserted above) and has no padding (`SeqLockData`).
                    .map(|i| AtomicU32::new(unsafe { from.add(i).read() }))
                    .collect();
                Data {
                    words,
                    _value: PhantomData,
                }
            }

            pub(in super::super) fn load(&self) -> MaybeUninit<T> {
                load_with::<T, AtomicU32>(self.words.as_ptr())
            }

            pub(in super::super) fn store(&self, value: &T) {
                store_with::<T, AtomicU32>(self.words.as_ptr(), value)
            }
        }
    }

    /// The words at `from`, as many as `W::Int`s tile a `T`, loaded into a `T`'s bytes.
    /// `from` points to that many words, and `T` is aligned at least as `W::Int`. (The
    /// model's atomics are larger than the integers they hold.)
    #[inline(always)]
    fn load_with<T, W: Word>(from: *const W) -> MaybeUninit<T> {
        let mut out = MaybeUninit::<T>::uninit();
        let to = out.as_mut_ptr().cast::<W::Int>();
        for i in 0..size_of::<T>() / size_of::<W::Int>() {
            // SAFETY: word `i` lies within the words at `from` (the caller's promise), and
            // within `out`, a `T`-sized buffer aligned for `W::Int`.
            unsafe { to.add(i).write((*from.add(i)).load()) };
        }
        out
    }

    /// Stores `value`'s bytes into the words at `to`, as many as `W::Int`s tile a `T`; a
    /// crash may stop it before any word.
    #[inline(always)]
    fn store_with<T, W: Word>(to: *const W, value: &T) {
        let from = std::ptr::from_ref(value).cast::<W::Int>();
        for i in 0..size_of::<T>() / size_of::<W::Int>() {
            point("seqlock publish: storing a word");
            // SAFETY: as in `load_with`; every byte of `value` is initialised (no padding,
            // the `SeqLockData` contract).
            unsafe { (*to.add(i)).store(from.add(i).read()) };
        }
    }
}

#[cfg(test)]
mod tests {
    //! A writer that panics; a writer that dies at each step of a write is in the crash
    //! sweep (`sync/crash_tests.rs`).

    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_panicking_writer_publishes_nothing_and_poisons() {
        let lock = Arc::new(SeqLock::new(5u32));
        let writer = lock.clone();
        let r = std::thread::spawn(move || {
            let _ = writer.update(|v| {
                *v = 6;
                panic!("while writing");
            });
        })
        .join();
        assert!(r.is_err());
        assert_eq!(lock.read(), Ok(5), "the change was not published");
        let Err(LockError::Poisoned(p)) = lock.lock() else {
            panic!("a writer that panicked poisons the lock");
        };
        assert_eq!(p.cause(), PoisonCause::Panicked);
        assert_eq!(**p.get_ref(), 5);
    }
}
