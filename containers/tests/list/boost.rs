//! Boost.Interprocess's list examples, ported without `unsafe`: what the lead's example
//! will show.

use shmkit_containers::{List, ListExt};
use shmkit_runtime::{AlignedBuffer, ManagedExternalBuffer, ManagedHeapMemory};

/// "Managed heap memory": a list fills a 1000-byte heap segment, the segment grows by 1000
/// bytes (its memory may move: the list is found again by name), the list fills it
/// further, and is destroyed with every node.
#[test]
fn a_list_fills_a_heap_segment_that_grows() {
    let mut heap = ManagedHeapMemory::new(1000).unwrap();
    heap.construct("MyList", List::<i32>::new()).unwrap();
    let fill = |heap: &mut ManagedHeapMemory| {
        let mut list = heap.find_mut::<List<i32>>("MyList").unwrap().unwrap();
        while list.push_front(0).is_ok() {}
        list.len()
    };
    let old_size = fill(&mut heap);
    heap.grow(1000).unwrap();
    let new_size = fill(&mut heap);
    assert!(new_size > old_size, "{new_size} > {old_size}");
    assert!(heap.destroy::<List<i32>>("MyList").unwrap());
    assert!(heap.all_memory_deallocated());
}

/// "Managed external buffer": a list built in a buffer is found in a byte copy of it,
/// and each is destroyed.
#[test]
fn a_list_in_a_buffer_is_found_in_a_copy() {
    let mut first = ManagedHeapMemory::new(65536).unwrap();
    first.construct("MyList", List::<i32>::new()).unwrap();
    first
        .find_mut::<List<i32>>("MyList")
        .unwrap()
        .unwrap()
        .extend([1, 2, 3])
        .unwrap();
    let mut copy = AlignedBuffer::from_image(first.image());
    let mut second = ManagedExternalBuffer::options().open(&mut copy).unwrap();
    assert_eq!(
        *second.find::<List<i32>>("MyList").unwrap().unwrap(),
        [1, 2, 3]
    );
    // Each destroys its own list, nodes and all.
    assert!(first.destroy::<List<i32>>("MyList").unwrap());
    assert!(second.destroy::<List<i32>>("MyList").unwrap());
    assert!(first.all_memory_deallocated() && second.all_memory_deallocated());
}
