//! The other containers through lying guards: an index, a key, "is there an element" or
//! "is this the only handle" is decided on the container that is changed, and the
//! container stays valid.

use shmkit_containers::{
    map, Arc, ArcExt, Box, BoxExt, Deque, DequeExt, HashMap, HashMapExt, HashSet, HashSetExt,
    InsertError, List, ListExt, Map, MapExt, Set, SetExt, Vec, VecExt,
};
use shmkit_runtime::ShmMut;

use super::{checked, fickle, lie};

type Items = std::vec::Vec<u64>;

#[test]
fn vec_indexes_are_checked_on_the_real_vector() {
    let shown = |mut v: ShmMut<'_, Vec<u64>>| v.extend_from_slice(&[1, 2, 3, 4, 5]).unwrap();
    let real = |mut v: ShmMut<'_, Vec<u64>>| v.push(9).unwrap();
    let (r, mut seg) = lie(Vec::new, shown, real, |v| {
        (
            v.insert(4, 7),
            v.remove(3),
            v.remove_with(3, |_| ()),
            v.swap_remove(3),
            v.element_mut(3).is_none(),
            v.first_mut().map(|e| *e),
            v.last_mut().map(|e| *e),
        )
    });
    let out_of_bounds = Err(InsertError::OutOfBounds { index: 4, len: 1 });
    assert_eq!(r, (out_of_bounds, None, None, None, true, Some(9), Some(9)));
    assert_eq!(checked::<Vec<u64>>(&mut seg).as_slice(), [9]);
    let (popped, mut seg) = lie(Vec::new, shown, real, |v| {
        v.truncate(3);
        v.pop()
    });
    assert_eq!(popped, Some(9));
    let v = checked::<Vec<u64>>(&mut seg);
    assert!(v.is_empty() && v.len() <= v.capacity());
    // A range that fits the vector shown is checked against the one drained.
    let (drained, mut seg) = lie(Vec::new, shown, real, |v| {
        (
            v.drain(2..4).map(|d| d.count()),
            v.drain(..).map(|d| d.collect::<Items>()),
        )
    });
    assert_eq!(drained, (None, Some(vec![9])));
    assert!(checked::<Vec<u64>>(&mut seg).is_empty());
}

#[test]
fn deque_indexes_are_checked_on_the_real_deque() {
    let shown = |mut d: ShmMut<'_, Deque<u64>>| d.extend([1, 2, 3, 4, 5]).unwrap();
    let real = |mut d: ShmMut<'_, Deque<u64>>| d.push_front(9).unwrap();
    let (r, mut seg) = lie(Deque::new, shown, real, |d| {
        d.truncate(3);
        (
            d.element_mut(3).is_none(),
            d.front_mut().map(|e| *e),
            d.back_mut().map(|e| *e),
            d.insert(3, 7),
            d.remove(3),
            d.remove_with(3, |_| ()),
            d.pop_back(),
            d.pop_front(),
        )
    });
    let out_of_bounds = Err(InsertError::OutOfBounds { index: 3, len: 1 });
    assert_eq!(
        r,
        (
            true,
            Some(9),
            Some(9),
            out_of_bounds,
            None,
            None,
            Some(9),
            None
        )
    );
    assert!(checked::<Deque<u64>>(&mut seg).is_empty());
}

#[test]
fn list_ends_are_the_real_list_s() {
    let shown = |mut l: ShmMut<'_, List<u64>>| l.extend([1, 2, 3]).unwrap();
    let (r, mut seg) = lie(
        List::new,
        shown,
        |_| (),
        |l| {
            (
                l.front_mut().is_none() && l.back_mut().is_none(),
                l.pop_front(),
                l.pop_back_with(|_| ()),
                l.cursor_front_mut().remove_current(),
            )
        },
    );
    assert_eq!(r, (true, None, None, None));
    assert!(checked::<List<u64>>(&mut seg).is_empty());
    let real = |mut l: ShmMut<'_, List<u64>>| l.push_back(9).unwrap();
    let (popped, mut seg) = lie(List::new, |_| (), real, |l| l.pop_back());
    assert_eq!(popped, Some(9));
    assert!(checked::<List<u64>>(&mut seg).is_empty());
}

#[test]
fn map_keys_are_looked_up_in_the_real_map() {
    let shown = |mut m: ShmMut<'_, Map<u64, u64>>| assert!(m.insert(1, 10).unwrap().is_none());
    let real = |mut m: ShmMut<'_, Map<u64, u64>>| assert!(m.insert(2, 20).unwrap().is_none());
    let (r, mut seg) = lie(Map::new, shown, real, |m| {
        (
            m.value_mut(&1).is_none(),
            m.remove(&1),
            m.remove_with(&1, |_, _| ()),
            m.entry(1).is_ok_and(|e| matches!(e, map::Entry::Vacant(_))),
            m.pop_last(),
        )
    });
    assert_eq!(r, (true, None, None, true, Some((2, 20))));
    assert!(checked::<Map<u64, u64>>(&mut seg).is_empty());

    let shown = |mut s: ShmMut<'_, Set<u64>>| assert!(s.insert(1).unwrap());
    let real = |mut s: ShmMut<'_, Set<u64>>| assert!(s.insert(2).unwrap());
    let (r, mut seg) = lie(Set::new, shown, real, |s| (s.remove(&1), s.take(&1)));
    assert_eq!(r, (false, None));
    let set = checked::<Set<u64>>(&mut seg);
    assert_eq!(set.iter().copied().collect::<Items>(), [2]);
}

#[test]
fn hash_map_keys_are_looked_up_in_the_real_map() {
    let shown = |mut m: ShmMut<'_, HashMap<u64, u64>>| assert!(m.insert(1, 10).unwrap().is_none());
    let real = |mut m: ShmMut<'_, HashMap<u64, u64>>| assert!(m.insert(2, 20).unwrap().is_none());
    let (r, mut seg) = lie(HashMap::new, shown, real, |m| {
        (
            m.value_mut(&1).is_none(),
            m.remove(&1),
            m.remove_entry(&1),
            m.remove_with(&1, |_, _| ()),
            m.remove(&2),
        )
    });
    assert_eq!(r, (true, None, None, None, Some(20)));
    assert!(checked::<HashMap<u64, u64>>(&mut seg).is_empty());

    let shown = |mut s: ShmMut<'_, HashSet<u64>>| assert!(s.insert(1).unwrap());
    let real = |mut s: ShmMut<'_, HashSet<u64>>| assert!(s.insert(2).unwrap());
    let (r, mut seg) = lie(HashSet::new, shown, real, |s| (s.remove(&1), s.take(&1)));
    assert_eq!(r, (false, None));
    let set = checked::<HashSet<u64>>(&mut seg);
    assert_eq!(set.iter().copied().collect::<Items>(), [2]);
}

#[test]
fn a_box_s_value_is_the_real_box_s() {
    let holding = |x| move |mut b: ShmMut<'_, Box<u64>>| b.insert(x).unwrap();
    let (r, mut seg) = lie(
        Box::new,
        holding(1),
        |_| (),
        |b| (b.value_mut().is_none(), b.take(), b.take_with(|_| ())),
    );
    assert_eq!(r, (true, None, None));
    assert!(checked::<Box<u64>>(&mut seg).is_none());
    let (taken, mut seg) = lie(Box::new, |_| (), holding(7), |b| b.take());
    assert_eq!(taken, Some(7));
    assert!(checked::<Box<u64>>(&mut seg).is_none());
}

#[test]
fn an_arc_is_unshared_when_the_real_handle_is() {
    let holding = |x| move |mut a: ShmMut<'_, Arc<u64>>| a.insert(x).unwrap();
    let (r, mut seg) = lie(Arc::new, holding(1), |_| (), |a| a.value_mut().is_none());
    assert!(r);
    assert!(checked::<Arc<u64>>(&mut seg).get().is_none());
    let (r, mut seg) = lie(Arc::new, |_| (), holding(5), |a| a.value_mut().map(|v| *v));
    assert_eq!(r, Some(5));
    assert_eq!(checked::<Arc<u64>>(&mut seg).get(), Some(&5));
}

#[test]
fn take_with_empties_the_box_it_handed_out() {
    let holding = |x| move |mut b: ShmMut<'_, Box<u64>>| b.insert(x).unwrap();
    let (taken, mut segs) = fickle(Box::new, holding(1), holding(2), |b| b.take_with(|v| *v));
    assert_eq!(taken, Some(1));
    let left = segs
        .each_mut()
        .map(|seg| checked::<Box<u64>>(seg).get().copied());
    assert_eq!(left, [None, Some(2)]);
}

#[test]
fn extend_inserts_every_pair_into_one_map() {
    let real = |mut m: ShmMut<'_, HashMap<u64, u64>>| assert!(m.insert(5, 5).unwrap().is_none());
    let ((), mut segs) = fickle(
        HashMap::new,
        |_| (),
        real,
        |m| m.extend([(1, 1), (2, 2)]).unwrap(),
    );
    let keys = segs.each_mut().map(|seg| {
        let mut keys: Items = checked::<HashMap<u64, u64>>(seg).keys().copied().collect();
        keys.sort_unstable();
        keys
    });
    assert_eq!(keys, [vec![1, 2], vec![5]]);
}
