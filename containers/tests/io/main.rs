//! Formatting and I/O straight into segment memory (`shmkit_containers::io`): the
//! `VecCursor` against std's `io::Cursor` (seeded random operation sequences), a full
//! segment, the `FixedBuf` full, under guards and in derived structs, and bytes from
//! elsewhere (a forged length).

#![allow(missing_docs)]

mod cursor;
mod fixed;
mod validate;

/// What `#[derive(ShmSafe)]` names the runtime by in this crate (the facade's layout).
mod shm {
    pub use shmkit_runtime::*;
}
