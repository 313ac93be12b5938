//! The segment `Vec` end to end: `#[shm_segment]` rewrites std's `Vec` in field position
//! (also nested and inside a lock), a derived struct takes `Vec` bare after a `use`, and
//! the derive's accessors work on a `ShmMut` and on a lock guard alike.
use shmkit::containers::Vec as ShmVec;
use shmkit::prelude::*;
use shmkit::sync::Mutex;
use shmkit::{shm_segment, ManagedHeapMemory, ShmSafe};

mod derived {
    use shmkit::containers::Vec;

    #[derive(shmkit::ShmSafe, Default)]
    #[repr(C)]
    pub struct Order {
        pub id: u64,
        pub lines: Vec<u32>,
    }
}
use derived::{Order, OrderFields};

#[shm_segment]
#[derive(Default)]
struct Db {
    hits: u64,
    items: Vec<u64>,
    matrix: std::vec::Vec<Vec<u8>>,
    orders: ShmVec<Order>,
    shared: Mutex<Vec<u64>>,
    current: Mutex<Order>,
}

fn record(db: &Db, amount: u64) -> shmkit::Result<()> {
    db.shared.lock()?.push(amount)?;
    db.current.lock()?.lines_mut().push(amount as u32)?;
    Ok(())
}

fn main() -> shmkit::Result<()> {
    let mut seg = ManagedHeapMemory::new(1 << 20)?;
    {
        let mut db = seg.root_mut::<Db>()?;
        *db.hits_mut() += 1;
        db.items_mut().extend([3, 1, 2])?;
        db.items_mut().sort();
        db.matrix_mut().push(ShmVec::new())?;
        db.matrix_mut().last_mut().unwrap().extend_from_slice(b"row")?;
        db.orders_mut().push(Order::default())?;
        let mut order = db.orders_mut();
        let mut first = order.first_mut().unwrap();
        *first.id_mut() = 7;
        first.lines_mut().push(9)?;
    }
    let db = seg.root::<Db>()?;
    record(db, 5)?;
    assert_eq!(db.items, [1, 2, 3]);
    assert_eq!(db.matrix[0], *b"row");
    assert_eq!((db.orders[0].id, db.orders[0].lines.as_slice()), (7, &[9][..]));
    assert_eq!(*db.shared.lock()?, [5]);
    assert_eq!(db.current.lock()?.lines, [5]);
    fn assert_shm_safe<T: ShmSafe>() {}
    assert_shm_safe::<Db>();
    Ok(())
}
