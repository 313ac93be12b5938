//! Watching a live segment: one process keeps writing, another watches it through an
//! ordinary shared mapping, reading through atomics and the segment's own locking. A
//! read-only mapping cannot take the segment's locks, so it is refused (`InUse`) while
//! anyone maps the segment read-write.
//!
//! The writer (this program started again as a child) moves a position along the line
//! y = 2x, published seqlock-style with atomics (until shmkit has a `SeqLock` of its
//! own), and logs some positions as named objects, each built in full before its name can
//! be found and never changed afterwards. The watcher checks every reading.
//!
//! Run: `cargo run --example watch`

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmkit::{shm_segment, Error, ManagedMappedFile, ShmSafe};

/// The part that changes while shared: atomics only.
#[shm_segment]
#[derive(Default)]
pub struct Live {
    /// Odd while the writer moves the position.
    pub seq: AtomicU64,
    /// The position: a reading between two looks at an even, unchanged `seq` has
    /// `y == 2 * x`.
    pub x: AtomicU64,
    /// Twice `x`.
    pub y: AtomicU64,
    /// Log entries `log_0 .. log_<logged>` exist.
    pub logged: AtomicU64,
}

/// A logged position: written once, before its name can be found.
#[derive(ShmSafe)]
#[repr(C)]
pub struct Entry {
    /// Where the writer was.
    pub x: u64,
    /// Twice `x`.
    pub y: u64,
}

impl Live {
    /// The writer's side of the seqlock (one writer only).
    fn move_to(&self, x: u64) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq + 1, Ordering::Relaxed);
        fence(Ordering::Release); // a watcher that sees the new values sees `seq` odd
        self.x.store(x, Ordering::Relaxed);
        self.y.store(2 * x, Ordering::Relaxed);
        self.seq.store(seq + 2, Ordering::Release);
    }

    /// The watcher's side: the position as of one `move_to`, or None while one is under
    /// way (try again).
    fn position(&self) -> Option<(u64, u64)> {
        let seq = self.seq.load(Ordering::Acquire);
        let (x, y) = (
            self.x.load(Ordering::Relaxed),
            self.y.load(Ordering::Relaxed),
        );
        fence(Ordering::Acquire); // the values are read before `seq` is looked at again
        (seq % 2 == 0 && self.seq.load(Ordering::Relaxed) == seq).then_some((x, y))
    }
}

type Res = Result<(), Box<dyn std::error::Error>>;

fn main() -> Res {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1..) {
        Some([role, path]) if role == "writer" => writer(Path::new(path)),
        _ => watcher(),
    }
}

fn watcher() -> Res {
    let path = std::env::temp_dir().join(format!("shmkit_watch_{}.seg", std::process::id()));
    let _cleanup = RemoveOnDrop(path.clone());
    // An ordinary shared read-write mapping: the way to watch.
    let segment = ManagedMappedFile::create(&path, 4 << 20)?;
    let live = segment.root::<Live>()?;
    match ManagedMappedFile::options().read_only().open(&path) {
        Err(e @ Error::InUse { .. }) => println!("watcher: a read-only open is refused: {e}"),
        Err(e) => return Err(e.into()),
        Ok(_) => return Err("a read-only open succeeded beside a read-write mapping".into()),
    }
    let mut writer = Command::new(std::env::current_exe()?)
        .arg("writer")
        .arg(&path)
        .stdin(Stdio::piped())
        .spawn()?;

    let (mut positions, mut busy, mut entries) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(1) {
        match live.position() {
            Some((x, y)) if y == 2 * x => positions += 1,
            Some((x, y)) => return Err(format!("torn position ({x}, {y})").into()),
            None => busy += 1,
        }
        // Every entry below `logged` was built in full before `logged` counted it.
        let logged = live.logged.load(Ordering::Acquire);
        if logged > 0 {
            let name = format!("log_{}", logged - 1);
            let entry = segment
                .find::<Entry>(name.as_str())?
                .ok_or("a logged entry is missing")?;
            if entry.y != 2 * entry.x {
                return Err(format!("torn entry {name}").into());
            }
            entries += 1;
        }
    }
    // A consistent listing, taken under the segment's index lock.
    let listed = segment
        .named_objects()?
        .filter(|o| o.name.starts_with("log_"))
        .count();
    drop(writer.stdin.take()); // the writer stops when its stdin closes
    let status = writer.wait()?;
    println!(
        "watcher: {positions} positions (and {busy} retries mid-move) and {entries} entries \
         read, none torn; {listed} entries listed; the writer exited with {status}"
    );
    Ok(())
}

fn writer(path: &Path) -> Res {
    let segment = ManagedMappedFile::open(path)?;
    let live = segment.root::<Live>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    std::thread::spawn(move || {
        let _ = std::io::stdin().read(&mut [0u8; 1]); // the watcher closed our stdin
        flag.store(true, Ordering::Relaxed);
    });
    let mut x = 0;
    while !stop.load(Ordering::Relaxed) {
        x += 1;
        live.move_to(x);
        // Nothing is destroyed while others map the segment: log while there is room.
        if x % 256 == 0 && segment.free_memory() > 64 << 10 {
            let n = live.logged.load(Ordering::Relaxed);
            segment.construct(format!("log_{n}").as_str(), Entry { x, y: 2 * x })?;
            live.logged.store(n + 1, Ordering::Release);
        }
    }
    let logged = live.logged.load(Ordering::Relaxed);
    println!("writer:  moved {x} times, logged {logged} entries");
    Ok(())
}

/// Removes the segment file when the watcher ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
