//! `Semaphore` between real processes (the children are the helper binary's `semaphore-*`
//! roles, `tests/bin/child/semaphore.rs`): no lost wake-up in a ping-pong, a waiter killed
//! while it sleeps neither blocks the others nor takes their posts (a kill loop), and a unit
//! taken by a killed process stays taken, as documented.

use std::time::{Duration, Instant};

use shmkit_runtime::sync::{Semaphore, LIVENESS_POLL};
use shmkit_runtime::ManagedSharedMemory;
use shmkit_test_support::{spawn_child, ChildProc, Rng, ShmGuard};

const LIMIT: Duration = Duration::from_secs(20);
/// How soon a live waiter must have a unit that is there for it.
const HANDOVER: Duration = Duration::from_secs(2);

fn segment(name: &ShmGuard) -> ManagedSharedMemory {
    ManagedSharedMemory::create(name.get(), 64 * 1024).unwrap()
}

fn child(name: &ShmGuard, role: &str, extra: &[(&str, String)]) -> ChildProc {
    let mut envs = vec![("SHMKIT_NAME", name.get().to_owned())];
    envs.extend(extra.iter().cloned());
    spawn_child(env!("CARGO_BIN_EXE_shmkit-test-child"), role, &envs)
}

#[test]
fn a_ping_pong_between_processes_loses_no_wake_up() {
    let name = ShmGuard::new();
    let seg = segment(&name);
    let ping = seg.construct("ping", Semaphore::new(0)).unwrap();
    let pong = seg.construct("pong", Semaphore::new(0)).unwrap();
    let rounds = 2_000;
    let mut c = child(
        &name,
        "semaphore-pong",
        &[("SHMKIT_ROUNDS", rounds.to_string())],
    );
    let started = Instant::now();
    for i in 0..rounds {
        ping.post().unwrap();
        assert!(pong.wait_timeout(LIMIT), "no pong {i}");
    }
    let took = started.elapsed();
    c.assert_success(LIMIT);
    // A lost wake-up costs the sleeper its whole poll.
    assert!(
        took < LIVENESS_POLL * rounds / 8,
        "{rounds} round trips took {took:?}: wake-ups were lost"
    );
}

/// 50 rounds: two children sleep on an empty semaphore, one is SIGKILLed (at a random
/// moment of its sleep), then a post: the survivor gets it. A kill that lands between the
/// victim's wake-up and its taking the unit leaves the unit counted, and the survivor's
/// poll finds it; only a victim that took the unit before dying keeps it (then the count
/// is 0 and a second post goes to the survivor).
#[test]
fn a_killed_waiter_neither_blocks_the_others_nor_takes_their_posts() {
    let name = ShmGuard::new();
    let seg = segment(&name);
    let sem = seg.construct("sem", Semaphore::new(0)).unwrap();
    let seed = Rng::time_seed();
    eprintln!("seed {seed}");
    let mut rng = Rng::new(seed);
    let mut units_lost = 0;
    for round in 0..50 {
        let mut victim = child(&name, "semaphore-wait", &[]);
        let mut survivor = child(&name, "semaphore-wait", &[]);
        assert_eq!(victim.expect_message(LIMIT), "waiting");
        assert_eq!(survivor.expect_message(LIMIT), "waiting");
        std::thread::sleep(Duration::from_micros(rng.range(0, 3_000)));
        // Half the rounds post first, so that the kill may land on a waiter being woken.
        let post_first = rng.range(0, 2) == 0;
        if post_first {
            sem.post().unwrap();
        }
        victim.kill();
        if !post_first {
            sem.post().unwrap();
        }
        let got = match survivor.next_message(HANDOVER) {
            Ok(msg) => msg,
            Err(_) => {
                // Only the victim can have taken the unit.
                assert_eq!(
                    sem.value(),
                    0,
                    "round {round}: a unit is free, yet no waiter has it"
                );
                units_lost += 1;
                sem.post().unwrap();
                survivor.expect_message(HANDOVER)
            }
        };
        assert_eq!(got, "got", "round {round}");
        survivor.release();
        survivor.assert_success(LIMIT);
        assert!(
            sem.wait_timeout(LIMIT),
            "round {round}: the survivor posted back"
        );
        assert_eq!(sem.value(), 0, "round {round}");
    }
    eprintln!("units taken by a victim before its death: {units_lost} of 50");
}

/// 50 rounds: a child takes the one unit and is SIGKILLed holding it. The unit is gone (a
/// semaphore has no owner to take over from), and the semaphore goes on working.
#[test]
fn a_unit_held_by_a_killed_process_is_not_given_back() {
    let name = ShmGuard::new();
    let seg = segment(&name);
    let sem = seg.construct("sem", Semaphore::new(1)).unwrap();
    for round in 0..50 {
        let mut holder = child(&name, "semaphore-wait", &[]);
        assert_eq!(holder.expect_message(LIMIT), "waiting");
        assert_eq!(holder.expect_message(LIMIT), "got");
        holder.kill();
        assert_eq!(sem.value(), 0, "round {round}");
        if round == 0 {
            assert!(
                !sem.wait_timeout(4 * LIVENESS_POLL),
                "nothing gives a dead holder's unit back"
            );
        }
        sem.post().unwrap();
    }
    assert_eq!(sem.value(), 1);
}
