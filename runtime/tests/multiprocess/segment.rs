//! Segments shared between real processes. The other processes are the helper binary
//! `shmkit-test-child` (its roles `segment-*`, in `tests/bin/child/segment.rs`).
//!
//! - a parent fills a segment, a child opens it by name and checks and changes it;
//! - two children race `open_or_create` on one name: exactly one creates;
//! - a child killed while holding the segment lock, or in the middle of allocating, does
//!   not deadlock or corrupt the segment for the others.
//!
//! Long stress variants are `#[ignore]`d: run them with
//! `cargo test -p shmkit-runtime --test multiprocess -- --ignored`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shmkit_runtime::os::XsiKey;
use shmkit_runtime::segment::Backing;
use shmkit_runtime::{Handle, ManagedSegment, ManagedXsiSharedMemory};
use shmkit_test_support as support;
use support::{
    creator, get, lock_owner, put, spawn_child, within, Block, ChildProc, FileTarget, Rng, Seg,
    ShmTarget, Target, TempDir,
};

const SIZE: usize = 256 * 1024;
/// How long a child may take for its part; generous, a hang fails instead of blocking.
const CHILD_LIMIT: Duration = Duration::from_secs(20);

/// Starts the helper binary playing `role`, with `envs`.
fn child(role: &str, envs: &[(&str, String)]) -> ChildProc {
    spawn_child(env!("CARGO_BIN_EXE_shmkit-test-child"), role, envs)
}

// ----- (a) a parent fills, a child verifies ---------------------------------------------

/// The parent's side, for any backing: fill, run the child, check what it did.
fn parent_fills_child_verifies<B: Backing>(seg: &ManagedSegment<B>, kind: &str, name: &str) {
    let slot = Block::new(seg, 8, 0);
    put(seg, slot.handle, &0u64.to_ne_bytes());
    let blocks: Vec<Block> = (0..12)
        .map(|i| Block::new(seg, 50 + 997 * i, 1000 + i as u64))
        .collect();
    let mut child = child(
        "segment-verify",
        &[
            ("SHMKIT_KIND", kind.to_owned()),
            ("SHMKIT_NAME", name.to_owned()),
            ("SHMKIT_BLOCKS", support::encode_blocks(&blocks)),
            ("SHMKIT_SLOT", slot.handle.0.to_string()),
        ],
    );
    let child_pid = child.pid();
    assert_eq!(child.expect_message(CHILD_LIMIT), "done");
    child.assert_success(CHILD_LIMIT);

    // The child's changes are ours to see.
    let reply = Handle(u64::from_ne_bytes(
        get(seg, slot.handle, 8).try_into().unwrap(),
    ));
    assert_ne!(reply.0, 0, "the child stored its reply handle");
    let reply = Block {
        handle: reply,
        len: 777,
        seed: u64::from(child_pid),
    };
    reply.assert_intact(seg);
    for (i, b) in blocks.iter().enumerate() {
        if i % 2 == 0 {
            assert!(
                seg.usable_size(b.ptr(seg)).is_none(),
                "the child freed block {i}"
            );
        } else {
            b.assert_intact(seg);
        }
    }
    assert!(seg.check_sanity());
    for b in blocks.iter().skip(1).step_by(2) {
        b.free(seg);
    }
    reply.free(seg);
    slot.free(seg);
    assert!(seg.all_memory_deallocated(), "every block is accounted for");
}

#[test]
fn a_child_process_opens_by_name_and_sees_the_parents_blocks_shm() {
    let t = ShmTarget::new();
    let seg = Seg::<ShmTarget>::create(t.name(), SIZE).unwrap();
    parent_fills_child_verifies(&seg, "shm", &t.name_string());
}

#[test]
fn a_child_process_opens_by_name_and_sees_the_parents_blocks_file() {
    let t = FileTarget::new();
    let seg = Seg::<FileTarget>::create(t.name(), SIZE).unwrap();
    parent_fills_child_verifies(&seg, "file", &t.name_string());
}

#[test]
fn a_child_process_opens_by_key_and_sees_the_parents_blocks_xsi() {
    let dir = TempDir::new();
    let key_file = dir.join("key");
    std::fs::write(&key_file, b"key").unwrap();
    let key = XsiKey::from_path(&key_file, b'S').unwrap();
    let _guard = support::XsiKeyGuard(key);
    let seg = ManagedXsiSharedMemory::create(key, SIZE).unwrap();
    parent_fills_child_verifies(&seg, "xsi", key_file.to_str().unwrap());
}

// ----- (b) racing open_or_create --------------------------------------------------------

/// Runs `rounds` races of two children on fresh names; `fresh_target` makes a name and
/// returns (name for the child, a function opening the segment in the parent).
fn race<G, B: Backing>(kind: &str, rounds: usize, mut fresh_target: impl FnMut() -> (String, G))
where
    G: Fn() -> ManagedSegment<B>,
{
    let mut overlapped = 0;
    for round in 0..rounds {
        let (name, open) = fresh_target();
        let envs = [
            ("SHMKIT_KIND", kind.to_owned()),
            ("SHMKIT_NAME", name.clone()),
            ("SHMKIT_SIZE", SIZE.to_string()),
        ];
        let mut kids: Vec<ChildProc> = (0..2).map(|_| child("segment-race", &envs)).collect();
        for k in &mut kids {
            assert_eq!(k.expect_message(CHILD_LIMIT), "ready");
        }
        let start = std::time::SystemTime::now() + Duration::from_millis(5);
        let start = start
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        for k in &mut kids {
            k.send(&format!("{start}\n"));
        }
        let mut spans = Vec::new();
        let reports: Vec<(u32, bool, bool, Block)> = kids
            .iter_mut()
            .map(|k| {
                let msg = k.expect_message(CHILD_LIMIT);
                let mut f = msg.split(' ');
                let created = f.next().unwrap().parse::<bool>().unwrap();
                let fresh = f.next().unwrap().parse::<bool>().unwrap();
                let marker = Block::decode(f.next().unwrap());
                let t0 = f.next().unwrap().parse::<u128>().unwrap();
                let t1 = f.next().unwrap().parse::<u128>().unwrap();
                let owner = f.next().unwrap().parse::<u32>().unwrap();
                spans.push((t0, t1));
                (owner, created, fresh, marker)
            })
            .collect();
        // Did the two open_or_create calls run at the same time?
        overlapped += usize::from(spans[0].0 < spans[1].1 && spans[1].0 < spans[0].1);
        for k in &mut kids {
            k.assert_success(CHILD_LIMIT);
        }
        let creators: Vec<u32> = reports.iter().filter(|r| r.1).map(|r| r.0).collect();
        assert_eq!(
            creators.len(),
            1,
            "{kind} round {round}: creators {creators:?} of {reports:?}"
        );
        assert!(
            reports.iter().any(|r| r.2),
            "{kind} round {round}: nobody saw a fresh segment: {reports:?}"
        );

        // Both markers survived: nobody formatted the segment under the other's feet.
        let seg = open();
        assert_eq!(creator(&seg), creators[0]);
        assert!(
            seg.check_sanity(),
            "{kind} round {round}: {:?}",
            seg.check()
        );
        assert_ne!(reports[0].3.handle, reports[1].3.handle);
        for r in &reports {
            r.3.assert_intact(&seg);
            r.3.free(&seg);
        }
        assert!(
            seg.all_memory_deallocated(),
            "{kind} round {round}: exactly the two markers were allocated"
        );
    }
    eprintln!("{kind}: the two open_or_create calls overlapped in {overlapped} of {rounds} races");
}

/// The race of a device kind: fresh names, removed when the test ends.
fn race_device<T: Target>(rounds: usize) {
    let mut targets = Vec::new();
    race(T::KIND, rounds, || {
        let t = T::new();
        let name = t.name_string();
        targets.push(t);
        let n = name.clone();
        (name, move || Seg::<T>::open(T::parse_name(&n)).unwrap())
    });
}

#[test]
fn racing_open_or_create_has_exactly_one_creator_shm() {
    race_device::<ShmTarget>(20);
}

#[test]
fn racing_open_or_create_has_exactly_one_creator_file() {
    race_device::<FileTarget>(20);
}

#[test]
fn racing_open_or_create_has_exactly_one_creator_xsi() {
    let dir = TempDir::new();
    let mut guards = Vec::new();
    race("xsi", 10, || {
        let path = dir.join(&support::unique_name());
        std::fs::write(&path, b"key").unwrap();
        let key = XsiKey::from_path(&path, b'S').unwrap();
        guards.push(support::XsiKeyGuard(key));
        (path.to_str().unwrap().to_owned(), move || {
            ManagedXsiSharedMemory::open(key).unwrap()
        })
    });
}

// ----- (c) a child killed holding the lock, or while allocating -----------------------

fn killed_while_holding_the_lock<T: Target>()
where
    Seg<T>: Send + Sync,
{
    let t = T::new();
    let seg = Arc::new(Seg::<T>::create(t.name(), SIZE).unwrap());
    let mine: Vec<Block> = (0..6)
        .map(|i| Block::new(&*seg, 300 * (i + 1), i as u64))
        .collect();
    let free = seg.free_memory();

    let mut child = child(
        "segment-hold-lock",
        &[
            ("SHMKIT_KIND", T::KIND.to_owned()),
            ("SHMKIT_NAME", t.name_string()),
        ],
    );
    let held_by: u32 = child
        .expect_message(CHILD_LIMIT)
        .strip_prefix("locked ")
        .and_then(|id| id.parse().ok())
        .expect("the child says it holds the lock, and under which owner id");
    assert_eq!(lock_owner(&*seg), Some(held_by), "the child holds the lock");

    // An allocation now waits for the lock...
    let (tx, rx) = std::sync::mpsc::channel();
    let s = Arc::clone(&seg);
    std::thread::spawn(move || {
        let r = s
            .allocate(1000)
            .map(|p| s.handle_from_address(p.as_ptr()).unwrap());
        let _ = tx.send(r);
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "an allocation went through while another process held the lock"
    );
    // ...and goes through once the holder is dead (killed and reaped), without hanging.
    let status = child.kill();
    assert!(!status.success());
    let started = Instant::now();
    let waiting = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the waiting allocation hangs after the lock holder died")
        .expect("the waiting allocation fails after the lock holder died");
    let recovered_in = started.elapsed();
    let s = Arc::clone(&seg);
    let fresh = within(
        Duration::from_secs(5),
        "allocation after the kill",
        move || {
            s.allocate(2000)
                .map(|p| s.handle_from_address(p.as_ptr()).unwrap())
        },
    )
    .expect("allocation after the kill");
    assert!(seg.check_sanity(), "{:?}", seg.check());
    assert_ne!(
        lock_owner(&*seg),
        Some(held_by),
        "the dead owner's lock was taken over"
    );

    // The blocks allocated before are intact and live; freeing everything leaves an empty,
    // consistent allocator (the dead child allocated nothing).
    for b in &mine {
        b.assert_intact(&*seg);
    }
    for h in [waiting, fresh] {
        let p = seg.address_from_handle(h).unwrap();
        // SAFETY: allocated above in this segment, not used afterwards.
        unsafe { seg.deallocate(p) }.unwrap();
    }
    assert_eq!(seg.free_memory(), free);
    for b in &mine {
        b.free(&*seg);
    }
    assert!(seg.all_memory_deallocated());
    assert!(seg.check_sanity());
    eprintln!(
        "{}: the lock was recovered {recovered_in:?} after the kill",
        T::KIND
    );
}

#[test]
fn a_process_killed_holding_the_lock_does_not_block_the_others_shm() {
    killed_while_holding_the_lock::<ShmTarget>();
}

#[test]
fn a_process_killed_holding_the_lock_does_not_block_the_others_file() {
    killed_while_holding_the_lock::<FileTarget>();
}

/// What a churning child does.
#[derive(Clone, Copy, Debug)]
enum Churn {
    /// Random sizes, up to 16 live blocks plus an `allocate_many` batch of 16.
    Mixed,
    /// Two small blocks allocated and freed again and again: the second free merges with
    /// the free block before it and the (large) free block after it, so a kill often lands
    /// inside a merge.
    Tail,
}

impl Churn {
    fn name(self) -> &'static str {
        match self {
            Churn::Mixed => "mixed",
            Churn::Tail => "tail",
        }
    }

    /// The most a killed child can have had allocated: what it may leak. Blocks cost their
    /// size rounded up to 8 plus an 8-byte header.
    fn max_leak(self) -> usize {
        match self {
            Churn::Mixed => 16 * (1504 + 8) + 16 * (200 + 8),
            Churn::Tail => 2 * (64 + 8),
        }
    }
}

/// `rounds` times: start a churning child, SIGKILL it at a random moment, then allocate
/// in the parent (within 5 s), check the allocator, and check that no more memory went
/// missing than the child could have held.
fn killed_while_allocating<T: Target>(rounds: usize, mode: Churn, max_delay_us: u64)
where
    Seg<T>: Send + Sync,
{
    let t = T::new();
    // Each killed child leaks what it had allocated; the parent keeps ~1.5 KiB a round.
    let size = SIZE + rounds * (mode.max_leak() + 2048);
    let seg = Arc::new(Seg::<T>::create(t.name(), size).unwrap());
    let seed = Rng::time_seed();
    eprintln!("{} {}: kill rounds with seed {seed}", T::KIND, mode.name());
    let mut rng = Rng::new(seed);
    // Blocks the parent keeps through every round: nobody may hand them out again.
    let mut mine: Vec<Block> = (0..8).map(|i| Block::new(&*seg, 256, 7000 + i)).collect();
    let mut killed_holding = 0;
    for round in 0..rounds {
        let free_before = seg.free_memory();
        let mut child = child(
            "segment-churn",
            &[
                ("SHMKIT_KIND", T::KIND.to_owned()),
                ("SHMKIT_NAME", t.name_string()),
                ("SHMKIT_CHURN", mode.name().to_owned()),
            ],
        );
        let child_owner: u32 = child
            .expect_message(CHILD_LIMIT)
            .strip_prefix("started ")
            .and_then(|id| id.parse().ok())
            .expect("the child says it started, and under which owner id");
        std::thread::sleep(Duration::from_micros(rng.range(0, max_delay_us)));
        child.kill();
        let held = lock_owner(&*seg) == Some(child_owner);
        killed_holding += usize::from(held);

        // The parent allocates (recovering the lock if the child died holding it).
        let s = Arc::clone(&seg);
        let fresh = within(
            Duration::from_secs(5),
            "allocation after the kill",
            move || {
                (0..4)
                    .map(|i| {
                        let len = 100 + 400 * i;
                        s.allocate(len)
                            .map(|p| (s.handle_from_address(p.as_ptr()).unwrap(), len))
                    })
                    .collect::<Result<Vec<_>, _>>()
            },
        )
        .unwrap_or_else(|e| {
            panic!(
                "round {round} (child died holding the lock: {held}): allocation after \
                 the kill failed: {e}"
            )
        });
        let fresh: Vec<Block> = fresh
            .into_iter()
            .enumerate()
            .map(|(i, (handle, len))| {
                let b = Block {
                    handle,
                    len,
                    seed: 9000 + (round * 4 + i) as u64,
                };
                put(&*seg, handle, &support::pattern(b.seed, len));
                b
            })
            .collect();
        assert!(seg.check_sanity(), "round {round}: {:?}", seg.check());
        for b in mine.iter().chain(&fresh) {
            assert!(b.intact(&*seg), "round {round}: {b:?} was overwritten");
        }
        // Accounting: freeing one of the new blocks gives back exactly its block, and the
        // same request then fits again.
        let before = seg.free_memory();
        let usable = seg.usable_size(fresh[3].ptr(&*seg)).unwrap();
        fresh[3].free(&*seg);
        assert_eq!(
            seg.free_memory(),
            before + usable + Seg::<T>::PAYLOAD_PER_ALLOCATION,
            "round {round}"
        );
        Block::new(&*seg, fresh[3].len, 1).free(&*seg);
        fresh[0].free(&*seg);
        assert!(seg.check_sanity(), "round {round}: {:?}", seg.check());
        // Keep two, so that later rounds have more to lose.
        mine.extend_from_slice(&fresh[1..3]);
        let kept: usize = fresh[1..3]
            .iter()
            .map(|b| seg.usable_size(b.ptr(&*seg)).unwrap() + Seg::<T>::PAYLOAD_PER_ALLOCATION)
            .sum();
        // Whatever the child held at its death may be lost; nothing more.
        let lost = free_before - seg.free_memory() - kept;
        assert!(
            lost <= mode.max_leak(),
            "round {round}: {lost} bytes went missing after a child was killed (it could \
             hold at most {}; it died holding the lock: {held}); {} of {} bytes free",
            mode.max_leak(),
            seg.free_memory(),
            seg.size()
        );
    }
    for b in &mine {
        b.assert_intact(&*seg);
        b.free(&*seg);
    }
    assert!(seg.check_sanity());
    eprintln!(
        "{} {}: {killed_holding} of {rounds} children died holding the lock",
        T::KIND,
        mode.name()
    );
}

#[test]
fn a_process_killed_while_allocating_leaves_a_consistent_segment_shm() {
    killed_while_allocating::<ShmTarget>(6, Churn::Mixed, 30_000);
}

#[test]
fn a_process_killed_while_allocating_leaves_a_consistent_segment_file() {
    killed_while_allocating::<FileTarget>(6, Churn::Mixed, 30_000);
}

/// A child killed while freeing a block next to free blocks must lose at most the blocks
/// it held, never the free neighbours it was merging with. The kill has to land inside a
/// merge, a few instructions wide, so one run of 200 rounds catches a leak there in about
/// a third to a half of the runs; the ignored stress variant (1000 rounds) nearly always.
#[test]
fn a_process_killed_while_freeing_loses_only_its_own_block() {
    // The window is a few instructions wide: many short rounds (~6 ms each).
    killed_while_allocating::<ShmTarget>(200, Churn::Tail, 3_000);
}

/// Stress: many more kill rounds. Run with
/// `cargo test -p shmkit-runtime --test multiprocess -- --ignored stress`.
#[test]
#[ignore = "stress: 1200 kill rounds; run with --ignored"]
fn stress_processes_killed_while_allocating() {
    killed_while_allocating::<ShmTarget>(200, Churn::Mixed, 30_000);
    killed_while_allocating::<ShmTarget>(1000, Churn::Tail, 3_000);
}

/// Stress: many more creation races. Run with
/// `cargo test -p shmkit-runtime --test multiprocess -- --ignored stress`.
#[test]
#[ignore = "stress: 300 creation races; run with --ignored"]
fn stress_racing_open_or_create() {
    let mut targets = Vec::new();
    race("shm", 300, || {
        let t = ShmTarget::new();
        let name = t.name_string();
        targets.push(t);
        let n = name.clone();
        (name, move || {
            Seg::<ShmTarget>::open(ShmTarget::parse_name(&n)).unwrap()
        })
    });
}

// ----- (d) a creator killed before its segment was ready ---------------------------------

support::on_both_devices!(a_creator_killed_while_sizing_is_reported_at_once_and_replaced);

/// A creator that holds its claim is waited for, however long it takes to size the device;
/// once it is killed (before sizing, or after sizing but before the header) an opener says
/// so at once, not after the 10 s init timeout, and `open_or_create` makes the segment anew.
fn a_creator_killed_while_sizing_is_reported_at_once_and_replaced<T: Target>() {
    for sized in [0, SIZE] {
        let t = T::new();
        let mut creator = child(
            "segment-claim-and-stall",
            &[
                ("SHMKIT_PATH", t.path().display().to_string()),
                ("SHMKIT_SIZE", sized.to_string()),
            ],
        );
        assert_eq!(creator.expect_message(CHILD_LIMIT), "claimed");
        let limit = Duration::from_millis(300);
        let err = Seg::<T>::options()
            .init_timeout(limit)
            .open(t.name())
            .unwrap_err();
        assert!(
            matches!(err, shmkit_runtime::Error::Timeout { .. }),
            "sized {sized}, creator alive: {err:?}"
        );
        creator.kill();

        let started = Instant::now();
        let err = Seg::<T>::open(t.name()).unwrap_err();
        assert!(
            matches!(err, shmkit_runtime::Error::NotASegment { .. }),
            "sized {sized}, creator dead: {err:?}"
        );
        let seg = Seg::<T>::open_or_create(t.name(), SIZE).expect("made anew");
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "sized {sized}: took {took:?}"
        );
        assert_eq!(seg.size(), SIZE);
        seg.check().unwrap();
        let block = Block::new(&seg, 100, 7);
        drop(seg);
        block.assert_intact(&Seg::<T>::open(t.name()).unwrap());
    }
}
