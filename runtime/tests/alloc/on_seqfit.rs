//! The allocation behaviours on the sequential fit.

pub(crate) type Algo = shmkit_runtime::algorithm::SeqFit;

// The same tests once per algorithm, by design.
#[allow(clippy::duplicate_mod)]
#[path = "behaviour.rs"]
mod behaviour;

use shmkit_runtime::{Error, ManagedHeapMemory};

/// Small blocks allocated until the segment is full.
fn how_many_fit<A: shmkit_runtime::algorithm::MemoryAlgorithm>(size: usize) -> usize {
    let seg = ManagedHeapMemory::options()
        .algorithm::<A>()
        .create(size)
        .unwrap();
    let mut n = 0;
    loop {
        match seg.allocate(8) {
            Ok(_) => n += 1,
            Err(Error::OutOfMemory { .. }) => return n,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
}

#[test]
fn a_tiny_segment_holds_more_with_the_sequential_fit_than_with_tlsf() {
    use shmkit_runtime::algorithm::Tlsf;
    // Boost's examples make segments of 1,000 bytes: TLSF's level table takes 136 of them.
    let (seq, tlsf) = (how_many_fit::<Algo>(1000), how_many_fit::<Tlsf>(1000));
    assert!(seq >= tlsf + 4, "seqfit {seq} blocks, tlsf {tlsf}");
    let seq_free = ManagedHeapMemory::options()
        .algorithm::<Algo>()
        .create(1000)
        .unwrap()
        .free_memory();
    let tlsf_free = ManagedHeapMemory::new(1000).unwrap().free_memory();
    // The level table (136 bytes) and where it makes the blocks start (16-byte aligned).
    assert_eq!(seq_free - tlsf_free, 144);
}
