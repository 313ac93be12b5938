//! A segment `Vec` is position-dependent: its guards (a `ShmMut`, a lock guard) do not
//! deref mutably, so it cannot be swapped, replaced or taken out of its place.
use shmkit::containers::Vec;
use shmkit::sync::Mutex;
use shmkit::ShmMut;

fn swap(mut a: ShmMut<'_, Vec<u64>>, mut b: ShmMut<'_, Vec<u64>>) {
    std::mem::swap(&mut *a, &mut *b);
}

fn replace(mut a: ShmMut<'_, Vec<u64>>) -> Vec<u64> {
    std::mem::replace(&mut *a, Vec::new())
}

fn take(m: &Mutex<Vec<u64>>) -> Vec<u64> {
    let mut guard = m.lock().unwrap();
    std::mem::take(&mut *guard)
}

fn main() {}
