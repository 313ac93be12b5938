//! A configuration shared by processes behind a `RwLock` (Boost's sharable and upgradable
//! mutexes): reader processes read it together while the parent updates it, an update is
//! decided under an upgradable read and made without another writer in between, and a
//! reader process killed while it holds its read lock keeps no writer out.
//!
//! Run: `cargo run --example rwlock`

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shmkit::sync::{RwLock, RwLockUpgradableReadGuard};
use shmkit::{ManagedSharedMemory, ShmSafe};

/// The shared configuration: every limit is `10 * version` once an update is complete.
#[derive(ShmSafe, Clone, Copy)]
#[repr(C)]
pub struct Config {
    /// Moves on with every update.
    pub version: u64,
    /// Written one by one by an update: a reader that got in meanwhile would see a mix.
    pub limits: [u64; 4],
}

impl Config {
    fn consistent(&self) -> bool {
        self.limits.iter().all(|&l| l == 10 * self.version)
    }
}

type Res = Result<(), Box<dyn std::error::Error>>;

fn main() -> Res {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1..) {
        Some([role, name]) if role == "reader" => reader(name, false),
        Some([role, name]) if role == "hold" => reader(name, true),
        _ => parent(),
    }
}

fn parent() -> Res {
    let name = format!("shmkit_rwlock_example_{}", std::process::id());
    let _remove = RemoveOnDrop(name.clone());
    let segment = ManagedSharedMemory::create(&name, 1 << 20)?;
    let config = segment.construct(
        "config",
        RwLock::new(Config {
            version: 1,
            limits: [10; 4],
        }),
    )?;

    let readers: Vec<Child> = (0..3)
        .map(|_| spawn("reader", &name))
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let (mut looks, mut updates) = (0u64, 0u64);
    while started.elapsed() < Duration::from_millis(300) {
        looks += 1;
        updates += u64::from(update(config, looks % 3 == 0)?);
    }
    for mut r in readers {
        let out = BufReader::new(r.stdout.take().ok_or("no stdout")?);
        for line in out.lines() {
            println!("{}", line?);
        }
        if !r.wait()?.success() {
            return Err("a reader failed".into());
        }
    }
    println!(
        "parent: {updates} updates in {looks} looks, now at version {}",
        snapshot(config)?.version
    );

    // A reader that dies holding its read lock (SIGKILL: no destructor runs).
    let mut holder = spawn("hold", &name)?;
    let mut line = String::new();
    BufReader::new(holder.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    print!("parent: the holder says {line}");
    holder.kill()?;
    holder.wait()?;
    let killed = Instant::now();
    let version = bump(config)?;
    println!(
        "parent: wrote version {version} {:?} after the reader was killed (its slot cleared)",
        killed.elapsed()
    );
    Ok(())
}

/// Looks at the configuration under an upgradable read (readers keep reading) and, on
/// odd versions or when `force`d, upgrades and moves it on: no other writer can change it
/// between the look and the update.
fn update(config: &RwLock<Config>, force: bool) -> shmkit::Result<bool> {
    let current = config.upgradable_read()?;
    if current.version % 2 == 0 && !force {
        return Ok(false);
    }
    let mut next = RwLockUpgradableReadGuard::upgrade(current)?;
    next.version += 1;
    let limit = 10 * next.version;
    for l in next.limits.iter_mut() {
        *l = limit;
        std::hint::spin_loop(); // a reader in here would see it half done
    }
    Ok(true)
}

/// The configuration as one read lock saw it.
fn snapshot(config: &RwLock<Config>) -> shmkit::Result<Config> {
    Ok(*config.read()?)
}

/// Moves the version on under the write lock (not poisoned: a dead reader changes
/// nothing), returning it.
fn bump(config: &RwLock<Config>) -> shmkit::Result<u64> {
    let mut g = config.write()?;
    g.version += 1;
    Ok(g.version)
}

/// Takes a read lock, says so, and keeps it until killed.
fn hold(config: &RwLock<Config>) -> shmkit::Result<()> {
    let g = config.read()?;
    println!("it reads version {}", g.version);
    std::thread::sleep(Duration::from_secs(60));
    Ok(())
}

fn spawn(role: &str, name: &str) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .args([role, name])
        .stdout(Stdio::piped())
        .spawn()
}

/// Reads the configuration for a while, checking each reading; or (`hold`) takes a read
/// lock, says so and waits to be killed.
fn reader(name: &str, hold: bool) -> Res {
    let segment = ManagedSharedMemory::open(name)?;
    let config = segment
        .find::<RwLock<Config>>("config")?
        .ok_or("no config")?;
    if hold {
        return Ok(self::hold(config)?);
    }
    let (mut reads, mut versions) = (0u64, std::collections::BTreeSet::new());
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(250) {
        let c = snapshot(config)?;
        if !c.consistent() {
            return Err(format!("torn configuration at version {}", c.version).into());
        }
        versions.insert(c.version);
        reads += 1;
    }
    println!(
        "reader {}: {reads} readings, {} versions seen, none torn",
        std::process::id(),
        versions.len()
    );
    Ok(())
}

/// Removes the segment when the parent ends.
struct RemoveOnDrop(String);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = ManagedSharedMemory::remove(&self.0);
    }
}
