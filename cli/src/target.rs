//! Which segment a command means, and how the inspector maps it: the header first, read
//! from the device without mapping it; then, where a command needs the contents, an
//! ordinary mapping chosen so that inspecting changes nothing (see [`open`]).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shmkit::inspect::{
    self, Attachments, BlockRun, CacheSlot, HeaderFigures, LockWord, ObjectReport,
    TypeSchemaReport, Usage,
};
use shmkit::segment::{Backing, Mode};
use shmkit::{
    Error, HashIndex, IndexKind, ManagedMappedFile, ManagedSegment, ManagedSharedMemory, NullIndex,
    OrderedIndex,
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
}

impl Target {
    /// `NAME` is a shared memory object; anything with a `/` is a path (one directly in
    /// `/dev/shm` is the shared memory object of that name).
    pub fn parse(arg: &str) -> Target {
        let p = Path::new(arg);
        if !arg.contains('/') {
            return Target::Shm(arg.to_string());
        }
        match (p.parent(), p.file_name()) {
            (Some(dir), Some(name)) if dir == Path::new(SHM_DIR) => {
                Target::Shm(name.to_string_lossy().into_owned())
            }
            _ => Target::File(p.to_path_buf()),
        }
    }

    /// The device's path.
    pub fn path(&self) -> PathBuf {
        match self {
            Target::Shm(name) => Path::new(SHM_DIR).join(name),
            Target::File(p) => p.clone(),
        }
    }

    /// `shm` or `file`.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Shm(_) => "shm",
            Target::File(_) => "file",
        }
    }

    /// How the user named it.
    pub fn display(&self) -> String {
        match self {
            Target::Shm(name) => name.clone(),
            Target::File(p) => p.display().to_string(),
        }
    }
}

/// A segment's device, opened for reading, and what its header says.
pub struct Probed {
    pub target: Target,
    pub file: File,
    pub header: HeaderFigures,
}

/// Opens `target`'s device read-only and reads its header (no mapping).
pub fn probe(target: &Target) -> Result<Probed, Failure> {
    let path = target.path();
    let file = File::open(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Failure::usage(format!(
            "{}: no such segment ({} does not exist)",
            target.display(),
            path.display()
        )),
        std::io::ErrorKind::PermissionDenied => Failure::usage(format!(
            "{}: permission denied (cannot read {})",
            target.display(),
            path.display()
        )),
        _ => Failure::usage(format!("{}: {e}", target.display())),
    })?;
    if !file.metadata().map(|m| m.is_file()).unwrap_or(false) {
        return Err(Failure::usage(format!(
            "{}: not a shmkit segment (not a regular file)",
            target.display()
        )));
    }
    let header = inspect::read_header(&file, &target.display()).map_err(Failure::segment)?;
    Ok(Probed {
        target: target.clone(),
        file,
        header,
    })
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
    fn objects(&self) -> shmkit::Result<Vec<ObjectReport>>;
    fn type_schemas(&self) -> shmkit::Result<Vec<TypeSchemaReport>>;
    fn check(&self) -> shmkit::Result<()>;
    /// `read-write` or `read-only`.
    fn mode(&self) -> &'static str;
}

impl<B: Backing, M: Mode, I: IndexKind> View for ManagedSegment<B, M, I> {
    fn usage(&self) -> shmkit::Result<Usage> {
        inspect::usage(self)
    }
    fn blocks(&self) -> shmkit::Result<Vec<BlockRun>> {
        inspect::block_map(self)
    }
    fn cache_slots(&self) -> shmkit::Result<Vec<CacheSlot>> {
        inspect::cache_slots(self)
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
///   read is mapped so too; a live writer then makes it a clear `InUse` message.
pub fn open(p: &Probed) -> Result<Box<dyn View>, Failure> {
    if let Some(why) = p.unreadable() {
        return Err(Failure::segment_text(format!(
            "{}: not read: {why}",
            p.target.display()
        )));
    }
    wait_for_locks(p)?;
    let live_writer = p.attachments()?.owners.iter().any(|o| o.vouched);
    let writable = rustix::fs::access(p.target.path(), rustix::fs::Access::WRITE_OK).is_ok();
    let read_write = live_writer && writable;
    let opened = match p.header.index_kind {
        HashIndex::KIND => open_as::<HashIndex>(&p.target, read_write),
        OrderedIndex::KIND => open_as::<OrderedIndex>(&p.target, read_write),
        NullIndex::KIND => open_as::<NullIndex>(&p.target, read_write),
        _ => {
            return Err(Failure::segment_text(format!(
                "{}: unknown index kind {}",
                p.target.display(),
                p.header.index_name
            )))
        }
    };
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
        let h = inspect::read_header(&p.file, &p.target.display()).map_err(Failure::segment)?;
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

fn open_as<I: IndexKind + 'static>(t: &Target, read_write: bool) -> shmkit::Result<Box<dyn View>> {
    Ok(match (t, read_write) {
        (Target::Shm(name), true) => Box::new(
            ManagedSharedMemory::options()
                .index::<I>()
                .open(name.as_str())?,
        ),
        (Target::Shm(name), false) => Box::new(
            ManagedSharedMemory::options()
                .index::<I>()
                .read_only()
                .open(name.as_str())?,
        ),
        (Target::File(path), true) => {
            Box::new(ManagedMappedFile::options().index::<I>().open(path)?)
        }
        (Target::File(path), false) => Box::new(
            ManagedMappedFile::options()
                .index::<I>()
                .read_only()
                .open(path)?,
        ),
    })
}
