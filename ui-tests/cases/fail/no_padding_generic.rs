use shmkit::{NoPadding, ShmSafe};

#[derive(ShmSafe, NoPadding)]
#[repr(C)]
struct Pair<T, const N: usize> {
    items: [T; N],
}

fn send<T: NoPadding>(_: &T) {}

fn main() {
    // No second error here: the refused type still gets a (never compiled) impl.
    send(&Pair { items: [1u32; 2] });
}
