//! The property offset pointers exist for: one segment mapped at two addresses at once (as two
//! processes map it) reads the same through both, and each mapping's pointers land inside that
//! mapping, with no fix-up.

use std::mem::offset_of;
use std::ptr;

use rustix::fd::OwnedFd;
use rustix::fs::{ftruncate, memfd_create, MemfdFlags};
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};
use shmkit_runtime::test_hooks::registry;
use shmkit_runtime::OffsetPtr;

const LEN: usize = 4096;

/// A shared mapping of the whole memfd, unmapped on drop.
struct Mapping(*mut u8);

impl Mapping {
    fn new(fd: &OwnedFd) -> Mapping {
        // SAFETY: a fresh shared mapping chosen by the kernel; it overlaps nothing of ours.
        let addr = unsafe {
            mmap(
                ptr::null_mut(),
                LEN,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )
        }
        .expect("mmap");
        Mapping(addr.cast())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: mapped by `new` with this length, and no reference into it outlives `self`.
        unsafe { munmap(self.0.cast(), LEN) }.expect("munmap");
    }
}

#[repr(C)]
struct Record {
    next: OffsetPtr<u64>,
    items: OffsetPtr<u32>,
    value: u64,
    array: [u32; 8],
}

fn memfd() -> OwnedFd {
    let fd = memfd_create("shmkit-ptr-two-mappings", MemfdFlags::CLOEXEC).expect("memfd_create");
    ftruncate(&fd, LEN as u64).expect("ftruncate");
    fd
}

#[test]
fn a_pointer_written_through_one_mapping_lands_inside_the_other() {
    let fd = memfd();
    let a = Mapping::new(&fd);
    let b = Mapping::new(&fd);
    assert_ne!(a.0, b.0, "two mappings at two addresses");
    // SAFETY: both are live writable mappings of this test, unmapped after the guards drop.
    let _reg_a = unsafe { registry::register(a.0, LEN, true) }.unwrap();
    // SAFETY: as above.
    let _reg_b = unsafe { registry::register(b.0, LEN, true) }.unwrap();

    // Put the record at an offset in the page, as an allocator would.
    let at = 64;
    let rec_a = a.0.wrapping_add(at).cast::<Record>();
    // SAFETY: the record fits in mapping A and is aligned (page + 64); zeroed memory is valid
    // for it and the pointers are set in place.
    unsafe {
        rec_a.write(Record {
            next: OffsetPtr::null(),
            items: OffsetPtr::null(),
            value: 0xfeed_beef,
            array: [0, 1, 2, 3, 4, 5, 6, 7],
        });
        (*rec_a).next.set(ptr::addr_of!((*rec_a).value));
        (*rec_a).items.set(ptr::addr_of!((*rec_a).array[5]));
    }

    let rec_b = b.0.wrapping_add(at).cast::<Record>();
    // SAFETY: the same bytes seen through mapping B: initialised by the writes above.
    let (next_b, items_b) = unsafe { ((*rec_b).next.get(), (*rec_b).items.get()) };
    assert_eq!(
        next_b,
        b.0.wrapping_add(at + offset_of!(Record, value)).cast()
    );
    assert_eq!(
        items_b,
        b.0.wrapping_add(at + offset_of!(Record, array) + 5 * 4)
            .cast()
    );
    assert_eq!(
        registry::lookup(next_b.cast()).unwrap().base,
        b.0,
        "inside B, not A"
    );
    // SAFETY: both targets are inside mapping B and initialised.
    unsafe {
        assert_eq!(*next_b, 0xfeed_beef);
        assert_eq!(*items_b, 5);
        // And a write through B's pointer is what A's pointer reads.
        *items_b = 55;
        assert_eq!(*(*rec_a).items.get(), 55);
        assert_eq!(
            (*rec_a).items.get(),
            a.0.wrapping_add(at + offset_of!(Record, array) + 5 * 4)
                .cast()
        );
    }
}

#[test]
fn a_linked_list_built_in_one_mapping_is_walked_in_the_other() {
    #[repr(C)]
    struct Node {
        value: u64,
        next: OffsetPtr<Node>,
    }
    let fd = memfd();
    let a = Mapping::new(&fd);
    let b = Mapping::new(&fd);
    // SAFETY: both are live writable mappings of this test, unmapped after the guards drop.
    let _reg_a = unsafe { registry::register(a.0, LEN, true) }.unwrap();
    // SAFETY: as above.
    let _reg_b = unsafe { registry::register(b.0, LEN, true) }.unwrap();

    let nodes_a = a.0.cast::<Node>();
    let count = 10;
    // SAFETY: `count` nodes fit in the page; each is written before its `next` is set in place.
    unsafe {
        for i in 0..count {
            nodes_a.add(i).write(Node {
                value: i as u64 * 3,
                next: OffsetPtr::null(),
            });
        }
        // Link them in reverse order: 9 -> 8 -> … -> 0.
        for i in 1..count {
            (*nodes_a.add(i)).next.set(nodes_a.add(i - 1));
        }
    }
    let head_b = b.0.cast::<Node>().wrapping_add(count - 1);
    let mut walked = Vec::new();
    let mut cur: *const Node = head_b;
    while !cur.is_null() {
        assert!(registry::lookup(cur.cast()).is_some_and(|m| m.base == b.0));
        // SAFETY: every node is inside mapping B and initialised; the list ends with null.
        unsafe {
            walked.push((*cur).value);
            cur = (*cur).next.get();
        }
    }
    assert_eq!(
        walked,
        (0..count as u64).rev().map(|i| i * 3).collect::<Vec<_>>()
    );
}
