//! Allocator-level checks on a heap segment (they run under Miri too).

use crate::segment::ManagedHeapMemory;

#[test]
fn smoke_allocate_free() {
    let seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    let free0 = seg.free_memory();
    let p = seg.allocate(64).unwrap();
    assert_eq!(free0 - seg.free_memory(), 72);
    assert_eq!(seg.usable_size(p), Some(64));
    seg.check().unwrap();
    // SAFETY: `p` was just allocated here.
    unsafe { seg.deallocate(p).unwrap() };
    assert_eq!(seg.free_memory(), free0);
    assert!(seg.all_memory_deallocated());
    seg.check().unwrap();
}
