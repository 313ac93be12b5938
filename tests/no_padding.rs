//! `#[derive(NoPadding)]` end to end: the trait is implemented for nested structs with
//! arrays and for fieldless enums, and a value's bytes can be viewed as initialised bytes.

// The types are `pub` to exercise the derive on public items; they need no docs here.
#![allow(missing_docs)]

use std::mem::size_of;

use shmkit::{NoPadding, ShmSafe};

#[derive(ShmSafe, NoPadding, Clone, Copy, Debug, PartialEq)]
#[repr(u16)]
pub enum Kind {
    Ping = 1,
    Pong = 2,
    Data = 0x0302,
}

#[derive(ShmSafe, NoPadding, Clone, Copy)]
#[repr(C)]
pub struct Header {
    pub kind: Kind,
    pub flags: [u8; 2],
    pub len: u32,
}

#[derive(ShmSafe, NoPadding, Clone, Copy)]
#[repr(transparent)]
pub struct Seq(pub u64);

#[derive(ShmSafe, NoPadding, Clone, Copy)]
#[repr(C)]
pub struct Message {
    pub seq: Seq,
    pub header: Header,
    pub samples: [[i16; 2]; 3],
    pub ok: bool,
    pub _pad: [u8; 3],
}

#[derive(ShmSafe, NoPadding)]
#[repr(C)]
pub struct Unit;

/// What a message queue would do: view the value's bytes, all of them initialised.
fn bytes_of<T: NoPadding>(value: &T) -> &[u8] {
    // SAFETY: `T: NoPadding`: all `size_of::<T>()` bytes of `*value` are initialised and
    // none changes through `&T`; the slice borrows `value`, so they stay alive and unwritten.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
}

#[test]
fn derived_types_are_no_padding_and_their_sizes_add_up() {
    assert_eq!(size_of::<Kind>(), 2);
    assert_eq!(size_of::<Header>(), 2 + 2 + 4);
    assert_eq!(size_of::<Seq>(), 8);
    assert_eq!(size_of::<Message>(), 8 + 8 + 12 + 1 + 3);
    assert_eq!(size_of::<Unit>(), 0);

    let message = Message {
        seq: Seq(7),
        header: Header {
            kind: Kind::Data,
            flags: [0xaa, 0xbb],
            len: 12,
        },
        samples: [[1, -1], [2, -2], [3, -3]],
        ok: true,
        _pad: [0; 3],
    };
    let bytes = bytes_of(&message);
    assert_eq!(bytes.len(), size_of::<Message>());
    assert_eq!(bytes[..8], 7u64.to_ne_bytes());
    assert_eq!(bytes[8..10], 0x0302u16.to_ne_bytes());
    assert_eq!(bytes[10..12], [0xaa, 0xbb]);
    assert_eq!(bytes[12..16], 12u32.to_ne_bytes());
    assert_eq!(bytes[16..18], 1i16.to_ne_bytes());
    assert_eq!(bytes[26..28], (-3i16).to_ne_bytes());
    assert_eq!(bytes[28..], [1, 0, 0, 0]);

    assert_eq!(bytes_of(&Kind::Pong), 2u16.to_ne_bytes());
    assert!(bytes_of(&Unit).is_empty());
    assert_eq!(bytes_of(&[Seq(1), Seq(2)]).len(), 16);
}
