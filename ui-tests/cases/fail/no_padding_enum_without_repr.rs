use shmkit::{NoPadding, ShmSafe};

#[derive(ShmSafe, NoPadding)]
enum Color {
    Red,
    Green,
}

fn main() {}
