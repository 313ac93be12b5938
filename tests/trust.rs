//! Bytes from outside (issue 8) as far as types decide: a read-only mapping lends no
//! interior mutability, values are validity-checked before the first reference to them,
//! and fingerprints tell apart the types that safe code relies on. Heap images and external
//! buffers only, so that Miri runs these too (`.ci/miri`).

#![allow(missing_docs)]

use shmkit::{AlignedBuffer, ManagedExternalBuffer, ManagedHeapMemory, OffsetPtr, ShmSafe};

#[derive(ShmSafe)]
#[repr(C)]
pub struct Node {
    pub value: u64,
    pub next: OffsetPtr<Node>,
}

/// A read-only mapping still lends plain data, a list that points at its own type included
/// (`Node: ShmImmutable` although deciding it meets `OffsetPtr<Node>`).
#[test]
fn a_read_only_mapping_lends_plain_data_and_lists() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    let tail = seg
        .construct(
            "tail",
            Node {
                value: 2,
                next: OffsetPtr::null(),
            },
        )
        .unwrap() as *const Node;
    seg.construct(
        "head",
        Node {
            value: 1,
            next: OffsetPtr::null(),
        },
    )
    .unwrap();
    seg.find_mut::<Node>("head")
        .unwrap()
        .unwrap()
        .next_mut()
        .set_target(tail);
    seg.construct_array("flags", 3, true).unwrap();

    let image = AlignedBuffer::from_image(seg.image());
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&image)
        .unwrap();
    let head = reader.find::<Node>("head").unwrap().unwrap();
    // SAFETY: the pointer aims at the live `tail` object of this mapping.
    let next = unsafe { head.next.as_ref() }.unwrap();
    assert_eq!((head.value, next.value), (1, 2));
    assert_eq!(reader.find_slice::<bool>("flags").unwrap().unwrap(), &[true; 3]);
}

/// Finding 5: types that safe code tells apart have different fingerprints, so finding one
/// as the other is a `TypeMismatch`.
mod fingerprints {
    use std::marker::PhantomData;

    use shmkit::{Error, ManagedHeapMemory, OffsetPtr, ShmSafe};

    /// `D` differs between the two modules: the same tokens, another value.
    mod first {
        pub const D: u8 = 1;
        #[derive(shmkit::ShmSafe)]
        #[repr(u8)]
        pub enum Switch {
            Off = 0,
            On = D,
        }
    }
    mod second {
        pub const D: u8 = 2;
        #[derive(shmkit::ShmSafe)]
        #[repr(u8)]
        pub enum Switch {
            Off = 0,
            On = D,
        }
    }

    /// The same values written differently mean the same.
    mod third {
        #[derive(shmkit::ShmSafe)]
        #[repr(u8)]
        pub enum Switch {
            Off,
            On = 3 - 2,
        }
    }

    #[derive(ShmSafe)]
    #[repr(C)]
    pub struct Raw;
    #[derive(ShmSafe)]
    #[repr(C)]
    pub struct Validated;

    #[derive(ShmSafe)]
    #[repr(C)]
    pub struct Handle<S> {
        pub id: u32,
        pub state: PhantomData<S>,
    }

    /// A list: the pointer's fingerprint must not recurse forever into `List` itself.
    #[derive(ShmSafe)]
    #[repr(C)]
    pub struct List<T> {
        pub value: T,
        pub next: OffsetPtr<List<T>>,
    }

    fn mismatch<T: ShmSafe, U: ShmSafe>(value: T) {
        let seg = ManagedHeapMemory::new(1 << 16).unwrap();
        seg.construct("x", value).unwrap();
        let found = seg.find::<U>("x").map(|found| found.is_some());
        assert!(
            matches!(found, Err(Error::TypeMismatch { .. })),
            "{found:?}"
        );
    }

    #[test]
    fn discriminant_values_are_hashed_not_their_tokens() {
        assert_ne!(
            first::Switch::LAYOUT_FINGERPRINT,
            second::Switch::LAYOUT_FINGERPRINT
        );
        assert_eq!(
            first::Switch::LAYOUT_FINGERPRINT,
            third::Switch::LAYOUT_FINGERPRINT
        );
        mismatch::<first::Switch, second::Switch>(first::Switch::On);
        let _ = (first::Switch::Off, second::Switch::On, second::Switch::Off);
        let _ = (third::Switch::On, third::Switch::Off);
    }

    #[test]
    fn pointers_hash_their_target_type() {
        assert_ne!(
            OffsetPtr::<u8>::LAYOUT_FINGERPRINT,
            OffsetPtr::<bool>::LAYOUT_FINGERPRINT
        );
        mismatch::<OffsetPtr<u8>, OffsetPtr<bool>>(OffsetPtr::null());
        assert_ne!(
            <List<u8>>::LAYOUT_FINGERPRINT,
            <List<bool>>::LAYOUT_FINGERPRINT
        );
        mismatch::<OffsetPtr<List<u32>>, OffsetPtr<List<f32>>>(OffsetPtr::null());
    }

    #[test]
    fn generic_and_phantom_parameters_are_hashed() {
        assert_ne!(
            <Handle<Raw>>::LAYOUT_FINGERPRINT,
            <Handle<Validated>>::LAYOUT_FINGERPRINT
        );
        mismatch::<Handle<Validated>, Handle<Raw>>(Handle {
            id: 1,
            state: PhantomData,
        });
    }
}
