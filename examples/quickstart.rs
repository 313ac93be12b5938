//! The README's main example: one process builds data in POSIX shared memory alone (an
//! exclusive mapping), shares it, starts itself again as a child process, and the child
//! opens the segment by name, reads it back and counts its visit in an atomic.
//!
//! The data is a linked list of readings whose links are `OffsetPtr`s: the child maps the
//! segment at another address and still follows them. The segment is removed when the
//! parent ends, also on Ctrl-C.
//!
//! Run: `cargo run --example quickstart`

use std::process::Command;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use shmkit::{Handle, ManagedSharedMemory, OffsetPtr};

/// One reading of a sensor, as it lives in the segment.
#[repr(C)]
struct Reading {
    sensor: u32,
    celsius: f64,
    next: OffsetPtr<Reading>,
}

const READINGS: [(u32, f64); 4] = [(1, 21.5), (2, 19.25), (3, 23.0), (4, 18.75)];

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
    segment.construct("visits", AtomicU32::new(0))?;
    // Shared from now on, without unmapping: every mapping gets `&T`, and what changes
    // while shared changes through atomics (or locks) inside the data.
    let segment = segment.into_shared()?;

    let status = Command::new(std::env::current_exe()?)
        .args(["child", &name, &handle.to_string()])
        .status()?;
    println!("parent: child exited with {status}");
    if !status.success() {
        return Err("the child failed".into());
    }
    let visits = segment
        .find::<AtomicU32>("visits")?
        .ok_or("no visits counter")?;
    println!("parent: visits counted: {}", visits.load(Ordering::Relaxed));
    Ok(())
}

fn child(name: Option<&String>, handle: Option<&String>) -> Result<(), Box<dyn std::error::Error>> {
    let (Some(name), Some(handle)) = (name, handle) else {
        return Err("usage: quickstart child <segment name> <handle>".into());
    };
    // A shared read-write mapping: a read-only one is refused (`InUse`) while the parent
    // maps the segment read-write, since it could not take the segment's locks.
    let segment = ManagedSharedMemory::open(name)?;
    println!("child:  opened {name:?} at {:p}", segment.base_address());
    let head = segment
        .address_from_handle(handle.parse::<Handle>()?)
        .ok_or("the handle lies outside the segment")?;
    let mut node = head.as_ptr().cast::<Reading>().cast_const();
    let mut total = 0.0;
    while !node.is_null() {
        // SAFETY: the parent built a list of Readings here before starting us and keeps
        // the segment alive until we exit; each `next` is null or points at a Reading in
        // the same segment, wherever it is mapped.
        let reading = unsafe { &*node };
        println!(
            "child:  sensor {} reads {:.2} °C",
            reading.sensor, reading.celsius
        );
        total += reading.celsius;
        node = reading.next.get();
    }
    println!(
        "child:  mean {:.2} °C; allocator consistent: {}",
        total / READINGS.len() as f64,
        segment.check_sanity()
    );
    let visits = segment
        .find::<AtomicU32>("visits")?
        .ok_or("no visits counter")?;
    visits.fetch_add(1, Ordering::Relaxed);
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
