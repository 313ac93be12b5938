//! An element holding offset pointers (here a nested `Vec`) is not popped or removed by
//! value: `pop_with` / `remove_with` hand it over in place.
use shmkit::containers::Vec;
use shmkit::prelude::*;
use shmkit::ShmMut;

fn pop_row(mut rows: ShmMut<'_, Vec<Vec<u64>>>) {
    let row: Option<Vec<u64>> = rows.pop();
    drop(row);
    let _ = rows.remove(0);
}

fn main() {}
