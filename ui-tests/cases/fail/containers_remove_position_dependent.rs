//! A position-dependent key or value (a segment `String`, a nested `Vec`) is never removed,
//! popped, taken or replaced out of a map or set by value: `remove_with`, `pop_first_with`,
//! the entry's `remove_with`, `insert_with` and a set's `remove` (which drops in place) do
//! it in place, `pass/containers_popped_in_place.rs`.
use shmkit::containers::{hash_map, map, HashMap, HashSet, Map, Set, String, Vec};
use shmkit::prelude::*;
use shmkit::ShmMut;

fn map(mut rows: ShmMut<'_, Map<u64, Vec<u8>>>, mut names: ShmMut<'_, Map<String, u64>>) {
    let _ = rows.remove(&1);
    let _ = rows.insert(1, [7u8]);
    if let Ok(map::Entry::Occupied(e)) = rows.entry(2) {
        let _ = e.remove();
    }
    let _ = names.pop_first();
}

fn set(mut names: ShmMut<'_, Set<String>>) {
    let _ = names.take("ada");
    let _ = names.pop_last();
}

fn hash_map(
    mut names: ShmMut<'_, HashMap<u64, String>>,
    mut ids: ShmMut<'_, HashMap<String, u64>>,
) {
    let _ = names.remove(&1);
    let _ = names.insert(1, "ada");
    if let Ok(hash_map::Entry::Occupied(e)) = names.entry(2) {
        let _ = e.remove();
    }
    let _ = ids.remove_entry("ada");
}

fn hash_set(mut names: ShmMut<'_, HashSet<String>>) {
    let _ = names.take("ada");
}

fn main() {}
