//! Keys chosen to collide (what a HashDoS attacker sends, the hash being fixed), keys whose
//! `Hash` and `Eq` break their contract, and churn that fills a table with `DELETED`
//! buckets: every operation ends, nothing panics, and dropping frees everything.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use shmkit_containers::{HashMap, HashMapExt};
use shmkit_runtime::{ManagedHeapMemory, PositionIndependent, ShmSafe};
use shmkit_test_support::Rng;

/// A key whose every value hashes alike: one probe sequence, one tag for all.
#[derive(PartialEq, Eq, Debug, Clone, Copy)]
#[repr(transparent)]
struct Colliding(u64);

impl Hash for Colliding {
    fn hash<H: Hasher>(&self, h: &mut H) {
        0u64.hash(h);
    }
}

/// A key whose hash changes at every call and whose equality lies one time in three.
#[derive(Debug)]
#[repr(transparent)]
struct Liar(u64);

static CALLS: AtomicU64 = AtomicU64::new(0);

impl Hash for Liar {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (self.0 ^ CALLS.fetch_add(1, Ordering::Relaxed)).hash(h);
    }
}

impl PartialEq for Liar {
    fn eq(&self, other: &Self) -> bool {
        (self.0 == other.0) != (CALLS.fetch_add(1, Ordering::Relaxed) % 3 == 0)
    }
}

impl Eq for Liar {}

macro_rules! plain_key {
    ($($t:ty),*) => {$(
        // SAFETY: one `u64`.
        unsafe impl ShmSafe for $t {
            const ALL_BIT_PATTERNS_VALID: bool = true;
        }
        // SAFETY: as above.
        unsafe impl PositionIndependent for $t {}
    )*};
}
plain_key!(Colliding, Liar);

#[test]
fn keys_that_all_collide_are_found_inserted_and_removed() {
    let n = if cfg!(miri) { 60 } else { 2000 };
    let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
    seg.construct("m", HashMap::<Colliding, u64>::new())
        .unwrap();
    {
        let mut m = seg
            .find_mut::<HashMap<Colliding, u64>>("m")
            .unwrap()
            .unwrap();
        for i in 0..n {
            assert_eq!(m.insert(Colliding(i), i).unwrap(), None);
        }
        for i in 0..n {
            assert_eq!(m.get(&Colliding(i)), Some(&i));
            assert_eq!(m.get(&Colliding(n + i)), None);
        }
        for i in (0..n).step_by(2) {
            assert_eq!(m.remove(&Colliding(i)), Some(i));
        }
        for i in 0..n {
            assert_eq!(m.contains_key(&Colliding(i)), i % 2 == 1, "{i}");
            assert_eq!(m.insert(Colliding(i), i + 1).unwrap().is_some(), i % 2 == 1);
        }
        assert_eq!(m.len() as u64, n);
    }
    assert!(seg.destroy::<HashMap<Colliding, u64>>("m").unwrap());
    assert!(seg.all_memory_deallocated());
}

#[test]
fn keys_that_break_hash_and_eq_cost_correctness_never_safety() {
    let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
    seg.construct("m", HashMap::<Liar, u64>::new()).unwrap();
    {
        let mut m = seg.find_mut::<HashMap<Liar, u64>>("m").unwrap().unwrap();
        let mut rng = Rng::new(0x11a2);
        for _ in 0..crate::model::OPS / 2 {
            let k = rng.range(0, 64);
            match rng.range(0, 8) {
                0..=2 => {
                    let _ = m.insert(Liar(k), k).unwrap();
                }
                3 => {
                    let _ = m.remove(&Liar(k));
                }
                4 => {
                    let _ = m.get(&Liar(k));
                }
                5 => {
                    let _ = m.entry(Liar(k)).unwrap().or_insert(k).unwrap();
                }
                6 => m.retain(|k, _| k.0 % 5 != 0),
                _ => m.reserve(k as usize).unwrap(),
            }
            assert!(m.iter().count() <= m.capacity());
        }
    }
    assert!(seg.destroy::<HashMap<Liar, u64>>("m").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// Inserting and removing ever new keys leaves `DELETED` buckets behind; the table is
/// cleaned by rehashing (growing once at most, as std's: while more than half full)
/// rather than growing without end.
#[test]
fn churn_rehashes_instead_of_growing() {
    let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
    seg.construct("m", HashMap::<u64, u64>::new()).unwrap();
    let mut m = seg.find_mut::<HashMap<u64, u64>>("m").unwrap().unwrap();
    let live = 100;
    for i in 0..live {
        m.insert(i, i).unwrap();
    }
    let capacity = m.capacity();
    let rounds = if cfg!(miri) { 300 } else { 20_000 };
    for i in live..live + rounds {
        assert_eq!(m.remove(&(i - live)), Some(i - live));
        m.insert(i, i).unwrap();
        assert!(
            m.capacity() <= 2 * capacity,
            "grew to {} at {i}",
            m.capacity()
        );
    }
    assert_eq!(m.len() as u64, live);
    assert!((rounds..rounds + live).all(|k| m.get(&k) == Some(&k)));
}
