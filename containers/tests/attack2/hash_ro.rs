//! Forged hash tables opened read-only (bounds checks only, plus the map's own
//! validation): control-byte copies that disagree with their primaries, bucket masks that
//! are huge or not a power of two, wrong room and item counts. Every query must end, stay
//! in bounds and not panic (or the map be refused).

use shmkit_containers::{HashMap, HashMapExt};
use shmkit_runtime::{AlignedBuffer, ManagedExternalBuffer, ManagedHeapMemory};
use shmkit_test_support as support;

type H = HashMap<u64, u64>;

/// "h" with `n` elements; the segment, the map's offset and its table's.
fn segment(n: u64) -> (ManagedHeapMemory, usize, usize) {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("h", H::new()).unwrap();
    {
        let mut h = seg.find_mut::<H>("h").unwrap().unwrap();
        for k in 0..n {
            h.insert(k, k * 10).unwrap();
        }
    }
    let map = {
        let h = seg.find::<H>("h").unwrap().unwrap();
        (&raw const *h) as usize - seg.base_address().as_ptr() as usize
    };
    let image = support::image_bytes(&mut seg);
    let rel = i64::from_ne_bytes(image[map..map + 8].try_into().unwrap());
    let table = (map as i64 + rel) as usize;
    (seg, map, table)
}

fn word(seg: &mut ManagedHeapMemory, at: usize, w: u64) {
    support::corrupt(seg, at, &w.to_ne_bytes());
}

/// Opens read-only and runs every query; panics only through a failed assertion.
fn query(seg: &mut ManagedHeapMemory, n: u64) {
    let image = AlignedBuffer::from_image(seg.image());
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    let Ok(Some(h)) = reader.find::<H>("h") else {
        return;
    };
    let len = h.len();
    let it = h.iter().count();
    assert!(it <= len);
    for k in 0..n + 40 {
        let _ = h.get(&k);
        let _ = h.contains_key(&k);
    }
    let _ = (h.keys().count(), h.values().count(), h.capacity());
}

/// A change to a segment's bytes, given the map's and its table's offsets.
type Forgery = std::boxed::Box<dyn Fn(&mut ManagedHeapMemory, usize, usize)>;

#[test]
fn forged_tables_read_only() {
    for n in [3u64, 20] {
        let buckets = if n == 3 { 4 } else { 32 };
        let ctrl = |t: usize| t + 24;
        let cases: std::vec::Vec<(&str, Forgery)> = vec![
            (
                "copies full, disagreeing",
                std::boxed::Box::new(move |s, _, t| {
                    support::corrupt(s, ctrl(t) + buckets, &[0x11; 16]);
                }),
            ),
            (
                "copies empty",
                std::boxed::Box::new(move |s, _, t| {
                    support::corrupt(s, ctrl(t) + buckets, &[0xFF; 16]);
                }),
            ),
            (
                "every primary full",
                std::boxed::Box::new(move |s, _, t| {
                    support::corrupt(s, ctrl(t), &vec![0x01; buckets + 16]);
                }),
            ),
            (
                "every primary deleted",
                std::boxed::Box::new(move |s, _, t| {
                    support::corrupt(s, ctrl(t), &vec![0x80; buckets + 16]);
                }),
            ),
            (
                "mask huge",
                std::boxed::Box::new(|s, _, t| word(s, t + 8, u64::MAX >> 1)),
            ),
            (
                "mask 2^40-1",
                std::boxed::Box::new(|s, _, t| word(s, t + 8, (1 << 40) - 1)),
            ),
            (
                "mask not 2^k-1",
                std::boxed::Box::new(move |s, _, t| word(s, t + 8, buckets as u64 + 1)),
            ),
            (
                "mask doubled",
                std::boxed::Box::new(move |s, _, t| word(s, t + 8, 2 * buckets as u64 - 1)),
            ),
            (
                "mask halved",
                std::boxed::Box::new(move |s, _, t| word(s, t + 8, buckets as u64 / 2 - 1)),
            ),
            (
                "growth_left huge",
                std::boxed::Box::new(|s, _, t| word(s, t + 16, u64::MAX)),
            ),
            (
                "growth_left 0",
                std::boxed::Box::new(|s, _, t| word(s, t + 16, 0)),
            ),
            (
                "items huge",
                std::boxed::Box::new(|s, m, _| word(s, m + 8, u64::MAX)),
            ),
            ("items 0", std::boxed::Box::new(|s, m, _| word(s, m + 8, 0))),
            (
                "items past capacity",
                std::boxed::Box::new(move |s, m, _| word(s, m + 8, buckets as u64)),
            ),
            (
                "table aimed at the map",
                std::boxed::Box::new(|s, m, _| word(s, m, 0)),
            ),
            (
                "table aimed past the end",
                std::boxed::Box::new(|s, m, _| word(s, m, (1 << 16) - m as u64 - 16)),
            ),
        ];
        for (name, forge) in &cases {
            let (mut seg, m, t) = segment(n);
            forge(&mut seg, m, t);
            eprintln!("{n} elements: {name}");
            query(&mut seg, n);
        }
    }
}
