//! Which segment a command means, and how the inspector maps it: the header first, read
//! from the device without mapping it; then, where a command needs the contents, an
//! ordinary mapping chosen so that inspecting changes nothing (see [`open`]).

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shmkit::algorithm::{MemoryAlgorithm, SeqFit, Tlsf};
use shmkit::inspect::{
    self, Attachments, BlockRun, CacheSlot, HeaderFigures, IndexLoad, LockWord, ObjectReport,
    TypeSchemaReport, Usage, XsiListed,
};
use shmkit::os::XsiKey;
use shmkit::segment::{Backing, Mode};
use shmkit::{
    Error, HashIndex, IndexKind, ManagedMappedFile, ManagedSegment, ManagedSharedMemory,
    ManagedXsiSharedMemory, NullIndex, OrderedIndex,
};

use crate::Failure;

/// How long to wait for a lock held by a live owner (`--wait`).
pub static WAIT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

/// Where POSIX shared memory objects live.
pub const SHM_DIR: &str = "/dev/shm";

/// A segment named on the command line.
#[derive(Clone, Debug)]
pub enum Target {
    /// A POSIX shared memory object (a name without `/`, or a path in `/dev/shm`).
    Shm(String),
    /// A mapped file (any other path).
    File(PathBuf),
    /// A System V (XSI) shared memory segment, by its key (`xsi:0x1234abcd`).
    Xsi(i32),
}

/// How XSI segments are named: `xsi:` and the key, as `ipcs` shows it.
const XSI_PREFIX: &str = "xsi:";

impl Target {
    /// `xsi:KEY` is an XSI segment (KEY in hex with `0x`, or decimal); `NAME` is a shared
    /// memory object; anything with a `/` is a path (one directly in `/dev/shm` is the
    /// shared memory object of that name).
    pub fn parse(arg: &str) -> Result<Target, Failure> {
        if let Some(key) = arg.strip_prefix(XSI_PREFIX) {
            let parsed = match key.strip_prefix("0x").or_else(|| key.strip_prefix("0X")) {
                Some(hex) => u32::from_str_radix(hex, 16).ok().map(|k| k as i32),
                None => key.parse::<i32>().ok(),
            };
            return match parsed {
                // The private key names no segment: its segments are reached by id only.
                Some(0) | None => Err(Failure::usage(format!(
                    "{arg}: not an XSI key (`xsi:0x` and up to 8 hex digits, or `xsi:` and a \
                     decimal key; not 0, the private key)"
                ))),
                Some(k) => Ok(Target::Xsi(k)),
            };
        }
        let p = Path::new(arg);
        if !arg.contains('/') {
            return Ok(Target::Shm(arg.to_string()));
        }
        Ok(match (p.parent(), p.file_name()) {
            (Some(dir), Some(name)) if dir == Path::new(SHM_DIR) => {
                Target::Shm(name.to_string_lossy().into_owned())
            }
            _ => Target::File(p.to_path_buf()),
        })
    }

    /// `shm`, `file` or `xsi`.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Shm(_) => "shm",
            Target::File(_) => "file",
            Target::Xsi(_) => "xsi",
        }
    }

    /// How the user named it (an XSI key as `ls` lists it).
    pub fn display(&self) -> String {
        match self {
            Target::Shm(name) => name.clone(),
            Target::File(p) => p.display().to_string(),
            Target::Xsi(key) => format!("{XSI_PREFIX}{:#010x}", *key as u32),
        }
    }
}

/// A segment's device, opened for reading, and what its header says.
pub struct Probed {
    pub target: Target,
    /// The device that holds the mappings' attachment and owner locks: the shared memory
    /// object or file itself, an XSI segment's companion lock file.
    pub device: PathBuf,
    pub file: File,
    pub header: HeaderFigures,
    /// The kernel's entry of an XSI segment.
    pub xsi: Option<XsiListed>,
}

/// Opens `target`'s device read-only and reads its header (no mapping; an XSI segment is
/// attached read-only just for the copy, see `inspect::read_xsi_header`).
pub fn probe(target: &Target) -> Result<Probed, Failure> {
    let (device, xsi) = match target {
        Target::Shm(name) => (Path::new(SHM_DIR).join(name), None),
        Target::File(p) => (p.clone(), None),
        Target::Xsi(key) => {
            let seg = inspect::xsi_listed()
                .map_err(Failure::runtime)?
                .into_iter()
                .find(|s| s.key == *key)
                .ok_or_else(|| {
                    Failure::usage(format!(
                        "{}: no such segment (no XSI shared memory segment has that key)",
                        target.display()
                    ))
                })?;
            (inspect::xsi_companion(seg.id), Some(seg))
        }
    };
    let not_regular = || {
        Failure::usage(format!(
            "{}: not a shmkit segment (not a regular file)",
            target.display()
        ))
    };
    // Only regular files are opened: opening a device can act (a watchdog arms, a tape
    // rewinds, a terminal becomes the controlling one), and a FIFO blocks until a writer
    // comes. Looked at first; then opened non-blocking and without taking a terminal, in
    // case the path was replaced in between, and looked at again below.
    if std::fs::metadata(&device).is_ok_and(|m| !m.is_file()) {
        return Err(not_regular());
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY).bits() as i32)
        .open(&device)
        .map_err(|e| match e.kind() {
            // Every shmkit XSI segment has one: its creator makes it before attaching.
            std::io::ErrorKind::NotFound if xsi.is_some() => Failure::segment_text(format!(
                "{}: not a shmkit segment (it has no companion lock file {})",
                target.display(),
                device.display()
            )),
            std::io::ErrorKind::NotFound => Failure::usage(format!(
                "{}: no such segment ({} does not exist)",
                target.display(),
                device.display()
            )),
            std::io::ErrorKind::PermissionDenied => Failure::usage(format!(
                "{}: permission denied (cannot read {})",
                target.display(),
                device.display()
            )),
            _ => Failure::usage(format!("{}: {e}", target.display())),
        })?;
    if !file.metadata().map(|m| m.is_file()).unwrap_or(false) {
        return Err(not_regular());
    }
    let header = read_header(target, &file, xsi.as_ref())?;
    Ok(Probed {
        target: target.clone(),
        device,
        file,
        header,
        xsi,
    })
}

/// Reads the header of `target`, whose device is `file` (an XSI segment's is its
/// companion; its header is in the segment `xsi`).
fn read_header(
    target: &Target,
    file: &File,
    xsi: Option<&XsiListed>,
) -> Result<HeaderFigures, Failure> {
    let what = target.display();
    match xsi {
        Some(seg) => inspect::read_xsi_header(seg, file, &what).map_err(Failure::from_open),
        None => inspect::read_header(file, &what).map_err(Failure::segment),
    }
}

/// A lock owner id and whether it lives.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Owner {
    pub id: u32,
    pub alive: bool,
}

impl Probed {
    /// Whether lock owner `id` lives (the kernel's answer; an error reads as alive, the
    /// safe side for everything the inspector decides from it).
    pub fn alive(&self, id: u32) -> bool {
        inspect::owner_alive(&self.file, id).unwrap_or(true)
    }

    pub fn owner(&self, id: u32) -> Owner {
        Owner {
            id,
            alive: self.alive(id),
        }
    }

    pub fn attachments(&self) -> Result<Attachments, Failure> {
        inspect::attachments(&self.file).map_err(Failure::runtime)
    }

    /// Why the segment's contents must not be read now, if they must not: the header is
    /// not one this build reads, or an internal lock is held by a dead owner (mapping it
    /// would take the lock over and repair, which changes the segment: the next program
    /// that uses it does that).
    pub fn unreadable(&self) -> Option<String> {
        let h = &self.header;
        if !h.supported {
            return Some(format!(
                "format version {} (this shmkit reads version {})",
                h.version,
                inspect::FORMAT_VERSION
            ));
        }
        if h.foreign_endian {
            return Some("written on a machine of the other endianness".into());
        }
        if h.pointer_width != usize::BITS {
            return Some(format!("written by a {}-bit process", h.pointer_width));
        }
        if h.state != "ready" {
            return Some(format!("the segment's state is {}", h.state));
        }
        for (name, word) in [
            ("segment lock", h.segment_lock),
            ("index lock", h.index_lock),
        ] {
            match word {
                LockWord::Held(id) if !self.alive(id) => {
                    return Some(format!(
                        "the {name} is held by owner {id}, which is dead (a process died \
                         holding it); the next program that opens the segment takes it over \
                         and repairs, which the inspector does not do"
                    ))
                }
                LockWord::Poisoned => {
                    return Some(format!(
                        "the {name} is poisoned: a recovery found damage it could not repair"
                    ))
                }
                _ => {}
            }
        }
        None
    }
}

/// What the inspector reads from a mapped segment, whatever its backing, mode and index.
pub trait View {
    fn usage(&self) -> shmkit::Result<Usage>;
    fn blocks(&self) -> shmkit::Result<Vec<BlockRun>>;
    fn cache_slots(&self) -> shmkit::Result<Vec<CacheSlot>>;
    fn index_load(&self) -> shmkit::Result<IndexLoad>;
    fn objects(&self) -> shmkit::Result<Vec<ObjectReport>>;
    fn type_schemas(&self) -> shmkit::Result<Vec<TypeSchemaReport>>;
    fn check(&self) -> shmkit::Result<()>;
    /// `read-write` or `read-only`.
    fn mode(&self) -> &'static str;
}

impl<B: Backing, M: Mode, I: IndexKind, A: MemoryAlgorithm> View for ManagedSegment<B, M, I, A> {
    fn usage(&self) -> shmkit::Result<Usage> {
        inspect::usage(self)
    }
    fn blocks(&self) -> shmkit::Result<Vec<BlockRun>> {
        inspect::block_map(self)
    }
    fn cache_slots(&self) -> shmkit::Result<Vec<CacheSlot>> {
        inspect::cache_slots(self)
    }
    fn index_load(&self) -> shmkit::Result<IndexLoad> {
        inspect::index_load(self)
    }
    fn objects(&self) -> shmkit::Result<Vec<ObjectReport>> {
        inspect::objects(self)
    }
    fn type_schemas(&self) -> shmkit::Result<Vec<TypeSchemaReport>> {
        inspect::type_schemas(self)
    }
    fn check(&self) -> shmkit::Result<()> {
        inspect::check(self)
    }
    fn mode(&self) -> &'static str {
        match M::MAP {
            shmkit::os::MapMode::ReadOnly => "read-only",
            _ => "read-write",
        }
    }
}

/// Maps the probed segment so that reading it changes nothing:
/// - while a read-write mapping that trusts the segment is attached (a live writer), as
///   an ordinary shared read-write mapping: its open is warm (no validation that would
///   redraw the segment's trust epoch), and every report takes the segment's locks
///   briefly, as any participant does, so it never reads bytes a writer is changing;
/// - otherwise read-only: it validates what it reads and writes nothing, and writers are
///   kept out (`InUse` for them) only while the command runs. A device this user may only
///   read is mapped so too (as is one whose read-write open is refused all the same); a
///   live writer then makes it a clear `InUse` message.
pub fn open(p: &Probed) -> Result<Box<dyn View>, Failure> {
    if let Some(why) = p.unreadable() {
        return Err(Failure::segment_text(format!(
            "{}: not read: {why}",
            p.target.display()
        )));
    }
    wait_for_locks(p)?;
    let live_writer = p.attachments()?.owners.iter().any(|o| o.vouched);
    // As the effective user (who opens it); an XSI segment's companion is made with the
    // segment's permissions.
    let writable = rustix::fs::accessat(
        rustix::fs::CWD,
        &p.device,
        rustix::fs::Access::WRITE_OK,
        rustix::fs::AtFlags::EACCESS,
    )
    .is_ok();
    let open_with = match p.header.algorithm_kind {
        Tlsf::KIND => opener::<Tlsf>(p.header.index_kind),
        SeqFit::KIND => opener::<SeqFit>(p.header.index_kind),
        _ => {
            return Err(Failure::segment_text(format!(
                "{}: made with {}, which this inspector does not know (only its header \
                 can be read: `shmkit stat`)",
                p.target.display(),
                p.header.algorithm_name
            )))
        }
    };
    let Some(open_with) = open_with else {
        return Err(Failure::segment_text(format!(
            "{}: unknown index kind {}",
            p.target.display(),
            p.header.index_name
        )));
    };
    let mut read_write = live_writer && writable;
    let mut opened = open_with(&p.target, read_write);
    // Refused all the same (an ACL, a read-only mount, a segment's own permissions): read.
    if read_write && matches!(opened, Err(Error::PermissionDenied { .. })) {
        read_write = false;
        opened = open_with(&p.target, false);
    }
    opened.map_err(|e| match e {
        Error::InUse { .. } if !read_write => Failure::usage(format!(
            "{}: cannot be inspected now: {e} (without write permission, or with no \
             trusted writer attached, the inspector maps it read-only, which needs no \
             writer attached)",
            p.target.display()
        )),
        e => Failure::from_open(e),
    })
}

/// Waits (up to `--wait`) while a live owner holds the segment lock or the index lock, so
/// that the reports, which take them, take them briefly; a holder that keeps them longer
/// is a clear message instead of a hang.
fn wait_for_locks(p: &Probed) -> Result<(), Failure> {
    let wait = WAIT.get().copied().unwrap_or(Duration::from_secs(5));
    let start = Instant::now();
    loop {
        let h = read_header(&p.target, &p.file, p.xsi.as_ref())?;
        let held = [
            ("segment lock", h.segment_lock),
            ("index lock", h.index_lock),
        ]
        .into_iter()
        .find_map(|(name, w)| w.holder().map(|id| (name, id)));
        let Some((name, id)) = held else {
            return Ok(());
        };
        if start.elapsed() >= wait {
            return Err(Failure::usage(format!(
                "{}: the {name} has been held by owner {id} ({}) for more than {:.1} s; \
                 try again later (or with a longer --wait)",
                p.target.display(),
                if p.alive(id) { "alive" } else { "dead" },
                wait.as_secs_f64()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How a segment of algorithm `A` and index kind `index_kind` is opened; None for an index
/// kind this build does not know.
type Opener = fn(&Target, bool) -> shmkit::Result<Box<dyn View>>;

fn opener<A: MemoryAlgorithm>(index_kind: u32) -> Option<Opener> {
    match index_kind {
        HashIndex::KIND => Some(open_as::<HashIndex, A>),
        OrderedIndex::KIND => Some(open_as::<OrderedIndex, A>),
        NullIndex::KIND => Some(open_as::<NullIndex, A>),
        _ => None,
    }
}

fn open_as<I: IndexKind + 'static, A: MemoryAlgorithm>(
    t: &Target,
    read_write: bool,
) -> shmkit::Result<Box<dyn View>> {
    Ok(match (t, read_write) {
        (Target::Shm(name), true) => Box::new(
            ManagedSharedMemory::options()
                .index::<I>()
                .algorithm::<A>()
                .open(name.as_str())?,
        ),
        (Target::Shm(name), false) => Box::new(
            ManagedSharedMemory::options()
                .index::<I>()
                .algorithm::<A>()
                .read_only()
                .open(name.as_str())?,
        ),
        (Target::File(path), true) => Box::new(
            ManagedMappedFile::options()
                .index::<I>()
                .algorithm::<A>()
                .open(path)?,
        ),
        (Target::File(path), false) => Box::new(
            ManagedMappedFile::options()
                .index::<I>()
                .algorithm::<A>()
                .read_only()
                .open(path)?,
        ),
        (Target::Xsi(key), true) => Box::new(
            ManagedXsiSharedMemory::options()
                .index::<I>()
                .algorithm::<A>()
                .open(XsiKey::from_raw(*key))?,
        ),
        (Target::Xsi(key), false) => Box::new(
            ManagedXsiSharedMemory::options()
                .index::<I>()
                .algorithm::<A>()
                .read_only()
                .open(XsiKey::from_raw(*key))?,
        ),
    })
}
