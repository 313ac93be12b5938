use shmkit::{OffsetPtr, PositionIndependent, ShmSafe};

#[derive(ShmSafe, Clone, Copy, PartialEq, Debug)]
#[repr(u8)]
pub enum Color {
    Red,
    Green = 5,
}

#[derive(ShmSafe)]
#[repr(C, u32)]
pub enum Shape {
    Dot,
    Circle { radius: f32 },
    Poly([u16; 3], Color),
}

#[derive(ShmSafe)]
#[repr(i16)]
pub enum Link {
    None,
    Next(OffsetPtr<u64>),
}

fn assert_pi<T: PositionIndependent>() {}
fn assert_shm<T: ShmSafe>() {}

fn main() {
    assert_pi::<Color>();
    assert_pi::<Shape>();
    assert_shm::<Link>();
    let _ = [Shape::Dot, Shape::Circle { radius: 1.0 }, Shape::Poly([0; 3], Color::Red)];
    let _ = (Link::None, Link::Next(OffsetPtr::null()));
    assert_eq!(Color::SCHEMA.unwrap().variants.len(), 2);
}
