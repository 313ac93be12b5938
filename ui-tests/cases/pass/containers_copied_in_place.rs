//! No segment container is `Clone` (`fail/containers_not_clone.rs`): a deep copy is built in
//! place from a reference to the original, by `extend`/`push_str`/`insert` from it or as an
//! element built from it; an `Arc` or a `Weak` is shared in place instead (`Arc::clone`).
use shmkit::containers::{Arc, Box, Deque, HashMap, HashSet, List, Map, Set, String, Vec, Weak};
use shmkit::prelude::*;
use shmkit::sync::Mutex;
use shmkit::{ManagedHeapMemory, ShmSafe};

/// An original and its copy-to-be, each empty behind its own lock.
fn pair<T: ShmSafe + Default>(seg: &ManagedHeapMemory) -> shmkit::Result<(&Mutex<T>, &Mutex<T>)> {
    let original = seg.construct_anonymous(Mutex::new(T::default()))?;
    Ok((original, seg.construct_anonymous(Mutex::new(T::default()))?))
}

fn main() -> shmkit::Result<()> {
    let seg = ManagedHeapMemory::new(1 << 20)?;

    let (a, b) = pair::<Vec<String>>(&seg)?;
    a.lock()?.extend(["ada", "bob"])?;
    b.lock()?.extend(&*a.lock()?)?;
    a.lock()?.clear();
    assert_eq!(*b.lock()?, ["ada", "bob"]);

    let (a, b) = pair::<String>(&seg)?;
    a.lock()?.push_str("ada")?;
    b.lock()?.push_str(&a.lock()?)?;
    assert_eq!(*b.lock()?, "ada");

    let (a, b) = pair::<Box<Vec<u64>>>(&seg)?;
    a.lock()?.insert(1..4)?;
    b.lock()?.insert(a.lock()?.get().unwrap())?;
    assert_eq!(*b.lock()?, *a.lock()?);

    let (a, b) = pair::<Map<String, Vec<u32>>>(&seg)?;
    a.lock()?.extend([("ada", [1u32, 2]), ("bob", [3, 4])])?;
    b.lock()?.extend(&*a.lock()?)?;
    assert_eq!(*b.lock()?, *a.lock()?);

    let (a, b) = pair::<Set<String>>(&seg)?;
    a.lock()?.extend(["ada", "bob"])?;
    b.lock()?.extend(&*a.lock()?)?;
    assert_eq!(*b.lock()?, *a.lock()?);

    let (a, b) = pair::<HashMap<String, u64>>(&seg)?;
    a.lock()?.extend([("ada", 1u64), ("bob", 2)])?;
    b.lock()?.extend(&*a.lock()?)?;
    assert_eq!(*b.lock()?, *a.lock()?);

    let (a, b) = pair::<HashSet<u64>>(&seg)?;
    a.lock()?.extend([1u64, 2])?;
    b.lock()?.extend(&*a.lock()?)?;
    assert_eq!(*b.lock()?, *a.lock()?);

    let (a, b) = pair::<List<String>>(&seg)?;
    a.lock()?.extend(["ada", "bob"])?;
    b.lock()?.extend(&*a.lock()?)?;
    assert_eq!(*b.lock()?, *a.lock()?);

    let (a, b) = pair::<Deque<Vec<u8>>>(&seg)?;
    a.lock()?.extend([b"ada", b"bob"])?;
    b.lock()?.extend(&*a.lock()?)?;
    assert_eq!(*b.lock()?, *a.lock()?);

    // A whole container as an element, built from a reference to another.
    let rows = seg.construct_anonymous(Mutex::new(Vec::<List<String>>::new()))?;
    rows.lock()?.push(&*a_list(&seg)?.lock()?)?;
    assert_eq!(rows.lock()?[0], ["ada"]);

    let (a, b) = pair::<Arc<String>>(&seg)?;
    a.lock()?.insert("ada")?;
    b.lock()?.share(&*a.lock()?)?;
    assert!(b.lock()?.ptr_eq(&*a.lock()?));
    assert_eq!(a.lock()?.strong_count(), 2);

    let (w, v) = pair::<Weak<String>>(&seg)?;
    w.lock()?.downgrade_from(&*a.lock()?)?;
    v.lock()?.share(&*w.lock()?)?;
    assert!(v.lock()?.refers_to(&*a.lock()?));
    assert_eq!(a.lock()?.weak_count(), 2);
    Ok(())
}

/// A list holding "ada", to be copied from.
fn a_list(seg: &ManagedHeapMemory) -> shmkit::Result<&Mutex<List<String>>> {
    let list = seg.construct_anonymous(Mutex::new(List::new()))?;
    list.lock()?.push_back("ada")?;
    Ok(list)
}
