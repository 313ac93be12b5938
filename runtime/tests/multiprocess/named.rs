//! Named synchronisation objects between real processes (the children are the helper
//! binary's `named-*` roles, `tests/bin/child/named.rs`): a process SIGKILLed holding a
//! named mutex leaves it to the next locker poisoned (a kill loop), and processes racing to
//! `open_or_create` one named mutex share it and exclude each other.

use std::time::{Duration, Instant};

use shmkit_runtime::sync::{Mutex, Named, NamedMutex, PoisonCause, TryLockError, LIVENESS_POLL};
use shmkit_test_support::{spawn_child, ChildProc, Rng, ShmGuard};

const LIMIT: Duration = Duration::from_secs(20);

fn child(name: &ShmGuard, role: &str, extra: &[(&str, String)]) -> ChildProc {
    let mut envs = vec![("SHMKIT_NAME", name.get().to_owned())];
    envs.extend(extra.iter().cloned());
    spawn_child(env!("CARGO_BIN_EXE_shmkit-test-child"), role, &envs)
}

/// 50 rounds: a child opens the named mutex, locks it and is SIGKILLed holding it; this
/// process, waiting in `lock_timeout` meanwhile, gets it poisoned (`OwnerDied`) soon after.
#[test]
fn a_process_killed_holding_a_named_mutex_leaves_it_poisoned() {
    let name = ShmGuard::new();
    let m = NamedMutex::create(name.get()).unwrap();
    let seed = Rng::time_seed();
    eprintln!("seed {seed}");
    let mut rng = Rng::new(seed);
    let mut slowest = Duration::ZERO;
    for round in 0..50 {
        let mut holder = child(&name, "named-mutex-hold", &[]);
        assert_eq!(holder.expect_message(LIMIT), "locked");
        assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)));
        let delay = Duration::from_micros(rng.range(0, 5_000));
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let started = Instant::now();
                let got = match m.lock_timeout(LIMIT) {
                    Err(TryLockError::Poisoned(p)) => Ok(p.cause()),
                    other => Err(format!("{other:?}")),
                };
                (got, started.elapsed())
            });
            std::thread::sleep(delay);
            let killed = Instant::now();
            holder.kill();
            let (got, _) = waiter.join().unwrap();
            assert_eq!(got, Ok(PoisonCause::OwnerDied), "round {round}");
            slowest = slowest.max(killed.elapsed());
        });
        m.clear_poison();
    }
    eprintln!("slowest takeover after the kill: {slowest:?}");
    assert!(slowest < 100 * LIVENESS_POLL, "{slowest:?}");
    assert!(m.lock().is_ok());
}

#[test]
fn processes_racing_to_open_or_create_share_one_mutex() {
    let name = ShmGuard::new();
    let rounds = 2_000u64;
    let mut children: Vec<_> = (0..4)
        .map(|_| {
            child(
                &name,
                "named-count",
                &[("SHMKIT_ROUNDS", rounds.to_string())],
            )
        })
        .collect();
    for c in &mut children {
        assert_eq!(c.expect_message(LIMIT), "counting");
    }
    for c in &mut children {
        c.assert_success(LIMIT);
    }
    let counter = Named::<Mutex<u64>>::open(name.get()).unwrap();
    let total = *counter.lock().unwrap();
    assert_eq!(total, 4 * rounds);
}
