#![doc = include_str!("../README.md")]
//!
//! This facade only re-exports: the runtime (segments, allocator, offset pointers), the
//! derive macros and the segment containers.

pub use shmkit_containers as containers;
pub use shmkit_ipc as ipc;
pub use shmkit_ipc::{MessageQueue, NamedMessageQueue};
pub use shmkit_macros as macros;
pub use shmkit_macros::{shm_segment, NoPadding, ShmSafe};
pub use shmkit_runtime::*;

/// The traits that give methods to values in a segment: `use shmkit::prelude::*;` and a
/// guard of a container (a `ShmMut` of an exclusive mapping, a lock guard, a derived
/// accessor such as `db.items_mut()`) has the container's mutating methods:
/// `db.items.lock()?.push(x)?`. Types are not in it (a glob import of `Vec` would shadow
/// std's): name them `shmkit::containers::Vec`, or write `Vec` in a `#[shm_segment]`
/// struct, which rewrites it.
pub mod prelude {
    pub use shmkit_containers::VecExt;
    pub use shmkit_containers::{
        ArcExt, BoxExt, DequeExt, HashMapExt, HashSetExt, ListExt, MapExt, SetExt, StringExt,
        WeakExt,
    };
    pub use shmkit_runtime::ShmDerefMut;
}
