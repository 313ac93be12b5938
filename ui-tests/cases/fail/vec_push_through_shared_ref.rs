//! A `&Vec` from a shared mapping is read-only: pushing needs the lock's guard or a
//! `ShmMut` of an exclusive mapping.
use shmkit::containers::Vec;
use shmkit::prelude::*;

fn push(v: &Vec<u64>) {
    v.push(1).unwrap();
}

fn push_generic<P: VecExt<u64>>(mut p: P) {
    p.push(1).unwrap();
}

fn main() {
    let v = Vec::<u64>::new();
    push_generic(&v);
}
