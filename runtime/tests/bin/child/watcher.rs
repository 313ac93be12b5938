//! The writer of the watch tests (`multiprocess/watch.rs`), on the segment named by
//! `SHMKIT_KIND` and `SHMKIT_NAME` (see `on_device!`): what it writes is described in the
//! support module `watch`.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use shmkit_runtime::segment::Device;

use crate::rng::Rng;
use crate::watch::{item_len, item_name, item_value, Progress};
use crate::{tell_parent, Seg};

/// Root updates per round: the counter changes far more often than objects appear.
const UPDATES_PER_ROUND: usize = 16;
/// Raw blocks kept allocated at once (the oldest is freed as a new one comes).
const LIVE_BLOCKS: usize = 64;

/// Maps the segment read-write and, until the parent's signal (or its stdin closing, or
/// SIGKILL), keeps constructing objects, updating the root and allocating and freeing
/// blocks. Says "writing" once the first object is published, and "wrote <n>" at the end.
pub fn write() {
    on_device!(write_on)
}

fn write_on<D: Device>(name: &D::Name) {
    let seg = Seg::<D>::open(name).unwrap();
    let progress = seg.root::<Progress>().unwrap();
    let stop = stop_on_parent_signal();
    let mut rng = Rng::new(Rng::time_seed());
    let mut blocks = VecDeque::with_capacity(LIVE_BLOCKS + 1);
    // Nothing is destroyed (that needs the segment alone): constructing stops while the
    // segment is nearly full, and the rest goes on.
    let reserve = seg.size() / 8;
    let mut built = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if seg.free_memory() > reserve {
            seg.construct_array_with(item_name(built).as_str(), item_len(built), |j| {
                item_value(built, j)
            })
            .unwrap();
            built += 1;
            progress.publish(built);
            if built == 1 {
                tell_parent("writing");
            }
        }
        for _ in 0..UPDATES_PER_ROUND {
            progress.update();
        }
        blocks.push_back(seg.allocate(rng.range(8, 512) as usize).unwrap());
        if blocks.len() > LIVE_BLOCKS {
            let oldest = blocks.pop_front().expect("more than LIVE_BLOCKS");
            // SAFETY: allocated above from this segment, freed once, never used.
            unsafe { seg.deallocate(oldest) }.unwrap();
        }
    }
    tell_parent(&format!("wrote {built}"));
}

/// A flag set when the parent writes a byte to our stdin or closes it (so that a parent
/// that died does not leave this loop running).
fn stop_on_parent_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    std::thread::spawn(move || {
        let _ = std::io::stdin().lock().read(&mut [0u8; 1]);
        flag.store(true, Ordering::Relaxed);
    });
    stop
}
