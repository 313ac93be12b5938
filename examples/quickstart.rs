//! The README's main example: one process builds data in POSIX shared memory alone (an
//! exclusive mapping), shares it, starts itself again as three child processes at once, and
//! each child opens the segment by name, reads the data back and records its visit in the
//! segment's root under a process-shared `Mutex`.
//!
//! The data is a map from sensor names to their readings, `BTreeMap<String, Vec<f64>>` in
//! the root's declaration: `#[shm_segment]` makes it the segment's own `Map`, `String` and
//! `Vec`, which allocate from the segment and hold offset pointers, so each child maps the
//! segment at another address and still reads them. The parent fills it while the mapping
//! is exclusive (`&mut` through `root_mut`); once shared, everyone gets `&`, and what
//! changes while shared changes through locks (or atomics), as with `Arc<Mutex<T>>`
//! between threads: the root's `Mutex<Tally>`. The segment is removed when the parent
//! ends, also on Ctrl-C.
//!
//! Run: `cargo run --example quickstart`

use std::process::Command;

use shmkit::prelude::*;
use shmkit::sync::Mutex;
use shmkit::{shm_segment, ManagedSharedMemory, ShmSafe};

const READINGS: [(&str, f64); 6] = [
    ("roof", 21.5),
    ("cellar", 12.25),
    ("roof", 23.0),
    ("garden", 18.75),
    ("cellar", 12.5),
    ("roof", 22.0),
];
const CHILDREN: u32 = 3;

/// What the children record, together: changed only under the lock.
#[derive(ShmSafe, Default, Debug)]
#[repr(C)]
struct Tally {
    visits: u32,
    readings_seen: u32,
    last_mean: f64,
}

/// The segment's root: found (or built with `Default`) by type, layout checked.
#[shm_segment]
#[derive(Default)]
struct Station {
    /// Readings by sensor, written while the parent maps the segment alone.
    readings: BTreeMap<String, Vec<f64>>,
    tally: Mutex<Tally>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: std::vec::Vec<std::string::String> = std::env::args().collect();
    match args.get(1).map(std::string::String::as_str) {
        Some("child") => child(args.get(2)),
        _ => parent(),
    }
}

fn parent() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("shmkit_quickstart_{}", std::process::id());
    let _cleanup = remove_on_exit(&name);
    // Exclusive while it builds: nobody else can map the segment meanwhile.
    let mut segment = ManagedSharedMemory::options()
        .exclusive()
        .create(&name, 1 << 20)?;
    println!(
        "parent: created segment {name:?} ({} bytes) at {:p}",
        segment.size(),
        segment.base_address()
    );
    {
        let mut station = segment.root_mut::<Station>()?;
        let mut readings = station.readings_mut();
        for (sensor, celsius) in READINGS {
            // The key is built in the segment from the `&str`, the row in place.
            readings.entry(sensor)?.or_default()?.push(celsius)?;
        }
        println!(
            "parent: wrote {} readings of {} sensors",
            READINGS.len(),
            readings.len()
        );
    }
    // Shared from now on, without unmapping: every mapping gets `&T`, and what changes
    // while shared changes through locks (or atomics) inside the data.
    let segment = segment.into_shared()?;

    let children = (0..CHILDREN)
        .map(|_| {
            Command::new(std::env::current_exe()?)
                .args(["child", &name])
                .spawn()
        })
        .collect::<Result<std::vec::Vec<_>, _>>()?;
    for mut child in children {
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("a child failed: {status}").into());
        }
    }
    let visits = report(&segment)?;
    if visits != CHILDREN {
        return Err("a visit went missing".into());
    }
    Ok(())
}

/// Prints what the children recorded; the number of visits.
fn report(segment: &ManagedSharedMemory) -> shmkit::Result<u32> {
    let tally = segment.root::<Station>()?.tally.lock()?;
    println!("parent: the children recorded {tally:?}");
    Ok(tally.visits)
}

fn child(name: Option<&std::string::String>) -> Result<(), Box<dyn std::error::Error>> {
    let Some(name) = name else {
        return Err("usage: quickstart child <segment name>".into());
    };
    // A shared read-write mapping: a read-only one is refused (`InUse`) while the parent
    // maps the segment read-write, since it could not take the segment's locks.
    let segment = ManagedSharedMemory::open(name)?;
    let me = std::process::id();
    println!(
        "child {me}: opened {name:?} at {:p}",
        segment.base_address()
    );
    let station = segment.root::<Station>()?;
    let (mut total, mut count) = (0.0, 0u32);
    for (sensor, celsius) in station.readings.iter() {
        println!("child {me}: {sensor} reads {celsius:?} °C");
        total += celsius.iter().sum::<f64>();
        count += celsius.len() as u32;
    }
    if count as usize != READINGS.len() || station.readings["roof"] != [21.5, 23.0, 22.0] {
        return Err("the readings are not what the parent wrote".into());
    }
    println!(
        "child {me}: mean {:.2} °C; allocator consistent: {}",
        total / f64::from(count),
        segment.check_sanity()
    );
    record(&segment, count, total / f64::from(count))?;
    Ok(())
}

/// Records a visit. Several children do at once: the lock serialises their updates,
/// wherever each maps the segment; a child killed while holding it would leave it
/// poisoned (the next `lock()` says so), never stuck.
fn record(segment: &ManagedSharedMemory, count: u32, mean: f64) -> shmkit::Result<()> {
    let mut tally = segment.root::<Station>()?.tally.lock()?;
    tally.visits += 1;
    tally.readings_seen += count;
    tally.last_mean = mean;
    Ok(())
}

/// Removes the segment when dropped, and on SIGINT/SIGTERM (where drop does not run).
fn remove_on_exit(name: &str) -> impl Drop {
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            match ManagedSharedMemory::remove(&self.0) {
                Ok(_) => println!("parent: removed segment {:?}", self.0),
                Err(e) => eprintln!("parent: could not remove {:?}: {e}", self.0),
            }
        }
    }
    signals::remove_on_signal(name);
    Remove(name.to_owned())
}

mod signals {
    use std::ffi::CString;
    use std::sync::OnceLock;

    static NAME: OnceLock<CString> = OnceLock::new();

    extern "C" fn on_signal(sig: libc::c_int) {
        if let Some(name) = NAME.get() {
            // SAFETY: shm_unlink and _exit are async-signal-safe; `name` is a valid C string
            // that lives for the whole program.
            unsafe { libc::shm_unlink(name.as_ptr()) };
        }
        // SAFETY: as above.
        unsafe { libc::_exit(128 + sig) };
    }

    pub fn remove_on_signal(name: &str) {
        let Ok(c_name) = CString::new(name) else {
            return;
        };
        let _ = NAME.set(c_name);
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: installs a handler that only calls async-signal-safe functions.
            unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
        }
    }
}
