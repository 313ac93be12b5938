//! Groups `pingpong`, `pingpong_samecpu` (the peer's) and `handoff_latency` (ours): a
//! `Mutex` + `Condvar` hand-off between two processes.
//!
//! As the peer: a fresh 512 MiB segment holds `{ Mutex<{ counter, ready }>, Condvar }`.
//! The parent forks; the child opens the segment by name (a mapping of its own), finds the
//! struct, sets `ready` and notifies under the lock; the parent waits for `ready` before
//! the clock starts. Then N = 100,000 times, the parent: lock; wait while `counter` is
//! odd; `counter += 1`; unlock; `notify_one`. The child likewise waits while `counter` is
//! even. The parent waits for `counter == 2N` and the clock stops. ns/op is per round
//! trip. `pingpong_samecpu` pins the parent to the lowest CPU of its affinity mask before
//! the fork (the child inherits it).
//!
//! Not in the peer: a `# cpu` line after each, the user+system CPU time of both processes
//! during the hand-offs per round trip (`getrusage`: the parent's own over the timed
//! region, the child's whole life after `waitpid`), so that time spent spinning shows.
//!
//! `handoff_latency`: the same hand-off, unpinned, where each side also notes the time
//! (`CLOCK_MONOTONIC`) just before it unlocks, and the other side how long after that it
//! holds the lock with its turn. The line gives the mean per hand-off (2N of them); `#`
//! lines give p50, p99, p99.9 and the maximum of each direction, and how many hand-offs
//! took 1 ms or more (a lost wake-up, noticed at a 10 ms poll, would show there).

use shmkit::sync::{Condvar, LockResult, Mutex, MutexGuard};
use shmkit::ShmSafe;

use crate::check_eq;
use crate::process::{self, cpu_time, monotonic_ns, PinnedToLowestCpu, Who};
use crate::segment::{Segment, ShmGuard, SEG_SIZE};
use crate::timing::{format_line, now, print_line, report, secs};

const ROUNDS: u64 = 100_000;
const NAME: &str = "pp";

/// What the two processes share.
#[derive(ShmSafe, Default)]
#[repr(C)]
struct PingPong {
    state: Mutex<State>,
    cv: Condvar,
}

#[derive(ShmSafe, Default)]
#[repr(C)]
struct State {
    /// Odd: the child's turn; even: the parent's.
    counter: u64,
    /// When the last side to pass the token unlocked (`handoff_latency`).
    passed_at: u64,
    /// The child's hand-off latencies, written before it exits (`handoff_latency`).
    child_latency: Percentiles,
    ready: bool,
}

/// Latency percentiles in nanoseconds.
#[derive(ShmSafe, Default, Clone, Copy)]
#[repr(C)]
struct Percentiles {
    mean: u64,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
    /// How many took 1 ms or more, of how many.
    slow: u64,
    count: u64,
}

impl Percentiles {
    fn of(mut ns: Vec<u64>) -> Self {
        ns.sort_unstable();
        let at = |per_mille: usize| ns[(ns.len() * per_mille / 1000).min(ns.len() - 1)];
        Percentiles {
            mean: ns.iter().sum::<u64>() / ns.len() as u64,
            p50: at(500),
            p99: at(990),
            p999: at(999),
            max: ns[ns.len() - 1],
            slow: ns.iter().filter(|&&t| t >= 1_000_000).count() as u64,
            count: ns.len() as u64,
        }
    }

    fn line(&self, direction: &str) -> String {
        format!(
            "# handoff_latency {direction}: mean {} ns, p50 {} ns, p99 {} ns, p99.9 {} ns, \
             max {} ns, {} of {} at 1 ms or more",
            self.mean, self.p50, self.p99, self.p999, self.max, self.slow, self.count
        )
    }
}

/// What the workload records besides the hand-off itself.
#[derive(Clone, Copy, PartialEq)]
enum Record {
    Nothing,
    Latency,
}

pub fn run() {
    pingpong("pingpong", false);
}

pub fn run_samecpu() {
    pingpong("pingpong_samecpu", true);
}

pub fn run_handoff_latency() {
    let line = "handoff_latency";
    let guard = ShmGuard::new(line);
    let seg = guard.create_prefaulted(SEG_SIZE);
    let (seconds, _, parent) = hand_off(&guard, &seg, Record::Latency);
    let child = lock(&find(&seg).state).child_latency;
    report(line, 2 * ROUNDS, seconds);
    print_line(&parent.line("child to parent"));
    print_line(&child.line("parent to child"));
}

fn pingpong(line: &str, same_cpu: bool) {
    let guard = ShmGuard::new(line);
    let seg = guard.create_prefaulted(SEG_SIZE);
    let pinned = same_cpu.then(PinnedToLowestCpu::new);
    let (seconds, cpu, _) = hand_off(&guard, &seg, Record::Nothing);
    drop(pinned);
    report(line, ROUNDS, seconds);
    print_line(&format!(
        "# cpu {} (user+system of both processes)",
        format_line(line, ROUNDS, cpu)
    ));
}

/// Runs the timed hand-offs with a forked child; the wall seconds, the CPU seconds of both
/// processes, and the parent's latencies if recorded.
fn hand_off(guard: &ShmGuard, seg: &Segment, record: Record) -> (f64, f64, Percentiles) {
    let pp = match seg.construct(NAME, PingPong::default()) {
        Ok(pp) => pp,
        Err(e) => panic!("construct {NAME:?} failed: {e}"),
    };
    let children_before = cpu_time(Who::Children);
    let child = process::fork(|| child(guard.name(), record));

    drop(relocked(pp.cv.wait_while(lock(&pp.state), |s| !s.ready)));
    let cpu0 = cpu_time(Who::This);
    let t0 = now();
    let latencies = side(pp, 0, record);
    let g = relocked(
        pp.cv
            .wait_while(lock(&pp.state), |s| s.counter != 2 * ROUNDS),
    );
    let t1 = now();
    let cpu1 = cpu_time(Who::This);
    drop(g);
    child.wait();
    let child_cpu = cpu_time(Who::Children) - children_before;
    check_eq!(lock(&pp.state).counter, 2 * ROUNDS);
    let cpu = (cpu1 - cpu0 + child_cpu).as_secs_f64();
    let percentiles = match latencies {
        Some(l) => Percentiles::of(l),
        None => Percentiles::default(),
    };
    (secs(t0, t1), cpu, percentiles)
}

/// The child: its own mapping, found by name; says it is ready, then plays its side.
fn child(name: &str, record: Record) {
    let seg = match Segment::open(name) {
        Ok(seg) => seg,
        Err(e) => panic!("the child cannot open {name:?}: {e}"),
    };
    let pp = find(&seg);
    {
        let mut g = lock(&pp.state);
        g.ready = true;
        pp.cv.notify_one();
    }
    if let Some(latencies) = side(pp, 1, record) {
        lock(&pp.state).child_latency = Percentiles::of(latencies);
    }
}

/// One side's `ROUNDS` turns: waits for `counter % 2 == parity`, passes the token on.
fn side(pp: &PingPong, parity: u64, record: Record) -> Option<Vec<u64>> {
    let mut latencies = (record == Record::Latency).then(|| Vec::with_capacity(ROUNDS as usize));
    for _ in 0..ROUNDS {
        let mut g = relocked(
            pp.cv
                .wait_while(lock(&pp.state), |s| s.counter & 1 != parity),
        );
        g.counter += 1;
        if let Some(latencies) = &mut latencies {
            let t = monotonic_ns();
            // The first turn has nothing handed to it.
            if g.passed_at != 0 {
                latencies.push(t.saturating_sub(g.passed_at));
            }
            g.passed_at = monotonic_ns();
        }
        drop(g);
        pp.cv.notify_one();
    }
    latencies
}

fn find(seg: &Segment) -> &PingPong {
    match seg.find::<PingPong>(NAME) {
        Ok(Some(pp)) => pp,
        Ok(None) => panic!("no {NAME:?} in the segment"),
        Err(e) => panic!("find {NAME:?} failed: {e}"),
    }
}

/// Locks, checking that nothing failed or poisoned it.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    relocked(state.lock())
}

/// The guard, checking that nothing failed or poisoned the lock.
fn relocked(result: LockResult<MutexGuard<'_, State>>) -> MutexGuard<'_, State> {
    result.unwrap_or_else(|e| panic!("locking failed: {e}"))
}
