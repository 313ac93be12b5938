// The derive assumes that a field naming the type itself adds no interior mutability. Here
// the name only picks, inside a const argument, which type the field has: for the real
// type an atomic, for the derive's stand-in a `u64`. The type must not be `ShmImmutable`
// (a read-only mapping would lend its atomic over read-only bytes).
use std::sync::atomic::AtomicU64;

use shmkit::{ShmImmutable, ShmSafe};

pub struct Cond<const B: bool>;
pub trait Pick {
    type T;
}
impl Pick for Cond<true> {
    type T = AtomicU64;
}
impl Pick for Cond<false> {
    type T = u64;
}

macro_rules! is_me {
    (Sneaky) => {
        true
    };
    ($($t:tt)*) => {
        false
    };
}

#[derive(ShmSafe)]
#[repr(C)]
pub struct Sneaky {
    pub hits: <Cond<{ is_me!(Sneaky) }> as Pick>::T,
}

fn lent_read_only<T: ShmImmutable>() {}

fn main() {
    lent_read_only::<Sneaky>();
}
