//! Internals that the integration tests and the benchmark look at. Not API: hidden from the
//! documentation and free to change in any release. Everything here only describes or
//! inspects; what could change the registry is `unsafe`, with its contract.

/// The segment header's layout and format constants, for tests that forge or patch headers
/// byte by byte (by `offset_of!` on the real struct) and for size limits.
pub use crate::manager::header::{
    state, SegmentHeader, FORMAT_VERSION, MAGIC, MAX_RESERVATION, MIN_SEGMENT_SIZE,
};

/// The per-process registry of mappings, for tests that build pointers between hand-made
/// mappings. Tests only.
pub mod registry {
    pub use crate::registry::{lookup, MappingInfo};
    use crate::Result;

    /// A registration made by [`register`]; dropping it unregisters the range. Unlike the
    /// runtime's own, it cannot be moved to another range.
    #[derive(Debug)]
    #[must_use = "dropping the registration unregisters the mapping at once"]
    pub struct Registration(crate::registry::Registration);

    impl Registration {
        /// The mapping as registered.
        pub fn info(&self) -> MappingInfo {
            self.0.info()
        }
    }

    /// Registers `[base, base + len)` as a mapping of this process until the returned guard
    /// is dropped (errors as the runtime's own registration).
    ///
    /// # Safety
    /// [`OffsetPtr`](crate::OffsetPtr) trusts registered ranges: until the guard is dropped
    /// the range must stay allocated memory of this process, readable, writable when
    /// `writable` says so, and not referenced in ways that a write through an offset
    /// pointer in it would invalidate.
    pub unsafe fn register(base: *mut u8, len: usize, writable: bool) -> Result<Registration> {
        crate::registry::register(base, len, writable).map(Registration)
    }
}

/// The open-file-description lock byte on which lock owner `id` vouches for a segment (a
/// warm open trusts it when a description holds one exclusively).
pub use crate::robust::owner::vouch_byte;

/// Whether a read-write mapping other than `fd`'s description vouches for the segment on
/// the device `fd` describes: an open now would be warm.
pub fn vouched(fd: std::os::fd::BorrowedFd<'_>) -> crate::Result<bool> {
    crate::robust::owner::cold(fd).map(|cold| !cold)
}

/// The lock owner id `seg` takes locks under (see `sync::owner`): what a lock word, or the
/// header's creator word, holds when this mapping holds the lock or created the segment.
pub fn lock_owner_id<
    B: crate::segment::Backing,
    M: crate::segment::Mode,
    I: crate::IndexKind,
    A: crate::alloc::MemoryAlgorithm,
>(
    seg: &crate::ManagedSegment<B, M, I, A>,
) -> crate::Result<u32> {
    seg.core().owner().me()
}

/// What the model tests (`tests/loom.rs`, built with `--cfg loom`) drive: the robust lock
/// word, the internal locks' recover-or-poison guard and the crash points, with model
/// threads as owners (see `robust::model`).
#[cfg(loom)]
pub mod model {
    use std::sync::OnceLock;

    use crate::error::{Error, Result};
    use crate::robust::{lock_with_recovery, Owner, RobustGuard};
    pub use crate::robust::{Acquired, RobustMutex};

    /// Runs `op`, crashing the calling model thread at the `n`-th crash point it passes
    /// (counting from 0): `op`'s result, or the step it crashed at. The thread must end
    /// afterwards: then its locks are a dead owner's, and time passes for the others.
    pub fn crashes_at<R>(n: u32, op: impl FnOnce() -> R) -> std::result::Result<R, &'static str> {
        crate::robust::crash::crashes_at(n, op)
    }

    /// The calling model thread dies when it ends (a killed process, a thread that exits
    /// with a leaked guard): time passes for the others then.
    pub fn killed() {
        crate::robust::model::killed();
    }

    /// The calling model thread's owner id.
    pub fn thread_id() -> u32 {
        owner()
            .thread_id()
            .expect("a model thread always has an id")
    }

    /// Whether a model thread holds owner id `id`.
    pub fn alive(id: u32) -> bool {
        owner().alive(id)
    }

    /// A lock word held by owner `id`, with waiters announced (as a dead owner leaves it).
    pub fn held_by(id: u32) -> RobustMutex {
        let mutex = RobustMutex::new();
        mutex.hand_to(id);
        mutex
    }

    /// The owner of memory outside segments, whose internal-lock id never dies.
    fn owner() -> &'static Owner {
        static OWNER: OnceLock<Owner> = OnceLock::new();
        OWNER.get_or_init(Owner::private)
    }

    /// A held internal lock (as the segment lock and the index lock hold theirs).
    pub struct InternalGuard<'a>(RobustGuard<'a>);

    impl<'a> AsMut<RobustGuard<'a>> for InternalGuard<'a> {
        fn as_mut(&mut self) -> &mut RobustGuard<'a> {
            &mut self.0
        }
    }

    /// Takes `mutex` as the segment's internal locks do (`lock_with_recovery`, in the
    /// process's name): `recover` runs when its holder died, and its failure poisons the
    /// lock; a poisoned lock is `Corrupted`.
    pub fn lock_internal<'a>(
        mutex: &'a RobustMutex,
        recover: impl FnOnce() -> Result<()>,
    ) -> Result<InternalGuard<'a>> {
        lock_with_recovery(
            mutex,
            owner(),
            InternalGuard,
            |_| recover(),
            || Error::Corrupted {
                what: "model lock".into(),
                reason: "poisoned".into(),
            },
        )
    }
}
