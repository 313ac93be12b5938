//! The guards' own ways to a `&mut T` or to overwriting a value (`ShmMut::get_mut`,
//! `ShmMut::set`, `Mutex::get_mut`) exist only for plain data: for each segment container
//! they are refused with shmkit's position-dependence message, as are the containers' own
//! mutable slices of elements that are containers.
use shmkit::containers::{Arc, Box, Deque, HashMap, HashSet, List, Map, Set, String, Vec, Weak};
use shmkit::prelude::*;
use shmkit::sync::Mutex;
use shmkit::ShmMut;

fn swap_vecs(a: ShmMut<'_, Vec<u64>>, b: ShmMut<'_, Vec<u64>>) {
    std::mem::swap(a.get_mut(), b.get_mut());
}

fn replace_string(mut a: ShmMut<'_, String>) {
    a.set(String::new());
}

fn take_box(mut guard: shmkit::sync::MutexGuard<'_, Box<u64>>) -> Box<u64> {
    std::mem::take(guard.as_shm_mut().get_mut())
}

fn replace_map(a: ShmMut<'_, Map<u64, u64>>) -> Map<u64, u64> {
    std::mem::replace(a.get_mut(), Map::new())
}

fn take_set(m: &mut Mutex<Set<u64>>) -> Set<u64> {
    std::mem::take(m.get_mut().unwrap())
}

fn replace_hash_map(mut a: ShmMut<'_, HashMap<u64, u64>>) {
    a.set(HashMap::new());
}

fn swap_hash_sets(a: ShmMut<'_, HashSet<u64>>, b: ShmMut<'_, HashSet<u64>>) {
    std::mem::swap(a.get_mut(), b.get_mut());
}

fn take_list(a: ShmMut<'_, List<u64>>) -> List<u64> {
    std::mem::take(a.get_mut())
}

fn swap_deques(a: &mut Mutex<Deque<u64>>, b: ShmMut<'_, Deque<u64>>) {
    std::mem::swap(a.get_mut().unwrap(), b.get_mut());
}

fn replace_arc(mut a: ShmMut<'_, Arc<u64>>) {
    a.set(Arc::new());
}

fn take_weak(a: ShmMut<'_, Weak<u64>>) -> Weak<u64> {
    std::mem::take(a.get_mut())
}

fn swap_elements(mut names: ShmMut<'_, Vec<String>>, mut rows: ShmMut<'_, Deque<Vec<u8>>>) {
    names.as_mut_slice().swap(0, 1);
    let (front, back) = rows.as_mut_slices();
    std::mem::swap(&mut front[0], &mut back[0]);
}

fn main() {}
