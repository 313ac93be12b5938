//! The README's main example: one process builds data in POSIX shared memory alone (an
//! exclusive mapping), shares it, starts itself again as three child processes at once, and
//! each child opens the segment by name, reads the data back and records its visit in the
//! segment's root under a process-shared `Mutex`.
//!
//! The data is a linked list of readings whose links are `OffsetPtr`s: each child maps the
//! segment at another address and still follows them. The root (`#[shm_segment]`) holds a
//! `Mutex<Tally>`: shared data changes through locks (or atomics), as with `Arc<Mutex<T>>`
//! between threads. The segment is removed when the parent ends, also on Ctrl-C.
//!
//! Run: `cargo run --example quickstart`

use std::process::Command;
use std::ptr::NonNull;

use shmkit::sync::Mutex;
use shmkit::{shm_segment, Handle, ManagedSharedMemory, OffsetPtr, ShmSafe};

/// One reading of a sensor, as it lives in the segment.
#[repr(C)]
struct Reading {
    sensor: u32,
    celsius: f64,
    next: OffsetPtr<Reading>,
}

const READINGS: [(u32, f64); 4] = [(1, 21.5), (2, 19.25), (3, 23.0), (4, 18.75)];
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
    tally: Mutex<Tally>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("child") => child(args.get(2), args.get(3)),
        _ => parent(),
    }
}

fn parent() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("shmkit_quickstart_{}", std::process::id());
    let _cleanup = remove_on_exit(&name);
    // Exclusive while it builds: nobody else can map the segment meanwhile.
    let segment = ManagedSharedMemory::options()
        .exclusive()
        .create(&name, 1 << 20)?;
    println!(
        "parent: created segment {name:?} ({} bytes) at {:p}",
        segment.size(),
        segment.base_address()
    );

    // Build the list back to front, so each node can point at the one built before it.
    let mut head: Option<NonNull<Reading>> = None;
    for &(sensor, celsius) in READINGS.iter().rev() {
        let node = segment
            .allocate_aligned(size_of::<Reading>(), align_of::<Reading>())?
            .cast::<Reading>();
        // SAFETY: `node` is a fresh allocation big and aligned enough for a Reading; the
        // OffsetPtr is written in place (it is only meaningful where it lives).
        unsafe {
            node.write(Reading {
                sensor,
                celsius,
                next: OffsetPtr::null(),
            });
            if let Some(next) = head {
                (*node.as_ptr()).next.set(next.as_ptr());
            }
        }
        head = Some(node);
    }
    let head = head.expect("READINGS is not empty");
    let handle = segment
        .handle_from_address(head.as_ptr().cast())
        .expect("allocated in the segment");
    println!(
        "parent: wrote {} readings, list head at offset {handle}",
        READINGS.len()
    );
    segment.root::<Station>()?;
    // Shared from now on, without unmapping: every mapping gets `&T`, and what changes
    // while shared changes through locks (or atomics) inside the data.
    let segment = segment.into_shared()?;

    let children = (0..CHILDREN)
        .map(|_| {
            Command::new(std::env::current_exe()?)
                .args(["child", &name, &handle.to_string()])
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
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

fn child(name: Option<&String>, handle: Option<&String>) -> Result<(), Box<dyn std::error::Error>> {
    let (Some(name), Some(handle)) = (name, handle) else {
        return Err("usage: quickstart child <segment name> <handle>".into());
    };
    // A shared read-write mapping: a read-only one is refused (`InUse`) while the parent
    // maps the segment read-write, since it could not take the segment's locks.
    let segment = ManagedSharedMemory::open(name)?;
    println!(
        "child {}: opened {name:?} at {:p}",
        std::process::id(),
        segment.base_address()
    );
    let head = segment
        .address_from_handle(handle.parse::<Handle>()?)
        .ok_or("the handle lies outside the segment")?;
    let mut node = head.as_ptr().cast::<Reading>().cast_const();
    let mut total = 0.0;
    let me = std::process::id();
    while !node.is_null() {
        // SAFETY: the parent built a list of Readings here before starting us and keeps
        // the segment alive until we exit; each `next` is null or points at a Reading in
        // the same segment, wherever it is mapped.
        let reading = unsafe { &*node };
        println!(
            "child {me}: sensor {} reads {:.2} °C",
            reading.sensor, reading.celsius
        );
        total += reading.celsius;
        node = reading.next.get();
    }
    println!(
        "child {me}: mean {:.2} °C; allocator consistent: {}",
        total / READINGS.len() as f64,
        segment.check_sanity()
    );
    record(&segment, total / READINGS.len() as f64)?;
    Ok(())
}

/// Records a visit. Several children do at once: the lock serialises their updates,
/// wherever each maps the segment; a child killed while holding it would leave it
/// poisoned (the next `lock()` says so), never stuck.
fn record(segment: &ManagedSharedMemory, mean: f64) -> shmkit::Result<()> {
    let mut tally = segment.root::<Station>()?.tally.lock()?;
    tally.visits += 1;
    tally.readings_seen += READINGS.len() as u32;
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
