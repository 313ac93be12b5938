//! The children of the segment tests (`multiprocess/segment.rs`): they open the segment
//! named by `SHMKIT_KIND` ("shm", "file" or "xsi") and `SHMKIT_NAME` (for "xsi", the key
//! file).

use std::path::Path;
use std::time::Duration;

use shmkit_runtime::os::XsiKey;
use shmkit_runtime::segment::{Backing, Writable};
use shmkit_runtime::{
    Error, Handle, ManagedMappedFile, ManagedSegment, ManagedSharedMemory, ManagedXsiSharedMemory,
};

use crate::blocks::{decode_blocks, put, Block};
use crate::bytes::pattern;
use crate::internals::{creator, owner_id};
use crate::rng::Rng;
use crate::{env, tell_parent};

/// The key of an XSI segment whose key file is `path`.
pub fn xsi_key(path: &str) -> XsiKey {
    XsiKey::from_path(Path::new(path), b'S').unwrap()
}

/// Opens by name, checks the parent's blocks (`SHMKIT_BLOCKS`), frees the even ones,
/// allocates a reply and stores its handle in the slot (`SHMKIT_SLOT`). A read-only open
/// of shared memory or a file is refused meanwhile (the parent maps it read-write); XSI
/// segments have no attachment locks yet, and the blocks are checked through one too.
pub fn verify() {
    let name = env("SHMKIT_NAME");
    let blocks = decode_blocks(&env("SHMKIT_BLOCKS"));
    let slot = Handle(env("SHMKIT_SLOT").parse().unwrap());
    match env("SHMKIT_KIND").as_str() {
        "shm" => {
            let ro = ManagedSharedMemory::options().read_only().open(&name);
            assert!(matches!(ro, Err(Error::InUse { .. })), "{ro:?}");
            verify_in(&ManagedSharedMemory::open(&name).unwrap(), &blocks, slot);
        }
        "file" => {
            let path = Path::new(&name);
            let ro = ManagedMappedFile::options().read_only().open(path);
            assert!(matches!(ro, Err(Error::InUse { .. })), "{ro:?}");
            verify_in(&ManagedMappedFile::open(path).unwrap(), &blocks, slot);
        }
        "xsi" => {
            let ro = ManagedXsiSharedMemory::options()
                .read_only()
                .open(xsi_key(&name));
            assert!(matches!(ro, Err(Error::InUse { .. })), "{ro:?}");
            verify_in(
                &ManagedXsiSharedMemory::open(xsi_key(&name)).unwrap(),
                &blocks,
                slot,
            );
        }
        other => panic!("unknown kind {other}"),
    }
}

fn verify_in<B: Backing>(seg: &ManagedSegment<B>, blocks: &[Block], slot: Handle) {
    assert!(seg.check_sanity());
    for b in blocks {
        b.assert_intact(seg);
        assert!(seg.usable_size(b.ptr(seg)).unwrap() >= b.len);
    }
    // Allocated before the frees, so that the freed blocks stay free for the parent to see.
    let reply = Block::new(seg, 777, u64::from(std::process::id()));
    for b in blocks.iter().step_by(2) {
        b.free(seg);
    }
    put(seg, slot, &reply.handle.0.to_ne_bytes());
    tell_parent("done");
}

/// One racer: report readiness, wait for the start time, `open_or_create` a segment of
/// `SHMKIT_SIZE` bytes, then report whether this process created the segment, whether it
/// looked fresh, and its marker.
pub fn race() {
    let name = env("SHMKIT_NAME");
    let size: usize = env("SHMKIT_SIZE").parse().unwrap();
    match env("SHMKIT_KIND").as_str() {
        "shm" => race_with(|| ManagedSharedMemory::open_or_create(&name, size).unwrap()),
        "file" => race_with(|| ManagedMappedFile::open_or_create(Path::new(&name), size).unwrap()),
        "xsi" => {
            race_with(|| ManagedXsiSharedMemory::open_or_create(xsi_key(&name), size).unwrap())
        }
        other => panic!("unknown kind {other}"),
    }
}

fn race_with<B: Backing>(open: impl FnOnce() -> ManagedSegment<B>) {
    tell_parent("ready");
    // The parent sends a start time a little in the future; both racers spin until then,
    // so that their open_or_create calls overlap within microseconds.
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("start time");
    let start = std::time::UNIX_EPOCH + Duration::from_nanos(line.trim().parse().unwrap());
    while std::time::SystemTime::now() < start {
        std::hint::spin_loop();
    }
    let t0 = now_ns();
    let seg = open();
    let t1 = now_ns();
    // The creator's lock owner id is in the header; if two processes had both formatted
    // the segment, each would find its own id there right after its own format.
    let me = owner_id(&seg);
    let created = creator(&seg) == me;
    let fresh = seg.all_memory_deallocated();
    let marker = Block::new(&seg, 64, u64::from(std::process::id()));
    assert!(seg.check_sanity());
    tell_parent(&format!(
        "{created} {fresh} {} {t0} {t1} {me}",
        marker.encode()
    ));
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Takes the segment lock and never lets go (until SIGKILLed).
pub fn hold_lock() {
    let name = env("SHMKIT_NAME");
    match env("SHMKIT_KIND").as_str() {
        "shm" => hold_lock_in(&ManagedSharedMemory::open(&name).unwrap()),
        "file" => hold_lock_in(&ManagedMappedFile::open(Path::new(&name)).unwrap()),
        other => panic!("unknown kind {other}"),
    }
}

pub fn hold_lock_in<B: Backing, M: Writable>(seg: &ManagedSegment<B, M>) {
    let me = owner_id(seg);
    seg.with_lock(|| {
        tell_parent(&format!("locked {me}"));
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    })
    .unwrap()
}

/// Allocates and frees in a tight loop until SIGKILLed; `SHMKIT_CHURN` says how:
/// "mixed" (random sizes, up to 16 live blocks plus `allocate_many` batches) or "tail"
/// (two small blocks allocated and freed again and again, so that a kill often lands
/// inside a merge with the free neighbours).
pub fn churn() {
    let name = env("SHMKIT_NAME");
    let tail = match env("SHMKIT_CHURN").as_str() {
        "mixed" => false,
        "tail" => true,
        other => panic!("unknown churn {other}"),
    };
    match env("SHMKIT_KIND").as_str() {
        "shm" => churn_in(&ManagedSharedMemory::open(&name).unwrap(), tail),
        "file" => churn_in(&ManagedMappedFile::open(Path::new(&name)).unwrap(), tail),
        other => panic!("unknown kind {other}"),
    }
}

fn churn_in<B: Backing, M: Writable>(seg: &ManagedSegment<B, M>, tail: bool) {
    let mut rng = Rng::new(u64::from(std::process::id()));
    let mut live: Vec<Block> = Vec::new();
    tell_parent(&format!("started {}", owner_id(seg)));
    loop {
        if tail {
            // `b` is freed last, between the free `a` and the free block after it: both
            // neighbours merge into it.
            let a = seg.allocate(64).unwrap();
            let b = seg.allocate(64).unwrap();
            // SAFETY: just allocated here, not used afterwards.
            unsafe { seg.deallocate(a) }.unwrap();
            // SAFETY: as above.
            unsafe { seg.deallocate(b) }.unwrap();
            continue;
        }
        match rng.range(0, 10) {
            0..=5 if live.len() < 16 => {
                let len = rng.range(1, 1500) as usize;
                if let Some(p) = seg.try_allocate(len) {
                    let handle = seg.handle_from_address(p.as_ptr()).unwrap();
                    let seed = rng.next_u64();
                    put(seg, handle, &pattern(seed, len.min(64)));
                    live.push(Block {
                        handle,
                        len: len.min(64),
                        seed,
                    });
                }
            }
            6 => {
                if let Ok(ptrs) = seg.allocate_many(rng.range(8, 200) as usize, 16) {
                    // SAFETY: just allocated here, not used afterwards.
                    unsafe { seg.deallocate_many(ptrs) }.unwrap();
                }
            }
            _ if !live.is_empty() => {
                let b = live.swap_remove(rng.range(0, live.len() as u64) as usize);
                b.assert_intact(seg);
                b.free(seg);
            }
            _ => {}
        }
    }
}

/// Plays a creator that stalls (as in a long `fallocate`) until it is SIGKILLed: creates the
/// device at `SHMKIT_PATH` exclusively, claims it as a creator does (an exclusive `flock` on
/// its own open file description), sizes it to `SHMKIT_SIZE` bytes (0: not at all) and
/// never writes a header.
pub fn claim_and_stall() {
    let path = env("SHMKIT_PATH");
    let size: u64 = env("SHMKIT_SIZE").parse().unwrap();
    let device = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    rustix::fs::flock(
        &device,
        rustix::fs::FlockOperation::NonBlockingLockExclusive,
    )
    .unwrap();
    device.set_len(size).unwrap();
    tell_parent("claimed");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
