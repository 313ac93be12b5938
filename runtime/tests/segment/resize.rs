//! Offline growing and shrinking of device segments (the reference's
//! `managed_shared_memory::grow` / `shrink_to_fit`): the size changes, the data stays where
//! its handles say, and the allocator stays consistent. Each generic body runs on shared
//! memory and on a file.

use shmkit_runtime::test_hooks::MIN_SEGMENT_SIZE;
use shmkit_test_support as support;
use support::on_both_devices;
use support::{Block, Seg, Target};

const SIZE: usize = 64 * 1024;

on_both_devices!(
    grow_adds_the_extra_bytes_as_free_memory_and_keeps_the_data,
    repeated_small_grows_keep_the_segment_consistent,
    shrink_to_fit_then_grow_by_the_difference_restores_size_and_free_memory,
    shrink_to_fit_of_a_full_segment_changes_nothing,
    shrink_to_fit_of_an_empty_segment_leaves_a_usable_segment,
    shrink_to_fit_of_a_nearly_empty_segment_leaves_a_usable_segment,
);

fn device_len<T: Target>(t: &T) -> u64 {
    std::fs::metadata(t.path()).unwrap().len()
}

fn grow_adds_the_extra_bytes_as_free_memory_and_keeps_the_data<T: Target>() {
    let t = T::new();
    let (blocks, free0) = {
        let seg = Seg::<T>::create(t.name(), SIZE).unwrap();
        let blocks: Vec<Block> = (0..8).map(|i| Block::new(&seg, 500, i)).collect();
        (blocks, seg.free_memory())
    };
    Seg::<T>::grow(t.name(), SIZE).expect("grow");
    assert_eq!(device_len(&t), 2 * SIZE as u64, "the device grew");
    let seg = Seg::<T>::open(t.name()).unwrap();
    assert_eq!(seg.size(), 2 * SIZE);
    assert_eq!(
        seg.free_memory(),
        free0 + SIZE,
        "all the extra bytes are free"
    );
    assert!(seg.check_sanity(), "{:?}", seg.check());
    for b in &blocks {
        b.assert_intact(&seg);
        assert!(seg.usable_size(b.ptr(&seg)).is_some(), "still allocated");
    }
    // The new space joined the old free tail: one block bigger than the old segment fits.
    let big = Block::new(&seg, SIZE + SIZE / 2, 99);
    big.assert_intact(&seg);
    for b in &blocks {
        b.assert_intact(&seg);
    }
    drop(seg);

    // Growing by nothing changes nothing.
    let seg = Seg::<T>::open(t.name()).unwrap();
    let free = seg.free_memory();
    drop(seg);
    Seg::<T>::grow(t.name(), 0).expect("grow by 0");
    let seg = Seg::<T>::open(t.name()).unwrap();
    assert_eq!((seg.size(), seg.free_memory()), (2 * SIZE, free));
}

fn repeated_small_grows_keep_the_segment_consistent<T: Target>() {
    let t = T::new();
    let mut blocks = Vec::new();
    let mut expected = SIZE;
    {
        let seg = Seg::<T>::create(t.name(), SIZE).unwrap();
        blocks.push(Block::new(&seg, 1000, 0));
    }
    // Odd amounts too: the segment size need not be a multiple of the page size.
    for (round, extra) in [4096, 1000, 24, 8, 12_345].into_iter().enumerate() {
        Seg::<T>::grow(t.name(), extra).expect("grow");
        expected += extra;
        let seg = Seg::<T>::open(t.name()).unwrap();
        assert_eq!(seg.size(), expected, "round {round}");
        assert!(seg.check_sanity(), "round {round}: {:?}", seg.check());
        for b in &blocks {
            b.assert_intact(&seg);
        }
        blocks.push(Block::new(&seg, 700, round as u64 + 1));
    }
}

fn shrink_to_fit_then_grow_by_the_difference_restores_size_and_free_memory<T: Target>() {
    let t = T::new();
    let (kept, free0) = {
        let seg = Seg::<T>::create(t.name(), SIZE).unwrap();
        let blocks: Vec<Block> = (0..10).map(|i| Block::new(&seg, 900, i)).collect();
        // Free every other block and the last few: holes inside, a free tail at the end.
        let mut kept = Vec::new();
        for (i, b) in blocks.into_iter().enumerate() {
            if i % 2 == 1 || i >= 7 {
                b.free(&seg);
            } else {
                kept.push(b);
            }
        }
        (kept, seg.free_memory())
    };

    let shrunk = Seg::<T>::shrink_to_fit(t.name()).expect("shrink_to_fit");
    assert!(shrunk < SIZE, "shrank from {SIZE} to {shrunk}");
    assert_eq!(device_len(&t), shrunk as u64, "the device was truncated");
    let seg = Seg::<T>::open(t.name()).expect("open the shrunk segment");
    assert_eq!(seg.size(), shrunk);
    assert_eq!(
        seg.free_memory(),
        free0 - (SIZE - shrunk),
        "only the free tail went away"
    );
    assert!(seg.check_sanity(), "{:?}", seg.check());
    for b in &kept {
        b.assert_intact(&seg);
    }
    // The last kept block now ends the segment: only holes remain free.
    let last = kept.last().unwrap();
    assert!(last.handle.0 as usize + last.len <= shrunk);
    drop(seg);

    // Shrinking again finds nothing more to cut.
    assert_eq!(Seg::<T>::shrink_to_fit(t.name()).unwrap(), shrunk);

    Seg::<T>::grow(t.name(), SIZE - shrunk).expect("grow back");
    let seg = Seg::<T>::open(t.name()).unwrap();
    assert_eq!(seg.size(), SIZE, "size restored");
    assert_eq!(seg.free_memory(), free0, "free memory restored exactly");
    assert!(seg.check_sanity());
    for b in &kept {
        b.assert_intact(&seg);
    }
    for b in &kept {
        b.free(&seg);
    }
    assert!(seg.all_memory_deallocated());
}

fn shrink_to_fit_of_a_full_segment_changes_nothing<T: Target>() {
    let t = T::new();
    let blocks = {
        let seg = Seg::<T>::create(t.name(), SIZE).unwrap();
        let mut blocks = Vec::new();
        while seg.free_memory() >= 64 {
            match seg.allocate(16.max(seg.free_memory().min(1024) - 32)) {
                Ok(p) => blocks.push(seg.handle_from_address(p.as_ptr()).unwrap()),
                Err(_) => break,
            }
        }
        blocks
    };
    let seg = Seg::<T>::open(t.name()).unwrap();
    let free = seg.free_memory();
    drop(seg);
    let size = Seg::<T>::shrink_to_fit(t.name()).unwrap();
    // At most the few bytes of a too-small free tail can go.
    assert!(
        SIZE - size <= 64,
        "shrank a full segment from {SIZE} to {size}"
    );
    let seg = Seg::<T>::open(t.name()).unwrap();
    assert!(seg.check_sanity());
    assert_eq!(free - seg.free_memory(), SIZE - size);
    for h in blocks {
        assert!(seg
            .usable_size(seg.address_from_handle(h).unwrap())
            .is_some());
    }
}

/// Boost shrinks an empty segment to the smallest segment it can hold; whatever the
/// smallest size is, the result must still open, allocate and grow back.
fn shrink_to_fit_of_an_empty_segment_leaves_a_usable_segment<T: Target>() {
    let t = T::new();
    let free0 = Seg::<T>::create(t.name(), SIZE).unwrap().free_memory();
    let shrunk = Seg::<T>::shrink_to_fit(t.name()).expect("shrink_to_fit");
    assert!(shrunk < SIZE);
    let seg = Seg::<T>::open(t.name()).expect("the shrunk empty segment opens");
    assert_eq!(seg.size(), shrunk);
    assert!(seg.check_sanity());
    assert!(seg.all_memory_deallocated());
    drop(seg);
    Seg::<T>::grow(t.name(), SIZE - shrunk).expect("grow back");
    let seg = Seg::<T>::open(t.name()).unwrap();
    assert_eq!(seg.size(), SIZE);
    assert_eq!(seg.free_memory(), free0);
    seg.allocate(SIZE / 2).expect("usable again");
}

fn shrink_to_fit_of_a_nearly_empty_segment_leaves_a_usable_segment<T: Target>() {
    let t = T::new();
    let block = {
        let seg = Seg::<T>::create(t.name(), SIZE).unwrap();
        Block::new(&seg, 16, 1)
    };
    let shrunk = Seg::<T>::shrink_to_fit(t.name()).expect("shrink_to_fit");
    assert!(shrunk < SIZE);
    let seg = Seg::<T>::open(t.name()).expect("the shrunk segment opens");
    assert!(seg.size() >= MIN_SEGMENT_SIZE.min(shrunk));
    block.assert_intact(&seg);
    assert!(seg.check_sanity());
}
