//! Which mappings are attached to a segment, from the kernel: each mapping holds
//! open-file-description locks ([`crate::os::ofd`]) on its own description of the device,
//! for as long as it lives. Closing the description (the mapping's drop, or its process's
//! death) releases them, so no pid and no bookkeeping in the segment is involved.
//!
//! The bytes, far beyond any data (offsets from `1 << 62`; a lock needs no data there):
//!
//! | byte          | held shared by            | held exclusive by                     |
//! |---------------|---------------------------|---------------------------------------|
//! | `ATTACH`      | every mapping             | an exclusive mapping, offline resizing, a shared mapping destroying in place (briefly) |
//! | `WRITERS`     | shared read-write mappings |                                      |
//! | `READERS`     | read-only and copy-on-write mappings |                            |
//! | `TRUSTED`     | read-write mappings that validated, created or trusted the segment | |
//!
//! `TRUSTED` decides how much an open validates. A mapping takes it only once its open
//! succeeded, so a mapping that is still validating (or failed to, or died doing it) is
//! attached but not trusted; `ATTACH` alone could not tell these apart. An open that finds
//! `TRUSTED` held elsewhere is warm: the bytes are what trusted writers wrote, and the
//! cheap header checks suffice. Otherwise it is cold and validates everything. Read-only
//! and copy-on-write mappings never take it: they do not check (or only repair) the
//! allocator of the shared bytes.
//! A read-write mapping takes `WRITERS` and then tests `READERS`, a reader takes `READERS`
//! and then tests `WRITERS`: the kernel orders the two, so of a writer and a reader racing
//! both may fail, but never both succeed. Bytes from `1 << 62` + 64 are left for the
//! attach table's slot locks.

use crate::error::{Error, Result};
use crate::os::fork::Uninherited;
use crate::os::ofd::{self, LockKind};
use crate::os::{MapMode, Mappable};
use crate::segment::mode::Mode;

const ATTACH: u64 = 1 << 62;
const WRITERS: u64 = ATTACH + 1;
const READERS: u64 = ATTACH + 2;
const TRUSTED: u64 = ATTACH + 3;

/// The locks one mapping holds on its device's description (released when it is closed).
pub(crate) struct Attachment {
    /// Present while the mapping is exclusive: a forked child does not keep the
    /// description, and with it the exclusive lock.
    exclusive: Option<Uninherited>,
}

impl Attachment {
    /// Takes the locks a mapping in mode `M` holds, or fails with `InUse` saying who is in
    /// the way (and holding nothing).
    pub(crate) fn take<M: Mode>(dev: &impl Mappable) -> Result<Self> {
        if M::EXCLUSIVE {
            let exclusive = Uninherited::new(dev.as_fd())?;
            if !ofd::try_lock(dev, ATTACH, LockKind::Exclusive)? {
                return Err(in_use(dev, "an exclusive open needs it alone"));
            }
            return Ok(Attachment {
                exclusive: Some(exclusive),
            });
        }
        if !ofd::try_lock(dev, ATTACH, LockKind::Shared)? {
            return Err(in_use(dev, "this open waits for it"));
        }
        let (mine, theirs, why) = match M::MAP {
            MapMode::ReadWrite => (
                WRITERS,
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
        let taken = ofd::try_lock(dev, mine, LockKind::Shared)
            .and_then(|ok| Ok(ok && ofd::conflicting(dev, theirs, LockKind::Exclusive)?.is_none()));
        match taken {
            Ok(true) => Ok(Attachment { exclusive: None }),
            failed => {
                // Best effort: the description is closed right after a failed open anyway.
                let _ = ofd::unlock(dev, mine);
                let _ = ofd::unlock(dev, ATTACH);
                failed?;
                Err(Error::InUse {
                    what: dev.describe(),
                    reason: why.into(),
                })
            }
        }
    }

    /// Turns an exclusive attachment into a shared read-write one, atomically: no other
    /// mapping can attach in between.
    pub(crate) fn share(&mut self, dev: &impl Mappable) -> Result<()> {
        // Nobody holds READERS while ATTACH is exclusive (a reader takes ATTACH first).
        if !ofd::try_lock(dev, WRITERS, LockKind::Shared)?
            || !ofd::try_lock(dev, ATTACH, LockKind::Shared)?
        {
            return Err(Error::InUse {
                what: dev.describe(),
                reason: "the kernel refused to turn its exclusive lock into a shared one".into(),
            });
        }
        self.exclusive = None;
        Ok(())
    }

    /// Whether no other mapping vouches for the segment: an open must validate it in full.
    pub(crate) fn cold(dev: &impl Mappable) -> Result<bool> {
        Ok(ofd::conflicting(dev, TRUSTED, LockKind::Exclusive)?.is_none())
    }

    /// Vouches for the segment for as long as this description is open (`TRUSTED`).
    pub(crate) fn vouch(dev: &impl Mappable) -> Result<()> {
        if ofd::try_lock(dev, TRUSTED, LockKind::Shared)? {
            return Ok(());
        }
        Err(Error::InUse {
            what: dev.describe(),
            reason: "another description holds its trust lock exclusively".into(),
        })
    }

    /// Runs `f` while no other mapping is attached (ATTACH converted to exclusive, then
    /// back), or fails with `InUse`.
    pub(crate) fn alone<R>(&self, dev: &impl Mappable, f: impl FnOnce() -> R) -> Result<R> {
        if self.exclusive.is_some() {
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
