//! Which mappings are attached to a segment, from the kernel: each mapping holds
//! open-file-description locks ([`crate::os::ofd`]) on its own description of the device
//! (or of a companion lock file), for as long as it lives. Closing the description (the
//! mapping's drop, or its process's death) releases them, so no pid and no bookkeeping in
//! the segment is involved. The byte map is in [`crate::sync::owner`]; this module takes
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

use std::ptr::NonNull;

use crate::error::{Error, Result};
use crate::os::fork::{Mapped, Registered};
use crate::os::ofd::{self, LockKind};
use crate::os::{MapMode, Mappable, MappedRegion};
use crate::segment::mode::Mode;
use crate::sync::owner::{ATTACH, READERS, WRITERS};

/// Whether no other read-write mapping vouches for the segment on `dev` (`sync::owner`).
fn cold(dev: &impl Mappable) -> Result<bool> {
    crate::sync::owner::cold(dev.as_fd())
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
            });
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

    /// Whether no trusted writer was attached when this mapping attached: its open must
    /// validate the segment in full (an exclusive mapping is alone, so always cold).
    pub(crate) fn cold(&self) -> bool {
        self.cold
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
        addr: Option<NonNull<u8>>,
    ) -> Result<Mapped> {
        let map = || MappedRegion::map_whole(dev, mode, size, addr);
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
        let result = f();
        // Exclusive to shared never conflicts; the ofd module says so.
        ofd::try_lock(dev, ATTACH, LockKind::Shared)?;
        Ok(result)
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
