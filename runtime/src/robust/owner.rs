//! Who holds a robust lock, and how a waiter learns that the holder died: from the kernel,
//! never from a process id (pids are reused, and processes in different pid namespaces that
//! share one segment see different pids).
//!
//! Every mapping holds open-file-description locks on its own description of the device
//! (see [`crate::os::ofd`]), far beyond any data. The byte map:
//!
//! | bytes                 | held shared by            | held exclusive by                     |
//! |-----------------------|---------------------------|---------------------------------------|
//! | [`READERS`]           | read-only and copy-on-write mappings |                            |
//! | [`ATTACH`]            | every mapping             | an exclusive mapping, offline resizing, an in-place destroy (briefly) |
//! | [`WRITERS`]           | shared read-write mappings |                                      |
//! | `IDS + id`            |                           | the mapping whose lock owner id is `id` |
//! | `VOUCH + id`          |                           | that mapping, once it validated, created or trusted the segment |
//!
//! A lock word names its holder by the holder's owner id. A mapping claims one (a random
//! number in `1..2^30` whose `IDS` byte it can lock exclusively) the first time it locks, and
//! holds it until its description closes: when the mapping is dropped or its process dies.
//! A waiter decides that owner `id` died when no description holds byte `IDS + 2 id`
//! exclusively (`F_OFD_GETLK`). A shared lock there proves nothing: any reader of the file
//! can take one, an exclusive one needs write access. An id is only reused after a random
//! claim hits it again (one chance in 2^30 per claim), so a dead owner's id is not mistaken
//! for a live one while a waiter polls.
//!
//! Memory only one mapping reaches (heap memory, a buffer, a copy-on-write mapping) has no
//! description: its locks are taken by [`PRIVATE`], which never dies.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

use super::thread_ids;
use crate::error::{Error, Result};
use crate::os::{fork, ofd};

/// Held shared by read-only and copy-on-write mappings. Next to `ATTACH`, so that a reader
/// takes both with one call (and a writer `ATTACH` and `WRITERS`).
pub(crate) const READERS: u64 = 1 << 62;
/// Held shared by every mapping, exclusive by one that must be alone.
pub(crate) const ATTACH: u64 = READERS + 1;
/// Held shared by shared read-write mappings.
pub(crate) const WRITERS: u64 = ATTACH + 1;
/// `IDS + 2 id` is held exclusively by the owner of `id`, and `IDS + 2 id + 1` too once it
/// vouches for the segment: neighbours, so that a mapping that trusts the segment from the
/// start (a warm open, a creator) claims its id and vouches in one call.
const IDS: u64 = ATTACH + (1 << 32);
/// The range of every owner's two bytes.
const ID_BYTES: std::ops::Range<u64> =
    IDS + 2 * FIRST_ID as u64..IDS + 2 * (FIRST_ID as u64 + ID_COUNT as u64);
/// Locks another description may hold in the id range that a warm-or-cold check steps
/// over before it gives up and says cold (safe: cold validates everything).
const COLD_CHECK_STEPS: u32 = 16;

/// The byte whose exclusive lock says owner `id` is alive.
pub(super) const fn id_byte(id: u32) -> u64 {
    IDS + 2 * id as u64
}

/// The byte on which owner `id` vouches (for tests that forge locks there).
pub const fn vouch_byte(id: u32) -> u64 {
    IDS + 2 * id as u64 + 1
}
/// Owner ids of mappings are `FIRST_ID..FIRST_ID + ID_COUNT`; below 2^31, so a lock word
/// has a bit to spare.
pub(super) const FIRST_ID: u32 = 2;
pub(super) const ID_COUNT: u32 = (1 << 30) - FIRST_ID;
/// The owner of every lock in memory that only one mapping reaches.
pub const PRIVATE: u32 = 1;
/// Random claims tried before an open gives up (each fails only on an id held right now).
const CLAIM_TRIES: u32 = 64;

/// The owner ids this process claimed: on which file (ids are claimed per device, so
/// mappings of two segments may hold the same one), which id, and the fork generation it
/// was claimed in (a forked child inherits the list but none of the ids).
static OURS: Mutex<Vec<(FileId, u32, u32)>> = Mutex::new(Vec::new());

/// A file as the kernel knows it (device and inode): the segment, or its companion.
pub(super) type FileId = (u64, u64);

/// How this mapping takes locks: its owner id, claimed on its own description (and its
/// threads' ids, see [`super::thread_ids`]).
pub struct Owner {
    /// Never reused: identifies this owner to the threads holding ids on it.
    serial: u64,
    /// The descriptor of this mapping's own description (the backing owns it and outlives
    /// this owner); None for private memory.
    fd: Option<RawFd>,
    /// The file `fd` describes.
    file: FileId,
    /// This mapping's id; 0 until claimed.
    id: AtomicU32,
    /// The fork generation the id was claimed in: a forked child claims its own.
    forks: AtomicU32,
    /// One more than the fork generation in which this owner vouched (0: it has not), so
    /// that mappings sharing the owner vouch with one call.
    vouched: AtomicU32,
    claiming: Mutex<()>,
}

impl Owner {
    /// The owner of memory no other mapping reaches.
    pub fn private() -> Self {
        Owner {
            serial: thread_ids::next_serial(),
            fd: None,
            file: (0, 0),
            id: AtomicU32::new(PRIVATE),
            forks: AtomicU32::new(0),
            vouched: AtomicU32::new(0),
            claiming: Mutex::new(()),
        }
    }

    /// The owner of a mapping whose own description is `fd` (open for writing), which
    /// stays open for as long as this owner is used.
    pub fn attached(fd: BorrowedFd<'_>) -> Result<Self> {
        let stat = rustix::fs::fstat(fd).map_err(|e| os_error("fstat", e.into()))?;
        Ok(Owner {
            serial: thread_ids::next_serial(),
            fd: Some(fd.as_raw_fd()),
            file: (stat.st_dev, stat.st_ino),
            id: AtomicU32::new(0),
            forks: AtomicU32::new(0),
            vouched: AtomicU32::new(0),
            claiming: Mutex::new(()),
        })
    }

    #[inline]
    pub(super) fn serial(&self) -> u64 {
        self.serial
    }

    /// The file this owner's description describes ((0, 0) for private memory).
    pub(super) fn file(&self) -> FileId {
        self.file
    }

    #[inline]
    pub(super) fn raw_fd(&self) -> Option<RawFd> {
        self.fd
    }

    #[inline]
    pub(super) fn fd(&self) -> Option<BorrowedFd<'_>> {
        // SAFETY: the backing keeps the descriptor open while this owner is used (`attached`).
        self.fd.map(|fd| unsafe { BorrowedFd::borrow_raw(fd) })
    }

    /// This mapping's owner id, claimed on first use (and again in a forked child).
    #[inline]
    pub fn me(&self) -> Result<u32> {
        let id = self.id.load(Relaxed);
        if self.fd.is_none() || (id != 0 && self.forks.load(Relaxed) == fork::generation()) {
            return Ok(id);
        }
        self.claim(false).map(|(id, _)| id)
    }

    /// Claims an id unless this mapping holds one (in this process); with `vouching`, a new
    /// claim vouches too, in the same call. The id, and whether it was claimed vouching.
    #[cold]
    fn claim(&self, vouching: bool) -> Result<(u32, bool)> {
        let _one = self.claiming.lock().unwrap_or_else(PoisonError::into_inner);
        let forks = fork::generation();
        let id = self.id.load(Relaxed);
        if id != 0 && self.forks.load(Relaxed) == forks {
            return Ok((id, false));
        }
        let Some(fd) = self.fd() else {
            return Ok((PRIVATE, false));
        };
        let id = self.claim_id(fd, forks, if vouching { 2 } else { 1 })?;
        let mut ours = OURS.lock().unwrap_or_else(PoisonError::into_inner);
        ours.retain(|&(.., g)| g == forks);
        ours.push((self.file, id, forks));
        self.forks.store(forks, Relaxed);
        self.id.store(id, Relaxed);
        Ok((id, vouching))
    }

    /// Claims a random free id on description `fd`: its byte, and with `bytes == 2` its
    /// vouch byte too, locked exclusively.
    pub(super) fn claim_id(&self, fd: BorrowedFd<'_>, forks: u32, bytes: u64) -> Result<u32> {
        if fork::shares_parents(fd.as_raw_fd()) {
            return Err(os_error(
                "open(/proc/self/fd)",
                std::io::Error::other(
                    "this forked child could not open a description of its own for the \
                     segment (descriptors exhausted, or no /proc), so it cannot take its locks",
                ),
            ));
        }
        let seed = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), forks);
        for attempt in 0..u64::from(CLAIM_TRIES) {
            let r = seed.wrapping_add(attempt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let id = FIRST_ID + ((r ^ (r >> 31)) % u64::from(ID_COUNT)) as u32;
            let claimed = ofd::try_lock_exclusive_fd(fd, id_byte(id), bytes)
                .map_err(|e| os_error("fcntl(F_OFD_SETLK)", e))?;
            if claimed {
                return Ok(id);
            }
        }
        Err(os_error(
            "fcntl(F_OFD_SETLK)",
            std::io::Error::other(format!("no free lock owner id after {CLAIM_TRIES} tries")),
        ))
    }

    /// Whether `id` names a mapping of this process of the same segment as this one: a lock
    /// it holds was taken by one of our threads (the index lock nests for the thread
    /// holding it through any of our mappings of the segment; an id of ours on another
    /// segment is another owner here).
    pub fn is_ours(&self, id: u32) -> bool {
        if self.fd.is_none() {
            return id == PRIVATE;
        }
        let generation = fork::generation();
        OURS.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&(self.file, id, generation))
    }

    /// The id claimed last (what a lock held by this mapping names): for code that runs
    /// under a lock this mapping took, where [`me`](Self::me) has already succeeded.
    #[inline]
    pub fn claimed(&self) -> u32 {
        self.id.load(Relaxed)
    }

    /// Whether owner `id` (found in a lock word) may still release what it holds. Forged
    /// or stale ids are dead: nobody holds their byte.
    pub fn alive(&self, id: u32) -> bool {
        let Some(fd) = self.fd() else {
            return id == PRIVATE || self.own_thread_alive(id);
        };
        if !(FIRST_ID..FIRST_ID + ID_COUNT).contains(&id) {
            return false;
        }
        // A thread of this process holds its id on this very description, whose own locks
        // the kernel reports no conflict with.
        if self.own_thread_alive(id) {
            return true;
        }
        // When the kernel cannot answer, the owner is taken to live: a waiter keeps waiting
        // (with its timeouts) rather than taking a lock that may be held.
        ofd::exclusive_held_in(fd, id_byte(id), 1).unwrap_or(true)
    }

    /// Whether `id`, found in the word of a user lock (`crate::sync`), may still release it.
    /// User locks name threads, never [`PRIVATE`] (a thread that cannot claim an id of its
    /// own gets a permanent one), so a word naming `PRIVATE` was forged: dead.
    pub fn thread_alive(&self, id: u32) -> bool {
        id != PRIVATE && self.alive(id)
    }

    /// Records, for as long as this mapping's description is open, that it trusts the
    /// segment (see [`cold`]).
    pub fn vouch(&self) -> Result<()> {
        let Some(fd) = self.fd() else {
            return Ok(());
        };
        let now = fork::generation().wrapping_add(1);
        if self.vouched.load(Relaxed) == now {
            return Ok(());
        }
        let (id, vouched) = self.claim(true)?;
        let vouched = vouched
            || ofd::try_lock_exclusive_fd(fd, vouch_byte(id), 1)
                .map_err(|e| os_error("fcntl(F_OFD_SETLK)", e))?;
        if !vouched {
            return Err(os_error(
                "fcntl(F_OFD_SETLK)",
                std::io::Error::other("another description holds this owner's trust byte"),
            ));
        }
        self.vouched.store(now, Relaxed);
        Ok(())
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        thread_ids::forget_owner(self.serial);
        if self.fd.is_some() {
            let mine = (self.file, self.id.load(Relaxed), self.forks.load(Relaxed));
            OURS.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|&entry| entry != mine);
        }
    }
}

/// Whether no other mapping with write access vouches for the segment whose device `fd`
/// describes: an open must then validate it in full. An exclusive lock in the id range
/// that covers a vouch byte (an odd offset from `IDS`) says warm; one that covers only a
/// claim byte (a mapping still validating) is stepped over. After [`COLD_CHECK_STEPS`]
/// calls the answer is cold, which is always safe.
pub fn cold(fd: BorrowedFd<'_>) -> Result<bool> {
    let mut vouched = false;
    // An incomplete search that found no vouch says cold too.
    exclusive_locks(fd, COLD_CHECK_STEPS, |start, end| {
        let first_vouch = IDS + ((start.max(ID_BYTES.start) - IDS) | 1);
        vouched = first_vouch < end;
        !vouched
    })?;
    Ok(!vouched)
}

/// Calls `f(start, end)` for the exclusive locks other descriptions hold in the id range,
/// until `f` says stop (false) or `max_steps` `F_OFD_GETLK` calls were made; true when the
/// whole range was searched. The kernel names any one conflicting lock, not the lowest, so
/// the ranges on both sides of each are searched in turn: one call per lock, and one per
/// gap between them.
fn exclusive_locks(
    fd: BorrowedFd<'_>,
    max_steps: u32,
    mut f: impl FnMut(u64, u64) -> bool,
) -> Result<bool> {
    let mut ranges = vec![(ID_BYTES.start, ID_BYTES.end)];
    let mut steps = 0;
    while let Some((from, to)) = ranges.pop() {
        if from >= to {
            continue;
        }
        if steps == max_steps {
            return Ok(false);
        }
        steps += 1;
        let found = ofd::exclusive_lock_in(fd, from, to - from)
            .map_err(|e| os_error("fcntl(F_OFD_GETLK)", e))?;
        let Some((start, len)) = found else {
            continue;
        };
        let end = if len == 0 {
            u64::MAX
        } else {
            start.saturating_add(len)
        };
        if !f(start, end) {
            return Ok(true);
        }
        ranges.push((from, start));
        ranges.push((end, to));
    }
    Ok(true)
}

/// An owner id some description holds on a device, as an inspector sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Holder {
    /// The owner id (lock words and cache slots name it).
    pub id: u32,
    /// Whether it also vouches for the segment (a read-write mapping that validated,
    /// created or trusted it).
    pub vouched: bool,
}

/// The owner ids that descriptions other than `fd`'s hold on its device, in ascending
/// order: one `F_OFD_GETLK` per lock and gap, at most `max_steps` (then `None`: more are
/// held than were looked for). Needs only a readable descriptor.
pub(crate) fn holders(fd: BorrowedFd<'_>, max_steps: u32) -> Result<Option<Vec<Holder>>> {
    let mut found = Vec::new();
    let complete = exclusive_locks(fd, max_steps, |start, end| {
        let (start, end) = (start.max(ID_BYTES.start), end.min(ID_BYTES.end));
        // A lock may span several owners' bytes (never taken so by shmkit, but any writer of
        // the file can): each id byte it covers counts as held.
        let mut byte = IDS + ((start - IDS) & !1);
        while byte < end && found.len() <= 1 << 16 {
            found.push(Holder {
                id: ((byte - IDS) / 2) as u32,
                vouched: byte + 1 >= start && byte + 1 < end,
            });
            byte += 2;
        }
        true
    })?;
    found.sort_unstable_by_key(|h| h.id);
    found.dedup_by(|a, b| {
        if a.id == b.id {
            b.vouched |= a.vouched;
            true
        } else {
            false
        }
    });
    Ok(complete.then_some(found))
}

/// Whether a description other than `fd`'s holds owner `id`'s byte: the owner lives.
/// Ids outside the range owners claim are dead (forged or stale).
pub(crate) fn held_elsewhere(fd: BorrowedFd<'_>, id: u32) -> Result<bool> {
    if !(FIRST_ID..FIRST_ID + ID_COUNT).contains(&id) {
        return Ok(false);
    }
    ofd::exclusive_held_in(fd, id_byte(id), 1).map_err(|e| os_error("fcntl(F_OFD_GETLK)", e))
}

fn os_error(op: &'static str, source: std::io::Error) -> Error {
    Error::Os {
        op,
        what: "the segment's attachment locks".into(),
        source,
    }
}

#[cfg(test)]
mod tests {
    //! Ids are claimed once per mapping and checked through the kernel; the multi-process
    //! cases (pid namespaces, a killed holder, a reused pid) are in `tests/multiprocess`.

    use super::*;
    use crate::os::{Access, Permissions, SharedMemoryObject};
    use std::os::fd::AsFd;

    struct Name(String);
    impl Drop for Name {
        fn drop(&mut self) {
            let _ = SharedMemoryObject::remove(&self.0);
        }
    }

    fn device(tag: &str) -> (Name, SharedMemoryObject, SharedMemoryObject) {
        let name = Name(format!("shmkit_owner_{tag}_{}", std::process::id()));
        let a =
            SharedMemoryObject::create(&name.0, Access::ReadWrite, Permissions::default()).unwrap();
        let b = SharedMemoryObject::open(&name.0, Access::ReadWrite).unwrap();
        (name, a, b)
    }

    #[test]
    #[cfg_attr(miri, ignore = "real shared memory")]
    fn an_owner_is_alive_while_its_description_is_open() {
        let (_name, a, b) = device("alive");
        let owner_a = Owner::attached(a.as_fd()).unwrap();
        let owner_b = Owner::attached(b.as_fd()).unwrap();
        let id = owner_a.me().unwrap();
        assert_eq!(owner_a.me().unwrap(), id, "claimed once");
        assert!(owner_b.alive(id));
        assert_ne!(owner_b.me().unwrap(), id);
        assert!(!owner_b.alive(id ^ 1), "an id nobody claimed is dead");
        assert!(!owner_b.alive(PRIVATE) && !owner_b.alive(0) && !owner_b.alive(u32::MAX >> 1));
        drop(owner_a);
        drop(a);
        assert!(!owner_b.alive(id), "closing the description ends the owner");
    }

    #[test]
    #[cfg_attr(miri, ignore = "real shared memory")]
    fn a_shared_lock_on_an_id_byte_does_not_fake_a_live_owner_nor_trust() {
        let (name, a, b) = device("forge");
        let reader = SharedMemoryObject::open(&name.0, Access::ReadOnly).unwrap();
        let owner = Owner::attached(a.as_fd()).unwrap();
        assert!(ofd::lock_shared_raw(
            reader.as_fd().as_raw_fd(),
            IDS + 2 * 12345
        ));
        assert!(ofd::lock_shared_raw(
            reader.as_fd().as_raw_fd(),
            vouch_byte(12345)
        ));
        assert!(!owner.alive(12345));
        assert!(cold(a.as_fd()).unwrap());
        // A mapping still validating holds its id byte only: not trusted yet.
        let validating = Owner::attached(b.as_fd()).unwrap();
        validating.me().unwrap();
        assert!(
            cold(reader.as_fd()).unwrap(),
            "a claim alone does not vouch"
        );
        owner.vouch().unwrap();
        assert!(
            !cold(reader.as_fd()).unwrap(),
            "a writer's vouch makes opens warm"
        );
        assert!(
            cold(a.as_fd()).unwrap(),
            "a description's own vouch does not count"
        );
        validating.vouch().unwrap();
        assert!(
            !cold(reader.as_fd()).unwrap(),
            "a later vouch over a claim counts"
        );
    }

    #[test]
    fn private_memory_has_one_owner_that_never_dies() {
        let owner = Owner::private();
        assert_eq!(owner.me().unwrap(), PRIVATE);
        assert!(owner.alive(PRIVATE));
        assert!(!owner.alive(7));
        owner.vouch().unwrap();
    }
}
