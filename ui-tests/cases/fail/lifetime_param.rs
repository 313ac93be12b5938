use shmkit::ShmSafe;

#[derive(ShmSafe)]
#[repr(C)]
struct View<'a> {
    data: [u8; 4],
    marker: std::marker::PhantomData<&'a u8>,
}

fn main() {}
