//! The other process of the inspector's tests (see `shmkit_test_support::spawn_child`):
//! role `hold` opens the shared memory segment named in `SHMKIT_SEGMENT`, takes its
//! segment lock, says `locked` and waits there until it is killed; role `cache` opens it,
//! constructs and destroys small objects (their blocks stay in this thread's cache in a
//! segment of 16 MiB or more), says `cached` and waits to be killed; role `write PATH`
//! creates a file segment at PATH holding objects of types only this program defines
//! (nested structs, enums, arrays of them), so that the inspector has nothing but the
//! schemas stored in the segment to read them by; role `containers PATH` a file segment
//! whose object `inventory` holds each kind of container and a `Mutex`, and role
//! `hold-mutex` opens the segment `SHMKIT_SEGMENT`, takes the `Mutex` of the `Guarded`
//! named `guard`, says `locked` and waits there until it is killed.

use std::io::Write as _;

use shmkit::containers::{HashMap, List, Map, String, Vec};
use shmkit::prelude::*;
use shmkit::sync::Mutex;
use shmkit::ShmSafe;

#[derive(ShmSafe, Clone, Copy)]
#[repr(C)]
struct Point {
    x: i32,
    y: i32,
}

#[derive(ShmSafe, Clone, Copy)]
#[repr(u8)]
enum Shape {
    Empty,
    Circle { center: Point, radius: f32 },
    Rect(Point, Point),
}

#[derive(ShmSafe, Clone, Copy)]
#[repr(C, u16)]
enum Tagged {
    Small(u8),
    Large { value: u64, ok: bool },
}

#[derive(ShmSafe)]
#[repr(C)]
struct Scene {
    id: u16,
    shapes: [Shape; 3],
    origin: Point,
    tag: Tagged,
    flags: [bool; 2],
}

fn write(path: &str) {
    let seg = shmkit::ManagedMappedFile::create(path, 1 << 16).expect("create the segment");
    let p = |x, y| Point { x, y };
    seg.construct(
        "scene",
        Scene {
            id: 7,
            shapes: [
                Shape::Circle {
                    center: p(1, -2),
                    radius: 0.5,
                },
                Shape::Empty,
                Shape::Rect(p(0, 0), p(3, 4)),
            ],
            origin: p(10, 20),
            tag: Tagged::Large {
                value: 99,
                ok: true,
            },
            flags: [true, false],
        },
    )
    .expect("scene");
    seg.construct_array("points", 2, p(5, 6)).expect("points");
    seg.construct("small", Tagged::Small(3)).expect("small");
    seg.construct_anonymous(Shape::Empty).expect("anonymous");
}

#[derive(ShmSafe, Default)]
#[repr(C)]
struct Inventory {
    ids: Vec<u32>,
    label: String,
    route: List<Point>,
    prices: Map<u32, i64>,
    stock: HashMap<String, u16>,
    recent: Mutex<Vec<u8>>,
}

/// Builds `inventory` through an exclusive mapping: bare containers change through
/// `&mut` only.
fn containers(path: &str) {
    let mut seg = shmkit::ManagedMappedFile::options()
        .exclusive()
        .create(path, 1 << 20)
        .expect("create the segment");
    seg.construct("inventory", Inventory::default())
        .expect("inventory");
    let mut inv = seg
        .find_mut::<Inventory>("inventory")
        .expect("find")
        .expect("inventory");
    inv.ids_mut().extend([3, 1, 4, 1, 5]).expect("ids");
    inv.label_mut().push_str("crème brûlée").expect("label");
    for (x, y) in [(1, 2), (3, 4), (5, 6)] {
        inv.route_mut().push_back(Point { x, y }).expect("route");
    }
    for k in [30, 10, 20] {
        inv.prices_mut().insert(k, -i64::from(k)).expect("prices");
    }
    for (k, v) in [("apples", 7), ("pears", 0)] {
        inv.stock_mut().insert(k, v).expect("stock");
    }
    let inv = seg
        .find::<Inventory>("inventory")
        .expect("find")
        .expect("inventory");
    inv.recent.lock().expect("lock").push(9).expect("recent");
}

/// As the inspector's test declares it: the same name and layout, so the same fingerprint.
#[derive(ShmSafe)]
#[repr(C)]
struct Guarded {
    count: Mutex<u32>,
}

fn hold_mutex() {
    let name = std::env::var("SHMKIT_SEGMENT").expect("SHMKIT_SEGMENT names the segment");
    let segment = shmkit::ManagedSharedMemory::open(name.as_str()).expect("open the segment");
    let guard = segment
        .find::<Guarded>("guard")
        .expect("find")
        .expect("guard");
    let _held = guard.count.lock().expect("take the mutex");
    println!("locked");
    std::io::stdout().flush().expect("stdout");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

fn main() {
    let role = std::env::args().nth(1).unwrap_or_default();
    match role.as_str() {
        "write" => return write(&std::env::args().nth(2).expect("write PATH")),
        "containers" => return containers(&std::env::args().nth(2).expect("containers PATH")),
        "hold-mutex" => return hold_mutex(),
        _ => {}
    }
    let name = std::env::var("SHMKIT_SEGMENT").expect("SHMKIT_SEGMENT names the segment");
    match role.as_str() {
        "hold" => hold(&name),
        "cache" => cache(&name),
        _ => panic!("unknown role `{role}`"),
    }
}

fn hold(name: &str) {
    let segment = shmkit::ManagedSharedMemory::open(name).expect("open the segment");
    segment
        .with_lock(|| {
            say("locked");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        })
        .expect("take the segment lock");
}

fn cache(name: &str) {
    let mut segment = shmkit::ManagedSharedMemory::open(name).expect("open the segment");
    for i in 0..64u64 {
        segment
            .construct(format!("t{i}").as_str(), i)
            .expect("construct");
    }
    for i in 0..64u64 {
        segment
            .destroy::<u64>(format!("t{i}").as_str())
            .expect("destroy");
    }
    say("cached");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

fn say(what: &str) {
    println!("{what}");
    std::io::stdout().flush().expect("stdout");
}
