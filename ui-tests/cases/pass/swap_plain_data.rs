use shmkit::{ShmMut, ShmSafe};

#[derive(ShmSafe, Default)]
#[repr(C)]
pub struct Point {
    pub x: u32,
    pub y: u32,
}

// Plain data may be swapped and replaced freely: its bytes mean the same anywhere.
fn main() {
    let (mut a, mut b) = (Point { x: 1, y: 2 }, Point { x: 3, y: 4 });
    {
        let (mut ga, mut gb) = (ShmMut::from_mut(&mut a), ShmMut::from_mut(&mut b));
        std::mem::swap(&mut *ga.x_mut(), &mut *gb.x_mut());
        let old = std::mem::replace(&mut *ga, Point::default());
        assert_eq!((old.x, old.y), (3, 2));
    }
    assert_eq!((a.x, b.x), (0, 1));
}
