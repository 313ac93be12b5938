//! Every segment container is position-dependent (`vec_moved_through_guards.rs` shows `Vec`):
//! neither a `ShmMut` (what `find_mut` and the derive's accessors give) nor a lock guard
//! derefs mutably to it, so it cannot be swapped, replaced or taken out of its place;
//! nor can a container held in another, through the guards the outer one hands out.
//! (`containers_moved_out_of_place.rs` tries the guards' methods that do give `&mut T`.)
// The `mut`s are what a user writes; rustc would only repeat each error as "unused mut".
#![allow(unused_mut)]
use shmkit::containers::{Arc, Box, Deque, HashMap, HashSet, List, Map, Set, String, Vec, Weak};
use shmkit::prelude::*;
use shmkit::sync::Mutex;
use shmkit::ShmMut;

fn swap_strings(mut a: ShmMut<'_, String>, mut b: ShmMut<'_, String>) {
    std::mem::swap(&mut *a, &mut *b);
}

fn replace_box(mut a: ShmMut<'_, Box<u64>>) -> Box<u64> {
    std::mem::replace(&mut *a, Box::new())
}

fn take_map(m: &Mutex<Map<u64, u64>>) -> Map<u64, u64> {
    let mut guard = m.lock().unwrap();
    std::mem::take(&mut *guard)
}

fn swap_sets(a: &Mutex<Set<u64>>, b: &Mutex<Set<u64>>) {
    let (mut a, mut b) = (a.lock().unwrap(), b.lock().unwrap());
    std::mem::swap(&mut *a, &mut *b);
}

fn replace_hash_map(mut a: ShmMut<'_, HashMap<u64, u64>>) -> HashMap<u64, u64> {
    std::mem::replace(&mut *a, HashMap::new())
}

fn take_hash_set(mut a: ShmMut<'_, HashSet<u64>>) -> HashSet<u64> {
    std::mem::take(&mut *a)
}

fn swap_lists(mut a: ShmMut<'_, List<u64>>, m: &Mutex<List<u64>>) {
    let mut b = m.lock().unwrap();
    std::mem::swap(&mut *a, &mut *b);
}

fn replace_deque(m: &Mutex<Deque<u64>>) -> Deque<u64> {
    let mut guard = m.lock().unwrap();
    std::mem::replace(&mut *guard, Deque::new())
}

fn take_arc(mut a: ShmMut<'_, Arc<u64>>) -> Arc<u64> {
    std::mem::take(&mut *a)
}

fn swap_weaks(m: &Mutex<Weak<u64>>, mut b: ShmMut<'_, Weak<u64>>) {
    let mut a = m.lock().unwrap();
    std::mem::swap(&mut *a, &mut *b);
}

fn swap_values(mut a: ShmMut<'_, Map<u64, String>>, mut b: ShmMut<'_, HashMap<u64, String>>) {
    std::mem::swap(
        &mut *a.value_mut(&1).unwrap(),
        &mut *b.value_mut(&1).unwrap(),
    );
}

fn take_rows(mut rows: ShmMut<'_, List<Vec<u8>>>) {
    for mut row in rows.iter_mut() {
        drop(std::mem::take(&mut *row));
    }
}

fn main() {}
