use shmkit::{NoPadding, ShmSafe};

#[derive(ShmSafe, NoPadding)]
#[repr(u8)]
enum Command {
    Stop,
    Move(u32),
    Turn { degrees: u16 },
    Empty {},
}

fn main() {}
