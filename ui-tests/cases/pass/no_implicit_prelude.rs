// The expansions name everything by absolute paths: they compile where nothing is in scope.
#![no_implicit_prelude]

mod types {
    #[derive(::shmkit::ShmSafe, ::core::default::Default)]
    #[repr(C)]
    pub struct Point<T> {
        pub x: T,
        pub y: u32,
    }

    #[derive(::shmkit::ShmSafe)]
    #[repr(u16)]
    pub enum Link {
        Empty,
        To(::shmkit::OffsetPtr<u64>),
        Pair { a: u32, b: [u8; 2] },
    }

    #[derive(::shmkit::ShmSafe)]
    #[repr(C)]
    pub struct Tuple(pub u8, pub (u16, u32));

    #[derive(::shmkit::ShmSafe, ::shmkit::NoPadding)]
    #[repr(C)]
    pub struct Sample {
        pub kind: Kind,
        pub value: [u8; 3],
    }

    #[derive(::shmkit::ShmSafe, ::shmkit::NoPadding)]
    #[repr(u8)]
    pub enum Kind {
        One,
    }

    #[::shmkit::shm_segment(name = "hygiene")]
    #[derive(::core::default::Default)]
    pub struct Db {
        pub hits: u64,
        pub origin: Point<u16>,
        pub head: *const u64,
    }
}

fn main() {
    use ::shmkit::ShmRoot;
    use types::{DbFields, Link};

    ::std::assert_eq!(<types::Db as ShmRoot>::ROOT_NAME, "hygiene");
    ::std::assert!(<Link as ::shmkit::ShmSafe>::SCHEMA.is_some());
    fn no_padding<T: ::shmkit::NoPadding>() {}
    no_padding::<types::Sample>();
    let mut segment = ::shmkit::ManagedHeapMemory::new(1 << 16).unwrap();
    *segment.root_mut::<types::Db>().unwrap().hits_mut() += 1;
    ::std::assert_eq!(segment.root::<types::Db>().unwrap().hits, 1);
}
