use shmkit::{ShmMut, ShmSafe};

#[derive(ShmSafe, Default)]
#[repr(C)]
pub struct Point {
    pub x: i32,
    pub y: i32,
}

#[derive(ShmSafe, Default)]
#[repr(C)]
pub struct Rect {
    pub min: Point,
    pub max: Point,
}

#[derive(ShmSafe, Default)]
#[repr(C)]
pub struct Scene {
    pub bounds: Rect,
    pub rects: [Rect; 2],
}

fn main() {
    let mut scene = Scene::default();
    let mut guard = ShmMut::from_mut(&mut scene);
    *guard.bounds_mut().max_mut().x_mut() = 10;
    guard.rects_mut()[1].min.y = -3;
    assert_eq!(scene.bounds.max.x, 10);
    assert_eq!(scene.rects[1].min.y, -3);
    assert_eq!(Scene::SCHEMA.unwrap().fields.len(), 2);
}
