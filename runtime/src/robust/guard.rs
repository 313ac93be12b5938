//! Taking a robust lock whose data a dead holder may have left half-updated: recover the
//! data, or poison the lock for good when recovery fails, so that nobody ever works on data
//! known to be broken. The segment's allocator lock and the object index lock use it, each
//! with its own guard around a [`RobustGuard`] and its own recovery.

use super::crash;
use super::owner::Owner;
use super::robust_mutex::{Acquired, RobustMutex};
use crate::error::Error;
use crate::os::fork;

/// A held [`RobustMutex`]: released when dropped, or poisoned after
/// [`poison_on_drop`](Self::poison_on_drop). A forked child's copy of a guard (the fork
/// happened while it was held) leaves the lock alone: it is the parent's.
pub(crate) struct RobustGuard<'a> {
    mutex: &'a RobustMutex,
    poison: bool,
    /// The fork generation the lock was taken in.
    forks: u32,
}

impl RobustGuard<'_> {
    /// Whether this guard is a forked child's copy of its parent's: the parent holds the
    /// lock, and what the guard protects is the parent's to clear or release.
    #[inline]
    pub(crate) fn inherited(&self) -> bool {
        self.forks != fork::generation()
    }

    /// Poisons the lock instead of releasing it when the guard goes: what it protects is
    /// beyond repair, and every later `lock` must say so.
    #[cold]
    pub(crate) fn poison_on_drop(&mut self) {
        self.poison = true;
    }
}

impl Drop for RobustGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.inherited() || crash::crashing() {
            return;
        }
        if self.poison {
            self.mutex.poison();
        } else {
            self.mutex.unlock();
        }
    }
}

/// Takes `mutex` in `owner`'s name and hands the held lock to `hold`, which builds the
/// caller's guard `G` around it. When the previous holder died holding the lock, `recover`
/// repairs the data first; if it fails, the lock is poisoned (the guard is dropped
/// poisoning it) and its error returned. A lock poisoned earlier gives `poisoned()` without
/// being taken.
#[inline(always)]
pub(crate) fn lock_with_recovery<'a, G>(
    mutex: &'a RobustMutex,
    owner: &Owner,
    hold: impl FnOnce(RobustGuard<'a>) -> G,
    recover: impl FnOnce(&mut G) -> Result<(), Error>,
    poisoned: impl FnOnce() -> Error,
) -> Result<G, Error>
where
    G: AsMut<RobustGuard<'a>>,
{
    let acquired = mutex.lock(owner.me()?, |id| owner.alive(id));
    if acquired == Acquired::Poisoned {
        return Err(poisoned());
    }
    let mut guard = hold(RobustGuard {
        mutex,
        poison: false,
        forks: fork::generation(),
    });
    if acquired == Acquired::OwnerDied {
        if let Err(err) = recover(&mut guard) {
            guard.as_mut().poison_on_drop();
            return Err(err);
        }
    }
    Ok(guard)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::robust::owner::PRIVATE;

    impl<'a> AsMut<RobustGuard<'a>> for RobustGuard<'a> {
        fn as_mut(&mut self) -> &mut RobustGuard<'a> {
            self
        }
    }

    /// A lock held by an owner that is gone.
    fn orphaned() -> RobustMutex {
        let mutex = RobustMutex::new();
        mutex.hand_to(PRIVATE + 40);
        mutex
    }

    fn failure(why: &str) -> Error {
        Error::Corrupted {
            what: "test".into(),
            reason: why.into(),
        }
    }

    /// Takes and releases `mutex`, with a recovery that fails with `recovery` if given.
    fn take(mutex: &RobustMutex, recovery: Option<&str>) -> Result<(), String> {
        let owner = Owner::private();
        lock_with_recovery(
            mutex,
            &owner,
            |g| g,
            |_| recovery.map_or(Ok(()), |why| Err(failure(why))),
            || failure("poisoned"),
        )
        .map(drop)
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_successful_recovery_releases_the_lock() {
        let mutex = orphaned();
        assert_eq!(take(&mutex, None), Ok(()));
        assert_eq!(mutex.owner(), None);
        assert_eq!(take(&mutex, Some("not run: the lock is clean")), Ok(()));
    }

    #[test]
    fn a_failed_recovery_poisons_the_lock() {
        let mutex = orphaned();
        assert!(take(&mutex, Some("beyond repair"))
            .unwrap_err()
            .contains("beyond repair"));
        assert!(take(&mutex, None).unwrap_err().contains("poisoned"));
    }

    #[test]
    fn a_crash_while_holding_leaves_the_lock_held() {
        let mutex = RobustMutex::new();
        let owner = Owner::private();
        // Points 0 and 1 are the lock's own.
        let crashed = crash::crashes_at(2, || {
            let _guard =
                lock_with_recovery(&mutex, &owner, |g| g, |_| Ok(()), || failure("poisoned"));
            crash::point("test: holding the lock");
        });
        assert_eq!(crashed, Err("test: holding the lock"));
        assert_eq!(
            mutex.owner(),
            Some(PRIVATE),
            "a killed holder releases nothing"
        );
    }
}
