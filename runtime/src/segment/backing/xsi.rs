//! Managed System V (XSI) shared memory: a segment named by a key made from a path and an
//! id, for systems and programs that speak `shmget`.
//!
//! XSI memory has no file description to hold attachment locks on, so each mapping holds
//! them on its own description of a companion lock file: the POSIX shared memory object
//! `shmkit-xsi-<shmid>` (empty). Only the segment's creator makes it (`O_EXCL`); an opener
//! trusts it only if the segment's owner or creator owns it and it lets nobody write it
//! who may not write the segment, and refuses while the segment has attachments that hold
//! no lock on it. The last mapping of a removed segment removes it.

use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::io::Errno;

use super::attachment::Attachment;
use crate::alloc::{MemoryAlgorithm, Tlsf};
use crate::error::{Error, Result};
use crate::objects::{HashIndex, IndexKind};
use crate::os::ofd::{self, LockKind};
use crate::os::{
    Access, MapMode, Permissions, SharedMemoryObject, XsiKey, XsiRegion, XsiSharedMemory, XsiStat,
};
use crate::robust::owner::ATTACH;
use crate::robust::Owner;
use crate::segment::builder::{SegmentBuilder, Settings};
use crate::segment::managed::{check_size, Backing, ManagedSegment};
use crate::segment::mode::{Mode, ReadWrite};

/// An XSI shared memory segment, its attachment and the companion file that carries the
/// attachment's locks.
pub struct XsiBacking {
    // Declared first: detached before the companion's locks go, which were taken before
    // it was attached, so every attachment of ours holds `ATTACH`.
    region: XsiRegion,
    // Before the companion: leaves the fork handler's list before the descriptor closes.
    attachment: Attachment,
    companion: Companion,
    shm: XsiSharedMemory,
}

/// How many times an opener looks for a lock on the companion before it takes the
/// segment's attachments for ones that hold none (a mapping that attached between the two
/// looks of one round is seen at the next, a millisecond later).
const UNLOCKED_ROUNDS: u32 = 3;

/// The companion lock file of XSI segment `id`, as one mapping opened it.
struct Companion {
    object: SharedMemoryObject,
    id: libc::c_int,
}

/// The name of the companion lock file of the XSI segment `id`.
pub(crate) fn companion_name(id: libc::c_int) -> String {
    format!("shmkit-xsi-{id}")
}

/// How errors name the segment.
fn describe(shm: &XsiSharedMemory) -> String {
    format!(
        "XSI shared memory (key {:#x}, id {})",
        shm.key().raw(),
        shm.id()
    )
}

/// The segment's status now; `NotFound` once it is gone.
fn stat(shm: &XsiSharedMemory) -> Result<XsiStat> {
    XsiSharedMemory::stat_id(shm.id())?.ok_or_else(|| Error::NotFound {
        what: describe(shm),
    })
}

/// A companion missing or refused for what it is (`Corrupted`, naming it).
fn untrusted(shm: &XsiSharedMemory, why: String) -> Error {
    Error::Corrupted {
        what: describe(shm),
        reason: format!(
            "its companion lock file /dev/shm/{}: {why}",
            companion_name(shm.id())
        ),
    }
}

/// `fstat` of an open companion.
fn fstat(object: &SharedMemoryObject) -> Result<rustix::fs::Stat> {
    rustix::fs::fstat(object)
        .map_err(|e| Error::from_os("fstat", format!("/dev/shm/{}", object.name()), e.into()))
}

/// Whether the segment's owner or creator made the file `st` describes.
fn made_by_owner(st: &rustix::fs::Stat, seg: &XsiStat) -> bool {
    st.st_uid == seg.uid || st.st_uid == seg.cuid
}

/// Whether `/dev/shm/<name>` still names `object`'s file (neither removed nor replaced).
fn still_named(object: &SharedMemoryObject) -> Result<bool> {
    let held = fstat(object)?;
    let path = format!("/dev/shm/{}", object.name());
    match rustix::fs::stat(path.as_str()) {
        Ok(named) => Ok((named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(Error::from_os("stat", path, e.into())),
    }
}

impl Companion {
    /// Makes the companion of the segment `shm` this process just created. A file left
    /// under its name by a removed segment whose id was reused is replaced only when it is
    /// provably stale: the segment's owner made it, and no description holds `ATTACH` on it
    /// (every mapping holds it from before it attaches until after it detaches) while we
    /// hold `ATTACH` exclusively, check that the name is still that file and remove it. An
    /// opener of the new segment that opened the old file meanwhile finds, once it holds
    /// `ATTACH`, that the name no longer refers to it and gives up.
    fn create(shm: &XsiSharedMemory, perms: Permissions) -> Result<Self> {
        let name = companion_name(shm.id());
        let mut replaced = false;
        loop {
            match SharedMemoryObject::create(&name, Access::ReadWrite, perms) {
                Ok(object) => {
                    return Ok(Companion {
                        object,
                        id: shm.id(),
                    })
                }
                Err(Error::AlreadyExists { .. }) if !replaced => {}
                Err(e) => return Err(e),
            }
            replaced = true;
            let stale = match SharedMemoryObject::open(&name, Access::ReadWrite) {
                Ok(stale) => stale,
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let st = fstat(&stale)?;
            if !made_by_owner(&st, &stat(shm)?) {
                return Err(untrusted(
                    shm,
                    format!(
                        "a file of uid {} left under its name is not the segment owner's to \
                         replace",
                        st.st_uid
                    ),
                ));
            }
            if !ofd::try_lock(&stale, ATTACH, LockKind::Exclusive)? {
                return Err(Error::InUse {
                    what: describe(shm),
                    reason: format!(
                        "the file left under its companion's name /dev/shm/{name} is held by \
                         mappings of a segment that had the same id"
                    ),
                });
            }
            if still_named(&stale)? {
                SharedMemoryObject::remove(&name)?;
            }
        }
    }

    /// Opens the companion of the segment `shm` another process created, waiting up to
    /// `timeout` for a creator that has not made it yet, and checks that it can be trusted
    /// with the segment's locks (see the module doc).
    fn open(shm: &XsiSharedMemory, access: Access, timeout: Duration) -> Result<Self> {
        let name = companion_name(shm.id());
        // Read the clock only once there is something to wait for.
        let mut started = None;
        let object = loop {
            match SharedMemoryObject::open(&name, access) {
                Ok(object) => break object,
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
            // A creator attaches only after making it: gone after that, it was removed.
            if stat(shm)?.attached_before {
                return Err(untrusted(
                    shm,
                    "gone although the segment has been attached: it was removed, and the \
                     locks of mappings still attached cannot be seen; remove the segment once \
                     they are done"
                        .into(),
                ));
            }
            let started = *started.get_or_insert_with(Instant::now);
            if started.elapsed() >= timeout {
                return Err(Error::Timeout {
                    what: describe(shm),
                    reason: format!(
                        "its creator made no companion lock file /dev/shm/{name} within \
                         {timeout:?} (it died before attaching, or another program made the \
                         segment)"
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let seg = stat(shm)?;
        let st = fstat(&object)?;
        if !made_by_owner(&st, &seg) {
            return Err(untrusted(
                shm,
                format!(
                    "it belongs to uid {}, not to the segment's owner (uid {}) or creator (uid \
                     {}): another user made it and could hold its locks",
                    st.st_uid, seg.uid, seg.cuid
                ),
            ));
        }
        // Write access lets one take a lock exclusively (a lock owner id, a vouch).
        let mode = st.st_mode & 0o777;
        let group_ok = st.st_gid == seg.gid || st.st_gid == seg.cgid;
        if mode & 0o022 & !seg.mode != 0 || (mode & 0o020 != 0 && !group_ok) {
            return Err(untrusted(
                shm,
                format!(
                    "its mode {mode:o} (group {}) lets users write it who may not write the \
                     segment (mode {:o}, group {}), and they could hold its locks",
                    st.st_gid, seg.mode, seg.gid
                ),
            ));
        }
        Ok(Companion {
            object,
            id: shm.id(),
        })
    }

    /// Refuses (`InUse`) while the segment has attachments that hold no `ATTACH` on this
    /// companion, for this mapping holding `ATTACH` but not attached yet: attached outside
    /// shmkit (another program, an older build), or under a companion that was removed and
    /// made anew. Their locks could not be seen.
    fn check_attachments(&self, shm: &XsiSharedMemory) -> Result<()> {
        let mut unlocked = 0;
        for round in 0..UNLOCKED_ROUNDS {
            if round > 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            if ofd::conflicting(&self.object, ATTACH, LockKind::Exclusive)?.is_some() {
                return Ok(());
            }
            unlocked = stat(shm)?.attachments;
            if unlocked == 0 {
                return Ok(());
            }
        }
        Err(Error::InUse {
            what: describe(shm),
            reason: format!(
                "{unlocked} attachment(s) hold no lock on its companion lock file /dev/shm/{} \
                 (made outside shmkit, or under a companion that was removed and made anew), \
                 so the locks they hold cannot be seen",
                companion_name(shm.id())
            ),
        })
    }

    /// Removes the name once the segment is gone or marked for removal and no other
    /// description holds `ATTACH` (no mapping of ours is left), if the name is still this
    /// file. No opener can find a removed segment by its key any more; one that looked it
    /// up before opens the name and then locks `ATTACH`, and gives up when it finds the
    /// name gone after that.
    fn remove_if_last(&self) -> Result<()> {
        let removed = XsiSharedMemory::stat_id(self.id)?.is_none_or(|seg| seg.removed);
        if removed
            && ofd::conflicting(&self.object, ATTACH, LockKind::Exclusive)?.is_none()
            && still_named(&self.object)?
        {
            SharedMemoryObject::remove(self.object.name())?;
        }
        Ok(())
    }
}

impl Drop for Companion {
    fn drop(&mut self) {
        // Best effort: a drop cannot report, and a name left behind is replaced by the next
        // creator of a segment with this id.
        let _ = self.remove_if_last();
    }
}

impl XsiBacking {
    /// The XSI segment (its id and key).
    pub fn shm(&self) -> &XsiSharedMemory {
        &self.shm
    }
}

impl Backing for XsiBacking {
    type DefaultMode = ReadWrite;
    fn describe(&self) -> String {
        format!(
            "{} attached at {:p}",
            describe(&self.shm),
            self.region.as_ptr()
        )
    }
    fn cold(&self) -> bool {
        self.attachment.cold()
    }
    /// XSI memory has no copy-on-write mode: read-only mappings test owners through the
    /// companion, writable ones claim their id on it.
    fn owner(&self) -> Result<Arc<Owner>> {
        Owner::attached(self.companion.object.as_fd()).map(Arc::new)
    }
    fn alone<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        self.attachment.alone(&self.companion.object, f)
    }
}

/// A segment in System V shared memory. XSI memory has no copy-on-write attachment, so
/// this kind opens read-write or read-only only (`options().read_only().open(key)`).
pub type ManagedXsiSharedMemory<M = ReadWrite, I = HashIndex, A = Tlsf> =
    ManagedSegment<XsiBacking, M, I, A>;

/// Takes mode `M`'s locks on `companion` and attaches `shm`.
fn attach<M: Mode, I: IndexKind, A: MemoryAlgorithm>(
    shm: XsiSharedMemory,
    companion: Companion,
    created: bool,
    opts: &Settings,
) -> Result<ManagedSegment<XsiBacking, M, I, A>> {
    // Before attaching: a creator holds its locks before anyone can see the header.
    let attachment = Attachment::take::<M>(&companion.object).map_err(|e| match e {
        Error::InUse { reason, .. } => Error::InUse {
            what: describe(&shm),
            reason,
        },
        other => other,
    })?;
    if !still_named(&companion.object)? {
        return Err(Error::InUse {
            what: describe(&shm),
            reason: "its companion lock file was removed or replaced while this open took its \
                     locks"
                .into(),
        });
    }
    companion.check_attachments(&shm)?;
    let region = shm.attach(M::MAP)?;
    let base = NonNull::new(region.as_ptr()).ok_or_else(|| Error::InvalidAddress {
        addr: 0,
        reason: "the OS attached the segment at address 0".into(),
    })?;
    let len = region.len();
    // SAFETY: the attachment covers `len` bytes with the mode's protection and lives as long
    // as the backing; when `created`, nobody else uses it before the header says READY.
    unsafe {
        ManagedSegment::attach(
            XsiBacking {
                region,
                attachment,
                companion,
                shm,
            },
            base,
            len,
            created,
            opts.init_timeout,
        )
    }
}

/// Makes the companion of `shm`, which this call created, and attaches it; removes both
/// if that fails.
fn create_attached<I: IndexKind, A: MemoryAlgorithm>(
    shm: XsiSharedMemory,
    opts: &Settings,
) -> Result<ManagedSegment<XsiBacking, ReadWrite, I, A>> {
    let id = shm.id();
    // Best effort: the create failed already, that error is the one to report.
    let companion = Companion::create(&shm, opts.permissions).inspect_err(|_| {
        let _ = XsiSharedMemory::remove_id(id);
    })?;
    attach(shm, companion, true, opts).inspect_err(|_| {
        // The name is ours: made with `O_EXCL` above.
        let _ = ManagedXsiSharedMemory::remove_id(id);
    })
}

/// Opens the companion of `shm`, which another process created, and attaches it.
fn open_attached<M: Mode, I: IndexKind, A: MemoryAlgorithm>(
    shm: XsiSharedMemory,
    opts: &Settings,
) -> Result<ManagedSegment<XsiBacking, M, I, A>> {
    let access = match M::MAP {
        MapMode::ReadWrite => Access::ReadWrite,
        MapMode::ReadOnly | MapMode::CopyOnWrite => Access::ReadOnly,
    };
    let companion = Companion::open(&shm, access, opts.init_timeout)?;
    attach(shm, companion, false, opts)
}

impl<I: IndexKind, A: MemoryAlgorithm> SegmentBuilder<XsiBacking, ReadWrite, I, A> {
    /// Creates a new segment of `size` bytes under `key`; AlreadyExists if the key is taken.
    pub fn create(
        self,
        key: XsiKey,
        size: usize,
    ) -> Result<ManagedXsiSharedMemory<ReadWrite, I, A>> {
        check_size(size as u64)?;
        let shm = XsiSharedMemory::create(key, size, self.settings.permissions)?;
        create_attached(shm, &self.settings)
    }

    /// Opens the segment under `key`, or creates it with `size` bytes; one creator wins.
    pub fn open_or_create(
        self,
        key: XsiKey,
        size: usize,
    ) -> Result<ManagedXsiSharedMemory<ReadWrite, I, A>> {
        check_size(size as u64)?;
        match XsiSharedMemory::open_or_create(key, size, self.settings.permissions)? {
            (shm, true) => create_attached(shm, &self.settings),
            (shm, false) => open_attached(shm, &self.settings),
        }
    }
}

impl<M: Mode, I: IndexKind, A: MemoryAlgorithm> SegmentBuilder<XsiBacking, M, I, A> {
    /// Opens the segment under `key` in this builder's mode.
    pub fn open(self, key: XsiKey) -> Result<ManagedXsiSharedMemory<M, I, A>> {
        open_attached(XsiSharedMemory::open(key)?, &self.settings)
    }
}

/// The shorthands: the builder with its defaults.
impl ManagedXsiSharedMemory {
    /// Creates a new segment of `size` bytes under `key`; AlreadyExists if the key is taken.
    pub fn create(key: XsiKey, size: usize) -> Result<Self> {
        Self::options().create(key, size)
    }

    /// Opens the segment under `key` for reading and writing.
    pub fn open(key: XsiKey) -> Result<Self> {
        Self::options().open(key)
    }

    /// Opens the segment under `key`, or creates it with `size` bytes; one creator wins.
    pub fn open_or_create(key: XsiKey, size: usize) -> Result<Self> {
        Self::options().open_or_create(key, size)
    }

    /// Marks the segment under `key` for removal (it lives on until the last detach) and
    /// removes its companion lock file. Returns false if there is none.
    pub fn remove(key: XsiKey) -> Result<bool> {
        match XsiSharedMemory::open(key) {
            Ok(shm) => Self::remove_id(shm.id()),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Marks segment `id` for removal and removes its companion lock file: for segments no
    /// key names (a private key, or one already removed). Returns false if there is no
    /// segment `id`.
    pub fn remove_id(id: libc::c_int) -> Result<bool> {
        let removed = XsiSharedMemory::remove_id(id)?;
        SharedMemoryObject::remove(&companion_name(id))?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    //! A creator replaces a file left under its companion's name (by a removed segment whose
    //! id was reused) only when it is provably stale. Ids cannot be chosen, so the tests
    //! leave the file under the name of a segment they just created, before its creator
    //! makes the companion. (Openers' checks are in `tests/segment/lock_owners.rs`.)

    use super::*;

    const SIZE: usize = 64 * 1024;

    /// Removes segment `.0` and whatever is under its companion's name on drop.
    struct Remove(libc::c_int);

    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = ManagedXsiSharedMemory::remove_id(self.0);
        }
    }

    /// A new private segment, and a file under its companion's name as a removed segment
    /// with the same id would have left it.
    fn reused_id() -> (XsiSharedMemory, SharedMemoryObject, Remove) {
        let shm = XsiSharedMemory::create(XsiKey::private(), SIZE, Permissions::default()).unwrap();
        let remove = Remove(shm.id());
        let left = SharedMemoryObject::create(
            &companion_name(shm.id()),
            Access::ReadWrite,
            Permissions::default(),
        )
        .unwrap();
        (shm, left, remove)
    }

    #[test]
    #[cfg_attr(miri, ignore = "real shared memory")]
    fn a_stale_companion_of_the_owner_that_no_mapping_holds_is_replaced() {
        let (shm, left, _remove) = reused_id();
        let seg =
            create_attached::<HashIndex, crate::alloc::Tlsf>(shm, &Settings::default()).unwrap();
        assert!(still_named(&seg.backing().companion.object).unwrap());
        assert!(
            !still_named(&left).unwrap(),
            "the stale file is still there"
        );
        seg.allocate(64).unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore = "real shared memory")]
    fn a_companion_name_held_by_a_mapping_or_left_by_another_user_is_kept() {
        let (shm, left, _remove) = reused_id();
        let id = shm.id();
        assert!(ofd::try_lock(&left, ATTACH, LockKind::Shared).unwrap());
        let held = create_attached::<HashIndex, crate::alloc::Tlsf>(shm, &Settings::default());
        assert!(matches!(held, Err(Error::InUse { .. })), "{held:?}");
        assert!(still_named(&left).unwrap(), "a held file was replaced");
        assert_eq!(
            XsiSharedMemory::stat_id(id).unwrap(),
            None,
            "the failed create left its segment"
        );

        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: a file of another user needs root to make");
            return;
        }
        let (shm, left, _remove) = reused_id();
        const NOBODY: u32 = 65534;
        std::os::unix::fs::fchown(&left, Some(NOBODY), Some(NOBODY)).unwrap();
        let foreign = create_attached::<HashIndex, crate::alloc::Tlsf>(shm, &Settings::default());
        assert!(
            matches!(&foreign, Err(Error::Corrupted { reason, .. }) if reason.contains("uid 65534")),
            "{foreign:?}"
        );
        assert!(
            still_named(&left).unwrap(),
            "another user's file was replaced"
        );
    }
}
