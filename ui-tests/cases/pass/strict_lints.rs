// The expansions add no warning under strict lints in the user's crate.
#![deny(warnings, missing_docs, unsafe_op_in_unsafe_fn, unused_qualifications)]
//! A crate that documents everything.

use shmkit::{shm_segment, NoPadding, OffsetPtr, ShmSafe};

/// A point.
#[derive(ShmSafe, Default)]
#[repr(C)]
pub struct Point {
    /// Across.
    pub x: u32,
    /// Down.
    pub y: u32,
    hidden: u8,
}

/// A link.
#[derive(ShmSafe)]
#[repr(u8)]
pub enum Link {
    /// Nothing.
    Empty,
    /// Somewhere.
    To(OffsetPtr<Point>),
}

/// A sample, sent as bytes.
#[derive(ShmSafe, NoPadding)]
#[repr(C)]
pub struct Sample {
    /// Which.
    pub kind: Kind,
    /// Value.
    pub value: [u8; 3],
}

/// A kind.
#[derive(ShmSafe, NoPadding)]
#[repr(u8)]
pub enum Kind {
    /// One.
    One,
}

/// The root.
#[shm_segment]
#[derive(Default)]
pub struct Db {
    /// Where.
    pub origin: Point,
    /// Next.
    pub next: *const Point,
}

fn main() {
    let mut segment = shmkit::ManagedHeapMemory::new(1 << 16).unwrap();
    let mut db = segment.root_mut::<Db>().unwrap();
    let mut origin = db.origin_mut();
    origin.hidden = 1;
    let _ = Link::Empty;
    let _ = Sample {
        kind: Kind::One,
        value: [0; 3],
    };
}
