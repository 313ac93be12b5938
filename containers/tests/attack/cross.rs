//! Handles across segments: an `Arc` or `Weak` slot in one segment refuses to share a
//! value that lives in another (a handle aims into its own segment).

use shmkit_containers::{Arc, ArcError, ArcExt, Weak, WeakExt};
use shmkit_runtime::ManagedHeapMemory;

#[test]
fn arcs_and_weaks_refuse_to_share_across_segments() {
    let mut one = ManagedHeapMemory::new(1 << 16).unwrap();
    let mut two = ManagedHeapMemory::new(1 << 16).unwrap();
    one.construct("a", Arc::<u64>::new()).unwrap();
    two.construct("b", Arc::<u64>::new()).unwrap();
    two.construct("w", Weak::<u64>::new()).unwrap();
    one.find_mut::<Arc<u64>>("a")
        .unwrap()
        .unwrap()
        .insert(7u64)
        .unwrap();
    let a = one.find::<Arc<u64>>("a").unwrap().unwrap();
    let mut b = two.find_mut::<Arc<u64>>("b").unwrap().unwrap();
    assert!(matches!(b.share(a), Err(ArcError::OtherSegment { .. })));
    assert!(b.get().is_none());
    let mut w = two.find_mut::<Weak<u64>>("w").unwrap().unwrap();
    assert!(matches!(
        w.downgrade_from(a),
        Err(ArcError::OtherSegment { .. })
    ));
    assert!(one.destroy::<Arc<u64>>("a").unwrap());
    assert!(one.all_memory_deallocated());
    assert!(two.destroy::<Arc<u64>>("b").unwrap());
    assert!(two.destroy::<Weak<u64>>("w").unwrap());
    assert!(two.all_memory_deallocated());
}
