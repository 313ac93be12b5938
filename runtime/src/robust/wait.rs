//! Sleeping on a 32-bit word until another thread or process changes it (the `futex` system
//! call on a shared word), in one place: every lock sleeps and wakes through here, and under
//! `--cfg loom` the model's futex stands in (see `super::model`).

use super::atomic::AtomicU32;

#[cfg(loom)]
pub(crate) use super::model::{wait, wake};
#[cfg(not(loom))]
pub(crate) use futex::{wait, wake};

/// Wakes every sleeper on `word`.
#[inline]
pub(crate) fn wake_all(word: &AtomicU32) {
    wake(word, i32::MAX as u32);
}

/// The system call itself, on std's atomics: what the locks use outside the model, and what
/// `sync::atomic_wait` always uses (the atomics it is given are the user's, never the
/// model's).
pub(crate) mod futex {
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    use rustix::thread::futex;

    /// Sleeps while `word` holds `expected`, for at most `timeout` (None: until woken).
    /// Returns early, without saying why, when woken, when the word differs, on a signal and
    /// on spurious wake-ups: callers re-check their condition in a loop.
    #[inline]
    pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let timeout = timeout.map(|t| futex::Timespec {
            tv_sec: t.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: t.subsec_nanos().into(),
        });
        // Every outcome (EAGAIN: the word changed, ETIMEDOUT, EINTR) means "look again".
        let _ = futex::wait(word, futex::Flags::empty(), expected, timeout.as_ref());
    }

    /// Wakes up to `count` sleepers on `word`.
    #[inline]
    pub(crate) fn wake(word: &AtomicU32, count: u32) {
        let _ = futex::wake(word, futex::Flags::empty(), count);
    }
}
