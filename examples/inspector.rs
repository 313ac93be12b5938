//! A segment to look at with the `shmkit` inspector (README, "Looking inside a segment"):
//! a root with plain fields, an atomic and containers behind locks, named objects (a
//! struct, an enum, a string and a vector among them), an array, a unique and an
//! anonymous object, and some freed memory.
//!
//! `cargo run --example inspector` builds it, prints the inspector commands to try and
//! removes it again; with `-- --keep` it stays in /dev/shm (as `shmkit_example_db`) for
//! `cargo run -p shmkit-cli -- stat shmkit_example_db` and the others, until
//! `cargo run -p shmkit-cli -- rm shmkit_example_db`.

use std::sync::atomic::{AtomicU64, Ordering};

use shmkit::prelude::*;
use shmkit::sync::Mutex;
use shmkit::{shm_segment, ManagedSharedMemory, ShmSafe};

/// A nested plain struct.
#[derive(ShmSafe, Default)]
#[repr(C)]
pub struct Totals {
    /// Orders recorded.
    pub orders: u64,
    /// Their volume.
    pub volume: u64,
}

/// An enum, rendered by variant from the schema its type stores.
#[derive(ShmSafe, Clone, Copy)]
#[repr(u8)]
pub enum Level {
    /// No limit.
    Low,
    /// A limit.
    High {
        /// The limit.
        limit: u32,
    },
}

/// The segment's root.
#[shm_segment]
#[derive(Default)]
pub struct Stats {
    /// A plain field, set while the segment was exclusive.
    pub version: u32,
    /// Another.
    pub ratio: f64,
    /// Changed by any process.
    pub hits: AtomicU64,
    /// Behind a lock.
    pub totals: Mutex<Totals>,
    /// A container behind a lock.
    pub recent: Mutex<Vec<u64>>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keep = std::env::args().any(|a| a == "--keep");
    let name = if keep {
        "shmkit_example_db".to_string()
    } else {
        format!("shmkit_example_db_{}", std::process::id())
    };
    let _ = ManagedSharedMemory::remove(name.as_str());
    let mut builder = ManagedSharedMemory::options()
        .exclusive()
        .create(name.as_str(), 1 << 20)?;
    {
        let mut stats = builder.root_mut::<Stats>()?;
        *stats.version_mut() = 2;
        *stats.ratio_mut() = 0.25;
    }
    // Containers of their own, filled while the segment is exclusive.
    builder.construct("desk", shmkit::containers::String::new())?;
    if let Some(mut desk) = builder.find_mut::<shmkit::containers::String>("desk")? {
        desk.push_str("rates, Zürich")?;
    }
    builder.construct("fills", shmkit::containers::Vec::<u32>::new())?;
    if let Some(mut fills) = builder.find_mut::<shmkit::containers::Vec<u32>>("fills")? {
        fills.extend([120, 80, 45])?;
    }
    let segment = builder.into_shared()?;
    let stats = segment.root::<Stats>()?;
    stats.hits.fetch_add(7, Ordering::Relaxed);
    stats
        .recent
        .lock()
        .map_err(shmkit::Error::from)?
        .extend_from_slice(&[250, 40])?;
    segment.construct("limit", 100u32)?;
    segment.construct_from_iter("primes", [2u64, 3, 5, 7, 11])?;
    segment.construct(
        "last_order",
        Totals {
            orders: 3,
            volume: 120,
        },
    )?;
    segment.construct("level", Level::High { limit: 90 })?;
    segment.construct_unique(-1i32)?;
    segment.construct_anonymous(1.5f64)?;
    // Some memory used and given back, so the map shows holes.
    let blocks: Vec<_> = (0..12)
        .map(|i| segment.allocate(64 << (i % 5)))
        .collect::<Result<_, _>>()?;
    for b in blocks.iter().step_by(2) {
        // SAFETY: allocated above from this segment, freed once.
        unsafe { segment.deallocate(*b)? };
    }
    println!("built {name}; look at it with (cargo run -p shmkit-cli --):");
    println!("  shmkit ls");
    for cmd in ["stat", "dump --json", "map", "check"] {
        println!("  shmkit {cmd} {name}");
    }
    drop(segment);
    if !keep {
        ManagedSharedMemory::remove(name.as_str())?;
    }
    Ok(())
}
