//! Which mappings are attached to a segment, from the kernel: each mapping holds
//! open-file-description locks ([`crate::os::ofd`]) on its own description of the device
//! (or of a companion lock file), for as long as it lives. Closing the description (the
//! mapping's drop, or its process's death) releases them, so no pid and no bookkeeping in
//! the segment is involved. The byte map is in [`crate::robust::owner`]; this module takes
//! the bytes a mapping mode holds.
//!
//! A read-write mapping takes `WRITERS` and then tests `READERS`, a reader takes `READERS`
//! and then tests `WRITERS`: the kernel orders the two, so of a writer and a reader racing
//! both may fail, but never both succeed.
//!
//! How much an open validates depends on whether another read-write mapping that
//! validated, created or trusted the segment is attached now (`VOUCH` bytes, which need
//! write access to take): then the open is warm and the bytes are what trusted writers
//! wrote; otherwise it is cold and validates everything. A mapping vouches only once its
//! open succeeded, so one that is still validating (or failed to, or died doing it) is
//! attached but not trusted.
//!
//! A forked child inherits a shared read-write mapping: its copy of the descriptor is made
//! a description of its own, and its copy of a device's mapping is made again from that
//! description (see [`crate::os::fork`]), so the locks the child takes name the child, and
//! the parent's die with the parent. An exclusive mapping is not inherited.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::error::{Error, Result};
use crate::os::fork::{Mapped, Registered};
use crate::os::ofd::{self, LockKind};
use crate::os::{Access, MapMode, Mappable, MappedRegion};
use crate::robust::owner::{ATTACH, READERS, WRITERS};
use crate::robust::Owner;
use crate::segment::mode::Mode;

/// Whether no other read-write mapping vouches for the segment on `dev` (`sync::owner`).
fn cold(dev: &impl Mappable) -> Result<bool> {
    crate::robust::owner::cold(dev.as_fd())
}

/// The locks one mapping holds on its device's description (released when it is closed).
pub(crate) struct Attachment {
    exclusive: bool,
    /// Whether the open must validate in full (see [`Attachment::cold`]).
    cold: bool,
    /// What a forked child does with the description: an exclusive mapping's is not kept,
    /// a shared read-write mapping's becomes the child's own; read-only and copy-on-write
    /// mappings take no locks a child could misuse, and keep it.
    on_fork: Option<Registered>,
    /// An observer that attached cold holds `READERS` while its open validates, so that no
    /// writer changes the bytes meanwhile; [`opened`](Self::opened) lets writers in.
    readers_until_opened: bool,
}

impl Attachment {
    /// Takes the locks a mapping in mode `M` holds, or fails with `InUse` saying who is in
    /// the way (and holding nothing).
    pub(crate) fn take<M: Mode>(dev: &impl Mappable) -> Result<Self> {
        if M::EXCLUSIVE {
            let on_fork = Registered::uninherited(dev.as_fd())?;
            if !ofd::try_lock(dev, ATTACH, LockKind::Exclusive)? {
                return Err(in_use(dev, "an exclusive open needs it alone"));
            }
            return Ok(Attachment {
                exclusive: true,
                cold: true,
                on_fork: Some(on_fork),
                readers_until_opened: false,
            });
        }
        if M::OBSERVES {
            return Self::observe(dev);
        }
        // One call takes ATTACH with this mode's byte (they are neighbours, see
        // `sync::owner`); which of them is in the way is worked out only on failure.
        let (mine, theirs, why) = match M::MAP {
            MapMode::ReadWrite => (
                ATTACH,
                READERS,
                "a read-only or copy-on-write mapping maps it, and a read-write mapping would \
                 change the bytes it reads",
            ),
            MapMode::ReadOnly | MapMode::CopyOnWrite => (
                READERS,
                WRITERS,
                "a read-write mapping maps it, and a read-only or copy-on-write mapping would \
                 see its changes half done",
            ),
        };
        if !ofd::try_lock_bytes(dev, mine, 2, LockKind::Shared)? {
            return Err(in_use(dev, "this open waits for it"));
        }
        // A writer that finds a trusted writer attached need not test READERS: that writer
        // has held WRITERS since before it tested READERS itself (or found a trusted writer
        // in turn), so any reader that could succeed was seen then, and every later one
        // sees WRITERS held and gives up.
        let checked = cold(dev).and_then(|cold| {
            let clear = (M::MAP == MapMode::ReadWrite && !cold)
                || ofd::conflicting(dev, theirs, LockKind::Exclusive)?.is_none();
            Ok((clear, cold))
        });
        let on_fork = || match M::MAP {
            MapMode::ReadWrite => Registered::reopened(dev.as_fd(), &[ATTACH, WRITERS]).map(Some),
            MapMode::ReadOnly | MapMode::CopyOnWrite => Ok(None),
        };
        match checked
            .and_then(|(clear, cold)| Ok(clear.then(on_fork).transpose()?.map(|f| (f, cold))))
        {
            Ok(Some((on_fork, cold))) => Ok(Attachment {
                exclusive: false,
                cold,
                on_fork,
                readers_until_opened: false,
            }),
            failed => {
                // Best effort: the description is closed right after a failed open anyway.
                let _ = ofd::unlock(dev, mine, 2);
                failed?;
                Err(Error::InUse {
                    what: dev.describe(),
                    reason: why.into(),
                })
            }
        }
    }

    /// An observer's locks: `ATTACH` shared only, so that writers may come and go while it
    /// reads (a destroy, a resize or an exclusive open still waits for it). With a trusted
    /// writer attached, the bytes are what trusted writers wrote (see the module docs).
    /// Without one the open validates them in full, as a read-only open does, and holds
    /// `READERS` meanwhile, so that no writer changes them under the check; a writer still
    /// opening (attached, not yet trusted) makes it `InUse`: try again.
    fn observe(dev: &impl Mappable) -> Result<Self> {
        if !ofd::try_lock(dev, ATTACH, LockKind::Shared)? {
            return Err(in_use(dev, "an observer waits for it"));
        }
        let taken = cold(dev).and_then(|cold| {
            let clear = !cold
                || (ofd::try_lock(dev, READERS, LockKind::Shared)?
                    && ofd::conflicting(dev, WRITERS, LockKind::Exclusive)?.is_none());
            Ok((clear, cold))
        });
        match taken {
            Ok((true, cold)) => Ok(Attachment {
                exclusive: false,
                cold,
                on_fork: None,
                readers_until_opened: cold,
            }),
            failed => {
                // Best effort: the description is closed right after a failed open anyway.
                let _ = ofd::unlock(dev, READERS, 2);
                failed?;
                Err(Error::InUse {
                    what: dev.describe(),
                    reason: "a read-write mapping is still opening it (attached, not yet \
                             trusted), and an observer without a trusted writer must validate \
                             the segment while no writer changes it; try again"
                        .into(),
                })
            }
        }
    }

    /// The open through this attachment succeeded: an observer that validated lets
    /// writers in now. If that fails, they stay out until it goes (`InUse` for them).
    pub(crate) fn opened(&self, dev: &impl Mappable) {
        if self.readers_until_opened {
            let _ = ofd::unlock(dev, READERS, 1);
        }
    }

    /// Whether no trusted writer was attached when this mapping attached: its open must
    /// validate the segment in full (an exclusive mapping is alone, so always cold).
    pub(crate) fn cold(&self) -> bool {
        self.cold
    }

    /// Gives up this attachment's locks now, leaving `dev`'s description open.
    pub(crate) fn release(self, dev: &impl Mappable) -> Result<()> {
        ofd::unlock(dev, READERS, WRITERS - READERS + 1)
    }

    /// Maps all `size` bytes of `dev` (the device this attachment was taken on) in `mode`
    /// (at `addr` if given, see [`MappedRegion::map_at`]), as forked children should get
    /// it: an exclusive mapping's not at all, a shared read-write mapping's made again from
    /// the child's own description (see [`crate::os::fork`]).
    pub(crate) fn map(
        &self,
        dev: &impl Mappable,
        mode: MapMode,
        size: u64,
        reserved: u64,
        addr: Option<NonNull<u8>>,
    ) -> Result<Mapped> {
        let map = || MappedRegion::map_whole(dev, mode, size, reserved, addr);
        match &self.on_fork {
            Some(on_fork) => on_fork.map(map),
            None => map().map(Mapped::inherited),
        }
    }

    /// Turns an exclusive attachment into a shared read-write one, atomically: no other
    /// mapping can attach in between. Forked children inherit its `mapping` from then on,
    /// with a description of their own: with no fork in between, and the locks converted
    /// first (the child locks `ATTACH` shared on its description).
    pub(crate) fn share(&mut self, dev: &impl Mappable, mapping: &Mapped) -> Result<()> {
        // Nobody holds READERS while ATTACH is exclusive (a reader takes ATTACH first).
        if !ofd::try_lock(dev, WRITERS, LockKind::Shared)?
            || !ofd::try_lock(dev, ATTACH, LockKind::Shared)?
        {
            return Err(Error::InUse {
                what: dev.describe(),
                reason: "the kernel refused to turn its exclusive lock into a shared one".into(),
            });
        }
        // An exclusive attachment is always registered (`take`).
        if let Some(on_fork) = &self.on_fork {
            on_fork.share(&[ATTACH, WRITERS], mapping)?;
        }
        self.exclusive = false;
        Ok(())
    }

    /// Runs `f` while no other mapping is attached (ATTACH converted to exclusive, then
    /// back), or fails with `InUse`.
    pub(crate) fn alone<R>(&self, dev: &impl Mappable, f: impl FnOnce() -> R) -> Result<R> {
        if self.exclusive {
            return Ok(f());
        }
        if !ofd::try_lock(dev, ATTACH, LockKind::Exclusive)? {
            return Err(in_use(dev, "destroying in place needs it alone"));
        }
        // Also when `f` panics (a user's `Drop` in a destroy): else every other open is
        // refused for as long as this mapping lives.
        let _shared = SharedAgain(dev);
        Ok(f())
    }
}

/// Converts `ATTACH` on its device back to shared when dropped (see [`Attachment::alone`]).
struct SharedAgain<'a, D: Mappable>(&'a D);

impl<D: Mappable> Drop for SharedAgain<'_, D> {
    fn drop(&mut self) {
        // Exclusive to shared never conflicts (the ofd module says so), so it cannot fail
        // on a description that is open.
        let _ = ofd::try_lock(self.0, ATTACH, LockKind::Shared);
    }
}

/// `InUse` naming who holds ATTACH in the way of `what`.
fn in_use(dev: &impl Mappable, what: &str) -> Error {
    let holder = match ofd::conflicting(dev, ATTACH, LockKind::Exclusive) {
        Ok(Some(LockKind::Exclusive)) => {
            "an exclusive mapping (or an offline resize) holds it".to_owned()
        }
        Ok(Some(LockKind::Shared)) => {
            let writers = ofd::conflicting(dev, WRITERS, LockKind::Exclusive);
            let readers = ofd::conflicting(dev, READERS, LockKind::Exclusive);
            match (writers, readers) {
                (Ok(Some(_)), Ok(Some(_))) => "read-write and read-only mappings map it",
                (Ok(Some(_)), _) => "shared read-write mappings map it",
                (_, Ok(Some(_))) => "read-only or copy-on-write mappings map it",
                _ => "another mapping maps it",
            }
            .to_owned()
        }
        _ => "another mapping held it a moment ago".to_owned(),
    };
    Error::InUse {
        what: dev.describe(),
        reason: format!("{holder}; {what}"),
    }
}

/// A description of a device of its own, opened again from a mapping's descriptor
/// (`/proc/self/fd/N`), that carries a process's attachment locks and lock owner: no region
/// maps it, so no mapping (in this process or a forked child) keeps it, and its locks,
/// alive after the process lets it go.
pub(crate) struct LockDescription {
    fd: OwnedFd,
    access: Access,
    what: String,
}

impl LockDescription {
    fn reopen(dev: &impl Mappable) -> Result<Self> {
        let path = format!("/proc/self/fd/{}", dev.as_fd().as_raw_fd());
        let flags = match dev.access() {
            Access::ReadWrite => rustix::fs::OFlags::RDWR,
            Access::ReadOnly => rustix::fs::OFlags::RDONLY,
        };
        let fd = rustix::fs::open(
            path.as_str(),
            flags | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| Error::from_os("open(/proc/self/fd)", dev.describe(), e.into()))?;
        Ok(LockDescription {
            fd,
            access: dev.access(),
            what: dev.describe(),
        })
    }
}

impl AsFd for LockDescription {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Mappable for LockDescription {
    fn access(&self) -> Access {
        self.access
    }
    fn size(&self) -> Result<u64> {
        let stat = rustix::fs::fstat(&self.fd)
            .map_err(|e| Error::from_os("fstat", self.describe(), e.into()))?;
        Ok(u64::try_from(stat.st_size).unwrap_or(0))
    }
    fn describe(&self) -> String {
        self.what.clone()
    }
}

/// Which device, in which mode: what a process's mappings share an attachment by.
type Key = (u64, u64, MapMode);

/// The attachments of this process, by device and mode; an entry whose attachment is gone
/// is replaced on the next open of its device.
static PROCESS: Mutex<Vec<(Key, Weak<ProcessAttachment>)>> = Mutex::new(Vec::new());

/// The attachment that every shared mapping of one device in one mode in this process
/// holds together (they cannot exclude each other: only the kernel's view of the device,
/// other processes and exclusive mappings, matters): its locks on a description of its
/// own, and the lock owner id its mappings take the segment's locks under. The first open
/// takes the locks; later opens of a device this process already maps and trusts make no
/// lock call at all, so a process that opens a segment again and again pays what Boost
/// pays. The locks go when the last of these mappings is dropped.
pub(crate) struct ProcessAttachment {
    lock: LockDescription,
    attachment: Attachment,
    owner: Arc<Owner>,
    /// Set once a mapping opened through it succeeded (it validated, created or trusted the
    /// segment): only then do later opens reuse it, warm.
    trusted: AtomicBool,
    /// The device's size, read under its locks (or set by its creator): stable while they
    /// are held, since resizing needs the segment alone.
    size: AtomicU64,
}

impl ProcessAttachment {
    /// This process's attachment to `dev` (whose `fstat` is `stat`) in mode `M`: the one
    /// its mappings hold already, if one opened successfully, else a new one (locks taken,
    /// or `InUse` as [`Attachment::take`] says). None when no description of its own can be
    /// opened (no `/proc`): the mapping then holds its locks on its own description.
    pub(crate) fn take<M: Mode>(
        dev: &impl Mappable,
        stat: &rustix::fs::Stat,
    ) -> Result<Option<Arc<Self>>> {
        let key: Key = (stat.st_dev, stat.st_ino, M::MAP);
        let mut table = PROCESS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = table
            .iter()
            .filter(|(k, _)| *k == key)
            .filter_map(|(_, weak)| weak.upgrade())
            .filter(|found| found.trusted.load(Ordering::Acquire))
            // A device cut shorter from outside (any writer of the file can) is not mapped
            // past its end: a fresh attachment reads its size and the header check refuses it.
            .find(|found| u64::try_from(stat.st_size).is_ok_and(|now| now >= found.size()))
        {
            return Ok(Some(found));
        }
        let Ok(lock) = LockDescription::reopen(dev) else {
            return Ok(None);
        };
        let attachment = Attachment::take::<M>(&lock)?;
        let size = AtomicU64::new(lock.size()?);
        let owner = Arc::new(match M::MAP {
            // Copy-on-write pages are private: their locks are this mapping's alone.
            MapMode::CopyOnWrite => Owner::private(),
            MapMode::ReadWrite | MapMode::ReadOnly => Owner::attached(lock.as_fd())?,
        });
        let taken = Arc::new(ProcessAttachment {
            lock,
            attachment,
            owner,
            trusted: AtomicBool::new(false),
            size,
        });
        table.retain(|(_, weak)| weak.strong_count() > 0);
        table.push((key, Arc::downgrade(&taken)));
        Ok(Some(taken))
    }

    /// The device's size, as read under this attachment's locks.
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Records the size its creator gave the device (under this attachment's locks).
    pub(crate) fn sized(&self, size: u64) {
        self.size.store(size, Ordering::Release);
    }

    /// The lock owner of every mapping that holds this attachment.
    pub(crate) fn owner(&self) -> Arc<Owner> {
        Arc::clone(&self.owner)
    }

    /// Whether an open through this attachment must validate the segment in full: not once
    /// a mapping of this process opened it successfully; before, as the kernel's locks said.
    pub(crate) fn cold(&self) -> bool {
        !self.trusted.load(Ordering::Acquire) && self.attachment.cold()
    }

    /// Records that a mapping opened through this attachment succeeded.
    pub(crate) fn trust(&self) {
        self.trusted.store(true, Ordering::Release);
    }

    /// Runs `f` while no other mapping of the segment is attached, in this process (`this`
    /// is the only holder, and opens meanwhile do not reuse it: they take locks of their
    /// own, which conflict) or another (the locks).
    pub(crate) fn alone<R>(this: &Arc<Self>, f: impl FnOnce() -> R) -> Result<R> {
        let trusted = {
            let _no_reuse = PROCESS.lock().unwrap_or_else(PoisonError::into_inner);
            if Arc::strong_count(this) > 1 {
                return Err(Error::InUse {
                    what: this.lock.describe(),
                    reason: "another mapping in this process maps it; destroying in place \
                             needs it alone"
                        .into(),
                });
            }
            this.trusted.swap(false, Ordering::AcqRel)
        };
        // Restored also when `f` panics, so that later opens reuse this attachment again.
        let _trusted_again = TrustedAgain(&this.trusted, trusted);
        this.attachment.alone(&this.lock, f)
    }
}

/// Stores its value into the flag when dropped (see [`ProcessAttachment::alone`]).
struct TrustedAgain<'a>(&'a AtomicBool, bool);

impl Drop for TrustedAgain<'_> {
    fn drop(&mut self) {
        self.0.store(self.1, Ordering::Release);
    }
}
