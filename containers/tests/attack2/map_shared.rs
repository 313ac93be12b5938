//! `Map` nodes shared between two trees: "y"'s root aimed at "x"'s. Read-only both may
//! open (reads only); a writable copy must refuse one of them, and what it accepts must
//! take inserts, removes and drops without freeing a node under the other.

use shmkit_containers::{Map, MapExt};
use shmkit_runtime::{AlignedBuffer, ManagedExternalBuffer, ManagedHeapMemory};
use shmkit_test_support as support;

type M = Map<u64, u64>;

fn segment(n: u64) -> ManagedHeapMemory {
    let mut seg = ManagedHeapMemory::new(1 << 18).unwrap();
    seg.construct("x", M::new()).unwrap();
    seg.construct("y", M::new()).unwrap();
    {
        let mut x = seg.find_mut::<M>("x").unwrap().unwrap();
        for k in 0..n {
            x.insert(k, k).unwrap();
        }
        let mut y = seg.find_mut::<M>("y").unwrap().unwrap();
        y.insert(1000u64, 1u64).unwrap();
    }
    let base = seg.base_address().as_ptr() as usize;
    let x = (&raw const *seg.find::<M>("x").unwrap().unwrap()) as usize - base;
    let y = (&raw const *seg.find::<M>("y").unwrap().unwrap()) as usize - base;
    let image = support::image_bytes(&mut seg);
    let rel = i64::from_ne_bytes(image[x..x + 8].try_into().unwrap()) + x as i64 - y as i64;
    let mut h = rel.to_ne_bytes().to_vec();
    h.extend_from_slice(&image[x + 8..x + 16]);
    support::corrupt(&mut seg, y, &h);
    seg
}

#[test]
fn a_root_shared_by_two_maps() {
    for n in [5u64, 200] {
        let mut seg = segment(n);
        let image = AlignedBuffer::from_image(seg.image());
        let reader = ManagedExternalBuffer::options()
            .read_only()
            .open(&image)
            .unwrap();
        for name in ["x", "y"] {
            if let Ok(Some(m)) = reader.find::<M>(name) {
                assert_eq!(m.iter().count(), n as usize);
            }
        }
        let mut copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
        let ok = ["x", "y"].map(|name| matches!(copy.find::<M>(name), Ok(Some(_))));
        assert!(
            !(ok[0] && ok[1]),
            "{n}: a writable copy accepted two maps sharing nodes"
        );
        for name in ["x", "y"] {
            if let Ok(Some(mut m)) = copy.find_mut::<M>(name) {
                for k in 0..n {
                    m.remove(&k);
                }
                for k in 0..n {
                    m.insert(k + 7, k).unwrap();
                }
            }
        }
        for name in ["x", "y"] {
            let _ = copy.destroy::<M>(name);
        }
        drop(ManagedHeapMemory::from_image(copy.image()).unwrap());
    }
}
