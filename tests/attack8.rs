#![allow(missing_docs)]
use shmkit::{AlignedBuffer, ManagedExternalBuffer, ManagedHeapMemory, ShmSafe};

/// Image with "a" = [0xAAu8; 8], whose count is forged to `count`.
fn forged_count(count: u64) -> AlignedBuffer {
    let mut seg = ManagedHeapMemory::new(1 << 14).unwrap();
    seg.construct_array("a", 8, 0xAAu8).unwrap();
    let mut image = AlignedBuffer::from_image(seg.image());
    let want = (8u64 | (1u64 << 48)).to_le_bytes();
    let pos = image.windows(8).position(|w| w == want).expect("count word");
    image[pos..pos + 8].copy_from_slice(&(count | (1u64 << 48)).to_le_bytes());
    image
}

#[test]
fn probe_forged_count_overlaps() {
    let image = forged_count(4096);
    let seg = ManagedHeapMemory::from_image(&image).unwrap();
    let a = seg.find_slice::<u8>("a").unwrap().unwrap();
    eprintln!("len {}", a.len());
    seg.construct("c", 0x1234_5678_9abc_def0u64).unwrap();
    let sum: u64 = a.iter().map(|&b| b as u64).sum();
    eprintln!("sum {sum}");
}

#[test]
fn probe_forged_count_clobbers_allocator() {
    let image = forged_count(8000);
    let mut seg = ManagedHeapMemory::from_image(&image).unwrap();
    {
        let mut a = seg.find_slice_mut::<u8>("a").unwrap().unwrap();
        let a = a.as_mut().get_mut_slice();
        eprintln!("len {}", a.len());
        for b in a.iter_mut().skip(8) {
            *b = 0x41;
        }
    }
    let r = seg.construct("c", 5u64);
    eprintln!("construct: {:?}", r.map(|v| *v));
    let r = seg.destroy::<u8>("a");
    eprintln!("destroy: {r:?}");
    let r = seg.allocate(100);
    eprintln!("allocate: {:?}", r.is_ok());
    eprintln!("check: {:?}", seg.check());
}

mod phantom {
    use std::marker::PhantomData;
    pub struct Raw;
    pub struct Validated;
    pub mod a {
        #[derive(shmkit::ShmSafe)]
        #[repr(C)]
        pub struct Token {
            pub id: u32,
            pub state: super::PhantomData<super::Validated>,
        }
    }
    pub mod b {
        #[derive(shmkit::ShmSafe)]
        #[repr(C)]
        pub struct Token {
            pub id: u32,
            pub state: super::PhantomData<super::Raw>,
        }
    }
}

#[test]
fn probe_phantom_field_fingerprint() {
    use std::marker::PhantomData;
    let seg = ManagedHeapMemory::new(1 << 14).unwrap();
    seg.construct("t", phantom::b::Token { id: 1, state: PhantomData }).unwrap();
    let r = seg.find::<phantom::a::Token>("t").map(|o| o.map(|t| t.id));
    eprintln!("phantom: {r:?}");
    assert!(r.is_err(), "Token<Raw> found as Token<Validated>");
}

#[allow(dead_code)]
fn _unused(_: ManagedExternalBuffer<'_>, _: &dyn ShmSafeDummy) {}
trait ShmSafeDummy {}
#[allow(dead_code)]
fn _s<T: ShmSafe>() {}

mod sneak {
    use std::sync::atomic::AtomicU64;
    pub struct Cond<const B: bool>;
    pub trait Pick {
        type T;
    }
    impl Pick for Cond<true> {
        type T = AtomicU64;
    }
    impl Pick for Cond<false> {
        type T = u64;
    }
    /// `true` for the type itself, `false` for whatever the derive puts in its place.
    macro_rules! is_me {
        (Sneaky) => {
            true
        };
        ($($t:tt)*) => {
            false
        };
    }
    #[derive(shmkit::ShmSafe)]
    #[repr(C)]
    pub struct Sneaky {
        pub hits: <Cond<{ is_me!(Sneaky) }> as Pick>::T,
    }
}

#[test]
fn probe_sneaky_atomic_read_only() {
    fn immutable<T: shmkit::ShmImmutable>() {}
    immutable::<sneak::Sneaky>();
    let mut seg = ManagedHeapMemory::new(1 << 14).unwrap();
    seg.construct("n", sneak::Sneaky { hits: std::sync::atomic::AtomicU64::new(1) })
        .unwrap();
    let image = AlignedBuffer::from_image(seg.image());
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    let n = reader.find::<sneak::Sneaky>("n").unwrap().unwrap();
    n.hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    eprintln!("image byte changed through a read-only mapping");
}
