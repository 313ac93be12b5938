use shmkit::{shm_segment, ManagedHeapMemory, OffsetPtr, ShmRoot};

#[derive(shmkit::ShmSafe, Default)]
#[repr(C)]
pub struct Point {
    pub x: u32,
    pub y: u32,
}

// `*const T` / `*mut T` become `OffsetPtr<T>`; `#[repr(C)]` is added.
#[shm_segment(name = "app")]
#[derive(Default)]
pub struct Db {
    pub hits: u64,
    pub origin: Point,
    pub first: *const u64,
    pub slots: [*mut Point; 2],
}

fn main() {
    let db = Db::default();
    let _: &OffsetPtr<u64> = &db.first;
    let _: &[OffsetPtr<Point>; 2] = &db.slots;
    assert_eq!(Db::ROOT_NAME, "app");
    assert_eq!(Db::ROOT_SCHEMA.fields[2].ty, "OffsetPtr<u64>");

    let mut segment = ManagedHeapMemory::new(1 << 16).unwrap();
    let value = segment.construct("value", 5u64).unwrap() as *const u64;
    {
        let mut root = segment.root_mut::<Db>().unwrap();
        *root.hits_mut() += 1;
        root.first_mut().set_target(value).unwrap();
    }
    let root = segment.root::<Db>().unwrap();
    assert_eq!(root.hits, 1);
    // SAFETY: aims at the live object "value".
    assert_eq!(unsafe { *root.first.get() }, 5);
}
