// `#[shm(crate = "..")]`: the expansions name the runtime through a renamed dependency or a
// re-export instead of `::shmkit`.
extern crate shmkit as my_shm;

mod reexport {
    pub use ::shmkit as inner;
}

use my_shm::{ManagedHeapMemory, OffsetPtr, PositionIndependent, ShmRoot, ShmSafe};

#[derive(my_shm::ShmSafe, Default)]
#[shm(crate = "my_shm")]
#[repr(C)]
pub struct Point {
    pub x: u32,
    pub y: u32,
}

#[derive(my_shm::ShmSafe)]
#[shm(crate = "crate::reexport::inner")]
#[repr(u8)]
pub enum Link {
    Empty,
    To(OffsetPtr<Point>),
}

#[my_shm::shm_segment(name = "renamed")]
#[shm(crate = "my_shm")]
#[derive(Default)]
pub struct Db {
    pub origin: Point,
    pub first: *const Point,
    pub hits: u64,
}

fn assert_pi<T: PositionIndependent>() {}

fn main() {
    assert_pi::<Point>();
    assert_eq!(<Link as ShmSafe>::SCHEMA.unwrap().variants.len(), 2);
    assert_eq!(<Db as ShmRoot>::ROOT_NAME, "renamed");
    // The crate path is not part of the schema: the type reads the same under any name.
    assert_eq!(<Db as ShmRoot>::ROOT_SCHEMA.fields[1].ty, "OffsetPtr<Point>");

    let mut segment = ManagedHeapMemory::new(1 << 16).unwrap();
    {
        let mut db = segment.root_mut::<Db>().unwrap();
        db.origin_mut().x = 3;
    }
    assert_eq!(segment.root::<Db>().unwrap().origin.x, 3);
}
