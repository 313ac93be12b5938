//! The children of the seqlock tests (`multiprocess/seqlock.rs`): writers of the
//! `SeqLock<[u64; N]>` named "seq" in the shared memory segment `SHMKIT_NAME`, which write
//! values whose words all agree.

use shmkit_runtime::sync::SeqLock;
use shmkit_runtime::ManagedSharedMemory;

use crate::{env, tell_parent, wait_for_parent};

/// Words of the value the big writer writes: a copy long enough that a SIGKILL at a random
/// time usually lands inside one.
pub const BIG: usize = 4096;
/// Words of the value the other roles write.
pub const SMALL: usize = 16;

fn segment() -> ManagedSharedMemory {
    ManagedSharedMemory::open(env("SHMKIT_NAME")).unwrap()
}

/// Says "writing", then writes `[i; SMALL]` for i = 1, 2, … until SIGKILLed.
pub fn write() {
    let seg = segment();
    let seq = seg.find::<SeqLock<[u64; SMALL]>>("seq").unwrap().unwrap();
    tell_parent("writing");
    for i in 1.. {
        seq.write([i; SMALL]).unwrap();
    }
}

/// As [`write`] with `[u64; BIG]` values, continuing from the value found (a killed
/// writer's torn value is made whole first, from its largest word).
pub fn write_big() {
    let seg = segment();
    let seq = seg.find::<SeqLock<[u64; BIG]>>("seq").unwrap().unwrap();
    let start = match seq.lock() {
        Ok(g) => g[0],
        Err(e) => {
            let mut g = e.into_poisoned().unwrap();
            let v = g.iter().copied().max().unwrap_or_default();
            *g = [v; BIG];
            v
        }
    };
    tell_parent("writing");
    for i in start + 1.. {
        seq.write([i; BIG]).unwrap();
    }
}

/// Enters `update` on the small value, says "updating" with the closure's value changed
/// but not published, and stays there until SIGKILLed.
pub fn stall_in_update() {
    let seg = segment();
    let seq = seg.find::<SeqLock<[u64; SMALL]>>("seq").unwrap().unwrap();
    seq.update(|v| {
        *v = [u64::MAX; SMALL];
        tell_parent("updating");
        wait_for_parent();
    })
    .unwrap();
}
