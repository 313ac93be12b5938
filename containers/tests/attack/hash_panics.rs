//! A key whose `Hash` panics in the middle of a table's growth: the old table keeps every
//! element, so the map must stay usable, and its bytes must stay a map that a later
//! (cold) opener accepts.

use std::cell::Cell;
use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};

use shmkit_containers::{HashMap, HashMapExt, Vec};
use shmkit_macros::ShmSafe;
use shmkit_runtime::ManagedHeapMemory;

thread_local! {
    /// Hash calls left before one panics (None: never).
    static FUSE: Cell<Option<u32>> = const { Cell::new(None) };
}

#[derive(ShmSafe, PartialEq, Eq, Clone, Copy, Debug)]
#[shm(crate = "crate::shm")]
#[repr(C)]
pub struct Key {
    pub k: u64,
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        if let Some(n) = FUSE.get() {
            if n == 0 {
                FUSE.set(None);
                panic!("a Hash that panics");
            }
            FUSE.set(Some(n - 1));
        }
        self.k.hash(state);
    }
}

type M = HashMap<Key, Vec<u64>>;

/// Three elements with vectors as values (a full 4-bucket table); a fourth insertion grows
/// the table, and the second key hashed during the move panics: the first element's
/// vector was already relocated into the new table (its buffer's owner tag rewritten to
/// name the new bucket), then the new table is freed. The old table still owns the
/// element, but its buffer's tag names a bucket of a freed block: a cold copy refuses the
/// whole map.
#[test]
fn a_hash_that_panics_while_the_table_grows_leaves_a_map_a_copy_accepts() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("m", M::new()).unwrap();
    {
        let mut m = seg.find_mut::<M>("m").unwrap().unwrap();
        for k in 0..3 {
            m.insert_with(Key { k }, [k, k + 1], |_| ()).unwrap();
        }
        assert_eq!(m.capacity(), 3);
        FUSE.set(Some(1));
        let r = catch_unwind(AssertUnwindSafe(|| {
            let _ = m.insert_with(Key { k: 3 }, [3u64], |_| ());
        }));
        FUSE.set(None);
        assert!(r.is_err(), "the Hash panicked");
        // In place, the map is fine.
        assert_eq!(m.len(), 3);
        for k in 0..3 {
            assert_eq!(&m[&Key { k }][..], &[k, k + 1]);
        }
    }
    let copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    let found = copy.find::<M>("m");
    assert!(
        matches!(found, Ok(Some(_))),
        "a map that safe code left must open: {:?}",
        found.err()
    );
    let m = copy.find::<M>("m").unwrap().unwrap();
    for k in 0..3 {
        assert_eq!(&m[&Key { k }][..], &[k, k + 1]);
    }
}
