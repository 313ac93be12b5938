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
        .set_target(tail)
        .unwrap();
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
    assert_eq!(
        reader.find_slice::<bool>("flags").unwrap().unwrap(),
        &[true; 3]
    );
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

    /// The same typestate as a `PhantomData` field of a type that is not generic.
    mod raw {
        #[derive(shmkit::ShmSafe)]
        #[repr(C)]
        pub struct Token {
            pub id: u32,
            pub state: std::marker::PhantomData<super::Raw>,
        }
    }
    mod validated {
        #[derive(shmkit::ShmSafe)]
        #[repr(C)]
        pub struct Token {
            pub id: u32,
            pub state: std::marker::PhantomData<super::Validated>,
        }
    }

    #[test]
    fn phantom_fields_hash_their_parameter() {
        assert_ne!(
            raw::Token::LAYOUT_FINGERPRINT,
            validated::Token::LAYOUT_FINGERPRINT
        );
        mismatch::<raw::Token, validated::Token>(raw::Token {
            id: 1,
            state: PhantomData,
        });
    }
}

/// Finding 4: bytes from outside that are no valid value of the type asked for are an
/// `InvalidValue` naming the field and its offset, never a reference.
mod validity {
    use std::num::NonZeroU32;

    use shmkit_test_support as support;

    use shmkit::{
        AlignedBuffer, Error, ManagedExternalBuffer, ManagedHeapMemory, ShmImmutable, ShmSafe,
    };

    #[derive(ShmSafe, Clone, Copy)]
    #[repr(C)]
    pub struct Flag {
        pub id: u16,
        pub on: bool,
        // One byte of padding follows: never read.
    }

    #[derive(ShmSafe, Clone, Copy)]
    #[repr(u16)]
    pub enum Mode {
        Idle,
        Run { speed: NonZeroU32, reverse: bool } = 5,
        Stop(char),
    }

    #[derive(ShmSafe, Clone, Copy)]
    #[repr(C)]
    pub struct Panel {
        pub count: u32,
        pub flags: [Flag; 3],
        pub mode: Mode,
    }

    const FLAG: Flag = Flag { id: 7, on: true };
    const PANEL: Panel = Panel {
        count: 3,
        flags: [FLAG; 3],
        mode: Mode::Run {
            speed: NonZeroU32::MIN,
            reverse: false,
        },
    };

    /// The image of a heap segment holding `values` as object "x", with byte `at` of the
    /// object's data set to `byte`.
    fn image_with<T: ShmSafe + Clone>(values: &[T], at: usize, byte: u8) -> AlignedBuffer {
        let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
        let data = seg
            .construct_from_iter("x", values.to_vec())
            .unwrap()
            .as_ptr() as usize;
        let offset = data - seg.base_address().as_ptr() as usize;
        support::corrupt(&mut seg, offset + at, &[byte]);
        AlignedBuffer::from_image(seg.image())
    }

    /// Opens `image` read-write and read-only, looks "x" up as `T`s both ways, and returns
    /// the `(field, offset)` both report.
    fn invalid<T: ShmImmutable>(mut image: AlignedBuffer) -> (String, usize) {
        let read_only = AlignedBuffer::from_image(&image);
        let reader = ManagedExternalBuffer::options()
            .read_only()
            .open(&read_only)
            .unwrap();
        let seen = reader.find_slice::<T>("x").map(|o| o.map(<[T]>::len));
        let Err(Error::InvalidValue { field, offset, .. }) = seen else {
            panic!("read-only: {seen:?}");
        };
        let writer = ManagedExternalBuffer::open(&mut image).unwrap();
        let again = writer.find_slice::<T>("x").map(|o| o.map(<[T]>::len));
        match again {
            Err(Error::InvalidValue {
                field: f,
                offset: o,
                ..
            }) if (&f, o) == (&field, offset) => {}
            other => panic!("read-write: {other:?}"),
        }
        (field, offset)
    }

    #[test]
    fn a_bool_of_2_is_refused() {
        assert_eq!(invalid::<bool>(image_with(&[true], 0, 2)), ("".into(), 0));
    }

    #[test]
    fn a_char_beyond_unicode_is_refused() {
        // 'a' is 0x61; with byte 2 set to 0x11 it reads 0x110061, past U+10FFFF.
        assert_eq!(invalid::<char>(image_with(&['a'], 2, 0x11)), ("".into(), 0));
    }

    #[test]
    fn a_zero_nonzero_is_refused() {
        let image = image_with(&[NonZeroU32::MIN], 0, 0);
        assert_eq!(invalid::<NonZeroU32>(image), ("".into(), 0));
    }

    #[test]
    fn an_enum_tag_that_names_no_variant_is_refused() {
        // Tags are 0, 5 and 6 (implied after `Run = 5`).
        let (field, offset) = invalid::<Mode>(image_with(&[Mode::Idle], 0, 4));
        assert_eq!((field.as_str(), offset), ("", 0));
        // (A valid `Stop` holds an initialised `char` to check, unlike `Idle`'s bytes.)
        let image = image_with(&[Mode::Stop('a')], 0, 6);
        let reader = ManagedExternalBuffer::options()
            .read_only()
            .open(&image)
            .unwrap();
        assert!(matches!(reader.find::<Mode>("x"), Ok(Some(Mode::Stop(_)))));
        let err = invalid_message::<Mode>(image_with(&[Mode::Idle], 0, 4));
        assert!(err.contains("a declared discriminant of `Mode`"), "{err}");
    }

    fn invalid_message<T: ShmImmutable>(image: AlignedBuffer) -> String {
        let reader = ManagedExternalBuffer::options()
            .read_only()
            .open(&image)
            .unwrap();
        reader.find::<T>("x").err().unwrap().to_string()
    }

    #[test]
    fn nested_fields_and_array_elements_are_named_with_their_offsets() {
        let on = std::mem::offset_of!(Flag, on);
        let flags = std::mem::offset_of!(Panel, flags);
        let at = flags + 2 * size_of::<Flag>() + on;
        let (field, offset) = invalid::<Panel>(image_with(&[PANEL], at, 9));
        assert_eq!((field.as_str(), offset), ("flags[2].on", at));

        // A variant's field, at the offset the enum's repr gives it.
        let mode = std::mem::offset_of!(Panel, mode);
        let run = PANEL.mode;
        let Mode::Run { reverse, .. } = &run else {
            unreachable!()
        };
        let reverse = mode + (reverse as *const bool as usize - &run as *const Mode as usize);
        let (field, offset) = invalid::<Panel>(image_with(&[PANEL], reverse, 3));
        assert_eq!((field.as_str(), offset), ("mode.Run.reverse", reverse));

        // Element 3 of an array object.
        let (field, offset) = invalid::<bool>(image_with(&[true; 4], 3, 0xFF));
        assert_eq!((field.as_str(), offset), ("[3]", 3));
        let message = invalid_message::<Flag>(image_with(&[FLAG], on, 2));
        assert!(
            message.contains("byte 2 (on): expected a bool (byte 0 or 1)"),
            "{message}"
        );
    }

    #[test]
    fn valid_values_and_any_padding_pass() {
        // Byte 3 of a `Flag` is padding: whatever it holds, the value is valid.
        let image = image_with(&[FLAG; 2], 3, 0xAB);
        let reader = ManagedExternalBuffer::options()
            .read_only()
            .open(&image)
            .unwrap();
        let flags = reader.find_slice::<Flag>("x").unwrap().unwrap();
        assert!(flags.iter().all(|f| f.on && f.id == 7));
        // Twice: the second lookup is served by the mapping's record of checked objects.
        assert_eq!(reader.find_slice::<Flag>("x").unwrap().unwrap().len(), 2);

        let mut image = image_with(&[PANEL], 0, 3); // `count` may be anything
        let writer = ManagedExternalBuffer::open(&mut image).unwrap();
        let panel = writer.find::<Panel>("x").unwrap().unwrap();
        assert!(matches!(panel.mode, Mode::Run { reverse: false, .. }));
        let _ = (Mode::Stop('x'), Mode::Idle);
    }

    #[test]
    fn find_or_construct_checks_what_it_finds() {
        let mut image = image_with(&[true], 0, 2);
        let writer = ManagedExternalBuffer::open(&mut image).unwrap();
        let err = writer.find_or_construct("x", || false).err().unwrap();
        assert!(matches!(err, Error::InvalidValue { .. }), "{err:?}");
        // What it builds is valid by construction.
        assert!(*writer.find_or_construct("y", || true).unwrap());
        assert_eq!(writer.find::<bool>("y").unwrap(), Some(&true));
    }

    /// A type whose manual impl neither says all bit patterns are valid nor validates.
    #[repr(C)]
    #[derive(Clone)]
    pub struct Manual(u8);
    // SAFETY: one byte, no pointer; the defaults say "check me" and cannot.
    unsafe impl ShmSafe for Manual {}
    // SAFETY: no interior mutability.
    unsafe impl ShmImmutable for Manual {}

    #[test]
    fn a_manual_impl_without_a_validator_is_found_only_where_it_was_built() {
        let seg = ManagedHeapMemory::new(1 << 16).unwrap();
        seg.construct("m", Manual(1)).unwrap();
        assert_eq!(seg.find::<Manual>("m").unwrap().map(|m| m.0), Some(1));
        let message = invalid_message::<Manual>(image_with(&[Manual(1)], 0, 1));
        assert!(message.contains("has no `validate`"), "{message}");
    }

    #[test]
    fn an_atomic_bool_of_2_is_refused() {
        use std::sync::atomic::AtomicBool;
        let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
        let data = seg.construct("x", AtomicBool::new(true)).unwrap() as *const AtomicBool;
        let offset = data as usize - seg.base_address().as_ptr() as usize;
        support::corrupt(&mut seg, offset, &[2]);
        let mut image = AlignedBuffer::from_image(seg.image());
        let writer = ManagedExternalBuffer::open(&mut image).unwrap();
        let found = writer.find::<AtomicBool>("x").map(|f| f.is_some());
        assert!(
            matches!(found, Err(Error::InvalidValue { .. })),
            "{found:?}"
        );
    }
}
