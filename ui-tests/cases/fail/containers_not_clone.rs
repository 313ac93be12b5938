//! No segment container implements `Clone`: by value a container can only be empty (what it
//! holds hangs off self-relative pointers), so `clone()` on a `&Container` (what `find` and a
//! guard's deref give) clones the reference, and a container by value is not to be had.
//! A deep copy is built in place from a reference instead: `pass/containers_copied_in_place.rs`.
use shmkit::containers::{Arc, Box, Deque, HashMap, HashSet, List, Map, Set, String, Vec, Weak};
use shmkit::ShmMut;

fn vec(v: &Vec<u64>) -> Vec<u64> {
    v.clone()
}

fn string(s: &String) -> String {
    s.clone()
}

fn boxed(b: &Box<u64>) -> Box<u64> {
    b.clone()
}

fn map(m: &Map<u64, u64>) -> Map<u64, u64> {
    m.clone()
}

fn set(s: &Set<u64>) -> Set<u64> {
    s.clone()
}

fn hash_map(m: &HashMap<u64, u64>) -> HashMap<u64, u64> {
    m.clone()
}

fn hash_set(s: &HashSet<u64>) -> HashSet<u64> {
    s.clone()
}

fn list(l: &List<u64>) -> List<u64> {
    l.clone()
}

fn deque(d: &Deque<u64>) -> Deque<u64> {
    d.clone()
}

fn arc(a: &Arc<u64>) -> Arc<u64> {
    a.clone()
}

fn weak(w: &Weak<u64>) -> Weak<u64> {
    w.clone()
}

fn guard(g: ShmMut<'_, Vec<u64>>) -> Vec<u64> {
    g.clone()
}

fn main() {}
