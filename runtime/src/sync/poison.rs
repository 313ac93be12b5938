//! What taking a lock can report besides the guard, shaped like `std::sync`'s: a lock whose
//! holder panicked or died is poisoned, and the guard comes inside the [`PoisonError`].
//! Unlike std, a lock can also fail for reasons of its own ([`LockError::Failed`]), such as
//! a thread taking a lock it holds, and every error converts into [`Error`] for `?`.

use std::fmt;

use crate::error::Error;

/// How the last holder of a poisoned lock ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoisonCause {
    /// It panicked while holding the lock (its guard was dropped while unwinding).
    Panicked,
    /// Its thread or process ended while holding the lock (killed, crashed, or exited
    /// with the guard leaked): it may have stopped at any instruction.
    OwnerDied,
}

impl PoisonCause {
    /// The value stored in a lock's poison word (0 is "not poisoned").
    #[inline]
    pub(crate) const fn word(self) -> u32 {
        match self {
            PoisonCause::Panicked => 1,
            PoisonCause::OwnerDied => 2,
        }
    }

    /// The cause a poison word records; None for 0. A word that is neither (forged bytes)
    /// reads as a death, the cause that promises least.
    #[inline]
    pub(crate) const fn from_word(word: u32) -> Option<Self> {
        match word {
            0 => None,
            1 => Some(PoisonCause::Panicked),
            _ => Some(PoisonCause::OwnerDied),
        }
    }

    fn verb(self) -> &'static str {
        match self {
            PoisonCause::Panicked => "panicked",
            PoisonCause::OwnerDied => "died",
        }
    }
}

/// A lock was taken, but its last holder panicked or died holding it: the data may be
/// half-updated. The guard is inside ([`into_inner`](Self::into_inner)); the lock stays
/// poisoned until `clear_poison` is called on it.
pub struct PoisonError<G> {
    guard: G,
    cause: PoisonCause,
}

impl<G> PoisonError<G> {
    pub(crate) fn new(guard: G, cause: PoisonCause) -> Self {
        PoisonError { guard, cause }
    }

    /// The guard, to use the data anyway.
    pub fn into_inner(self) -> G {
        self.guard
    }

    /// The guard, borrowed.
    pub fn get_ref(&self) -> &G {
        &self.guard
    }

    /// The guard, borrowed mutably.
    pub fn get_mut(&mut self) -> &mut G {
        &mut self.guard
    }

    /// How the last holder ended.
    pub fn cause(&self) -> PoisonCause {
        self.cause
    }
}

impl<G> fmt::Debug for PoisonError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoisonError")
            .field("cause", &self.cause)
            .finish_non_exhaustive()
    }
}

impl<G> fmt::Display for PoisonError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "poisoned lock: its last holder {} while holding it",
            self.cause.verb()
        )
    }
}

impl<G> std::error::Error for PoisonError<G> {}

/// Why a blocking lock call returned no clean guard.
pub enum LockError<G> {
    /// Taken, but poisoned: the guard is inside.
    Poisoned(PoisonError<G>),
    /// Not taken: [`Error::WouldDeadlock`] (this thread holds it), or the lock cannot be
    /// used from here ([`Error::Os`]: a forked child without a lock description of its own;
    /// [`Error::Corrupted`]: a lock word no shmkit lock holds).
    Failed(Error),
}

/// Why a non-blocking or timed lock call returned no clean guard.
pub enum TryLockError<G> {
    /// Not taken: another holder has it (still, at the timeout).
    WouldBlock,
    /// Taken, but poisoned: the guard is inside.
    Poisoned(PoisonError<G>),
    /// Not taken, as [`LockError::Failed`].
    Failed(Error),
}

/// The result of a blocking lock call.
pub type LockResult<G> = Result<G, LockError<G>>;
/// The result of a non-blocking or timed lock call.
pub type TryLockResult<G> = Result<G, TryLockError<G>>;

impl<G> LockError<G> {
    /// The guard of a poisoned lock (use the data anyway), or the failure.
    pub fn into_poisoned(self) -> Result<G, Error> {
        match self {
            LockError::Poisoned(p) => Ok(p.into_inner()),
            LockError::Failed(e) => Err(e),
        }
    }
}

impl<G> TryLockError<G> {
    /// The guard of a poisoned lock (use the data anyway); None when the lock was not taken.
    pub fn into_poisoned(self) -> Option<G> {
        match self {
            TryLockError::Poisoned(p) => Some(p.into_inner()),
            TryLockError::WouldBlock | TryLockError::Failed(_) => None,
        }
    }
}

impl<G> From<PoisonError<G>> for LockError<G> {
    fn from(p: PoisonError<G>) -> Self {
        LockError::Poisoned(p)
    }
}

impl<G> From<LockError<G>> for TryLockError<G> {
    fn from(e: LockError<G>) -> Self {
        match e {
            LockError::Poisoned(p) => TryLockError::Poisoned(p),
            LockError::Failed(e) => TryLockError::Failed(e),
        }
    }
}

fn poisoned(cause: PoisonCause) -> Error {
    Error::Poisoned {
        what: "a shmkit lock".into(),
        cause: cause.verb(),
    }
}

impl<G> From<PoisonError<G>> for Error {
    fn from(p: PoisonError<G>) -> Self {
        poisoned(p.cause)
    }
}

impl<G> From<LockError<G>> for Error {
    fn from(e: LockError<G>) -> Self {
        match e {
            LockError::Poisoned(p) => p.into(),
            LockError::Failed(e) => e,
        }
    }
}

impl<G> From<TryLockError<G>> for Error {
    fn from(e: TryLockError<G>) -> Self {
        match e {
            TryLockError::WouldBlock => Error::Timeout {
                what: "a shmkit lock".into(),
                reason: "held by another thread or process".into(),
            },
            TryLockError::Poisoned(p) => p.into(),
            TryLockError::Failed(e) => e,
        }
    }
}

impl<G> fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Poisoned(p) => f.debug_tuple("Poisoned").field(p).finish(),
            LockError::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

impl<G> fmt::Display for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Poisoned(p) => p.fmt(f),
            LockError::Failed(e) => e.fmt(f),
        }
    }
}

impl<G> std::error::Error for LockError<G> {}

impl<G> fmt::Debug for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::WouldBlock => f.write_str("WouldBlock"),
            TryLockError::Poisoned(p) => f.debug_tuple("Poisoned").field(p).finish(),
            TryLockError::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

impl<G> fmt::Display for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::WouldBlock => {
                f.write_str("the lock is held by another thread or process")
            }
            TryLockError::Poisoned(p) => p.fmt(f),
            TryLockError::Failed(e) => e.fmt(f),
        }
    }
}

impl<G> std::error::Error for TryLockError<G> {}
