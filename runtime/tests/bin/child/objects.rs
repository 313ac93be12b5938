//! The children of the object tests (`multiprocess/objects.rs`): they open the segment
//! named by `SHMKIT_KIND` ("shm" or "file") and `SHMKIT_NAME`.

use std::path::Path;
use std::time::Duration;

use shmkit_runtime::segment::Backing;
use shmkit_runtime::{ManagedMappedFile, ManagedSegment, ManagedSharedMemory};

use crate::{env, tell_parent, wait_for_parent};

/// Runs `role` on the segment the child was told about, whatever its kind.
pub fn run(role: fn(&mut dyn ChildSegment)) {
    let name = env("SHMKIT_NAME");
    match env("SHMKIT_KIND").as_str() {
        "shm" => role(&mut ManagedSharedMemory::open(&name).unwrap()),
        "file" => role(&mut ManagedMappedFile::open(Path::new(&name)).unwrap()),
        other => panic!("unknown kind {other}"),
    }
}

/// What the children do with a segment, for every backing.
pub trait ChildSegment {
    /// Finds and checks the parent's objects, constructs a reply, is refused destroying
    /// "squares" (the parent maps the segment).
    fn verify_and_reply(&mut self);
    /// After the start signal, `SHMKIT_ROUNDS` rounds of `find_or_construct` on
    /// `racer_<round>`, reporting each round's outcome.
    fn race(&mut self);
    /// Constructs an object inside `atomic_func` and stays there until killed.
    fn hold_index_lock(&mut self);
    /// Stops half-way through constructing an array and stays there until killed.
    fn die_while_constructing(&mut self);
    /// After the start signal, finds `grow_<j>` for `j` below `SHMKIT_OBJECTS` (arrays of
    /// `1 + j % 4` elements `j << 32 | i`) over and over while the parent constructs them,
    /// checking every element of each found, and never finds `undone_<k>`; reports how
    /// many passes it made once it has found them all.
    fn find_while_constructed(&mut self);
}

impl<B: Backing> ChildSegment for ManagedSegment<B> {
    fn verify_and_reply(&mut self) {
        assert_eq!(self.find::<u64>("answer").unwrap(), Some(&42));
        let squares = self.find_slice::<u32>("squares").unwrap().unwrap();
        assert!(squares
            .iter()
            .enumerate()
            .all(|(i, &v)| v == (i * i) as u32));
        assert_eq!(self.find_unique::<i64>().unwrap(), Some(&-7));
        assert_eq!(self.num_named_objects(), 2);
        let answer = self.find::<u64>("answer").unwrap().unwrap();
        assert_eq!(self.instance_name(answer).as_deref(), Some("answer"));
        assert!(matches!(
            self.find::<u32>("answer"),
            Err(shmkit_runtime::Error::TypeMismatch { .. })
        ));
        self.construct("reply", u64::from(std::process::id()))
            .unwrap();
        // The parent maps the segment and may hold references into "squares".
        assert!(matches!(
            self.destroy::<u32>("squares"),
            Err(shmkit_runtime::Error::InUse { .. })
        ));
        tell_parent("done");
    }

    fn race(&mut self) {
        let rounds: usize = env("SHMKIT_ROUNDS").parse().unwrap();
        wait_for_parent();
        let me = u64::from(std::process::id());
        for round in 0..rounds {
            let mut built = false;
            let obj = self
                .find_or_construct(format!("racer_{round}").as_str(), || {
                    built = true;
                    // Linger, so that the others arrive while this one builds.
                    std::thread::sleep(Duration::from_micros(200));
                    me
                })
                .unwrap();
            let at = self
                .handle_from_address(std::ptr::from_ref(obj).cast())
                .unwrap();
            tell_parent(&format!("{round} {} {} {}", u8::from(built), *obj, at.0));
        }
    }

    fn hold_index_lock(&mut self) {
        self.atomic_func(|| {
            self.construct("made_inside", 5u64).unwrap();
            tell_parent("locked");
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        })
        .unwrap()
    }

    fn find_while_constructed(&mut self) {
        let objects: usize = env("SHMKIT_OBJECTS").parse().unwrap();
        let names: Vec<String> = (0..objects).map(|j| format!("grow_{j}")).collect();
        let mut seen = vec![false; objects];
        let mut passes = 0u64;
        tell_parent("ready");
        wait_for_parent();
        while seen.iter().any(|&s| !s) {
            passes += 1;
            for (j, name) in names.iter().enumerate() {
                let Some(elems) = self.find_slice::<u64>(name.as_str()).unwrap() else {
                    assert!(!seen[j], "{name} was found before and is gone");
                    continue;
                };
                assert_eq!(elems.len(), 1 + j % 4, "{name}");
                for (i, &v) in elems.iter().enumerate() {
                    assert_eq!(v, (j as u64) << 32 | i as u64, "{name}[{i}]");
                }
                seen[j] = true;
            }
            let undone = self.find_slice::<u64>(format!("undone_{}", passes % 8).as_str());
            assert_eq!(undone.unwrap(), None);
        }
        tell_parent(&format!("found all in {passes} passes"));
    }

    fn die_while_constructing(&mut self) {
        self.construct_array_with("half", 1000, |i| {
            if i == 500 {
                tell_parent("building");
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
            i as u64
        })
        .unwrap();
    }
}
