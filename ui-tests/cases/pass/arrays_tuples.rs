use shmkit::{PositionIndependent, ShmMut, ShmSafe};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(ShmSafe, Default)]
#[repr(C)]
pub struct Stats {
    pub histogram: [[u32; 4]; 2],
    pub pair: (u8, u64),
    pub nested: ((i8, i16), [bool; 3]),
    pub counter: AtomicU64,
    pub unit: (),
}

#[derive(ShmSafe)]
#[repr(C)]
pub struct Tuple(pub u8, pub [f64; 2]);

#[derive(ShmSafe)]
#[repr(transparent)]
pub struct Id(pub u64);

fn assert_pi<T: PositionIndependent>() {}

fn main() {
    assert_pi::<Stats>();
    assert_pi::<Tuple>();
    assert_pi::<Id>();
    let mut stats = Stats::default();
    let mut guard = ShmMut::from_mut(&mut stats);
    guard.histogram_mut()[1][3] = 7;
    guard.pair_mut().1 = 9;
    guard.counter_mut().fetch_add(2, Ordering::Relaxed);
    assert_eq!(stats.histogram[1][3], 7);
    assert_eq!(stats.counter.load(Ordering::Relaxed), 2);
}
