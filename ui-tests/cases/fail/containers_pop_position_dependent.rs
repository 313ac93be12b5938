//! A position-dependent element (a segment `String`, a nested `Vec`) is never popped, removed
//! or taken by value, from any sequence nor from a `Box` (`vec_pop_position_dependent.rs`
//! shows `Vec::pop`/`remove` of a nested `Vec`): the `_with` forms hand it over in place,
//! `pass/containers_popped_in_place.rs`.
use shmkit::containers::{Box, Deque, List, String, Vec};
use shmkit::prelude::*;
use shmkit::ShmMut;

fn vec(mut names: ShmMut<'_, Vec<String>>) {
    let last: Option<String> = names.pop();
    let first: Option<String> = names.swap_remove(0);
    drop((last, first));
}

fn list(mut rows: ShmMut<'_, List<Vec<u8>>>) {
    let _ = rows.pop_front();
    let _ = rows.pop_back();
    let _ = rows.cursor_front_mut().remove_current();
}

fn deque(mut names: ShmMut<'_, Deque<String>>) {
    let _ = names.pop_back();
    let _ = names.pop_front();
}

fn boxed(mut name: ShmMut<'_, Box<String>>) -> Option<String> {
    name.take()
}

fn main() {}
