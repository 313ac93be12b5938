//! What a user sees when a segment's schema changes.
//!
//! Version 1 of a program stores its root `Config` in a segment file; version 2 of the
//! program, compiled with a changed `Config` (a field retyped, one removed, one added, one
//! moved), opens the same file. Instead of reading the old bytes as the new layout, it gets
//! `Error::SchemaMismatch` listing every difference, and version 1 can still read its data.
//! (The two versions are two modules here; they declare the same root name, `"config"`,
//! which is what identifies a root in a segment.)
//!
//! Run: `cargo run --example schema_evolution`

use shmkit::{shm_segment, Error, ManagedMappedFile, ShmSafe};

mod v1 {
    use super::shm_segment;

    /// Version 1 of the root.
    #[shm_segment(name = "config")]
    #[derive(Default)]
    pub struct Config {
        pub version: u32,
        pub max_clients: u32,
        pub timeout_ms: u64,
        pub verbose: bool,
    }
}

mod v2 {
    use super::shm_segment;

    /// Version 2: `max_clients` widened to u64, `verbose` dropped, `port` added, and
    /// `timeout_ms` moved to the front.
    #[shm_segment(name = "config")]
    #[derive(Default)]
    pub struct Config {
        pub timeout_ms: u64,
        pub version: u32,
        pub max_clients: u64,
        pub port: u16,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join(format!(
        "shmkit_schema_evolution_{}.seg",
        std::process::id()
    ));
    let result = run(&path);
    let _ = std::fs::remove_file(&path);
    result
}

fn run(path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    use v1::ConfigFields as _; // the field accessors #[shm_segment] generates

    println!("The schema of version 1, as stored in the segment:");
    println!("{}", v1::Config::SCHEMA.expect("derived"));
    println!("The schema of version 2:");
    println!("{}", v2::Config::SCHEMA.expect("derived"));

    // Version 1 creates the segment and fills its root.
    {
        // Alone (exclusive) while it writes the root in place; shared mappings get `&T`.
        let mut segment = ManagedMappedFile::options()
            .exclusive()
            .create(path, 64 * 1024)?;
        let mut config = segment.root_mut::<v1::Config>()?;
        *config.version_mut() = 1;
        *config.max_clients_mut() = 64;
        *config.timeout_ms_mut() = 1500;
        segment.flush()?;
        println!("version 1 wrote its config to {}", path.display());
    }

    // Version 2 opens the same file.
    let segment = ManagedMappedFile::open(path)?;
    match segment.root::<v2::Config>() {
        Err(e @ Error::SchemaMismatch { .. }) => println!("\nversion 2 gets an error:\n{e}\n"),
        Err(e) => return Err(e.into()),
        Ok(_) => return Err("version 2 read a root of another layout".into()),
    }

    // Version 1's data is untouched.
    let config = segment.root::<v1::Config>()?;
    println!(
        "version 1 still reads: version {}, max_clients {}, timeout {} ms",
        config.version, config.max_clients, config.timeout_ms
    );
    Ok(())
}
