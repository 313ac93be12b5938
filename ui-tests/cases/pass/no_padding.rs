// `#[derive(NoPadding)]` on structs without padding (nested, arrays, transparent, unit,
// `Self` in a field type, a where clause) and on fieldless enums, under a renamed crate.
extern crate shmkit as my_shm;

use my_shm::{NoPadding, ShmSafe};

#[derive(ShmSafe, NoPadding, Clone, Copy)]
#[shm(crate = "my_shm")]
#[repr(u8)]
enum Op {
    Get = 1,
    Put,
    Del = 9,
}

#[derive(ShmSafe, NoPadding)]
#[repr(C)]
struct Entry {
    op: Op,
    flags: [u8; 3],
    key: u32,
    marks: [[u16; 2]; 2],
    of: std::marker::PhantomData<Self>,
}

#[derive(my_shm::ShmSafe, my_shm::NoPadding)]
#[shm(crate = "my_shm")]
#[repr(transparent)]
struct Batch([Entry; 4]);

#[derive(ShmSafe, NoPadding)]
#[repr(C)]
struct Empty
where
    u8: Copy;

fn send<T: NoPadding>(value: &T) -> usize {
    let _ = value;
    std::mem::size_of::<T>()
}

fn main() {
    assert_eq!(send(&Op::Put), 1);
    assert_eq!(std::mem::size_of::<Entry>(), 16);
    assert_eq!(std::mem::size_of::<Batch>(), 64);
    assert_eq!(send(&Empty), 0);
    let _ = (Op::Get, Op::Del);
}
