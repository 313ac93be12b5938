//! Segment-resident containers of shmkit: [`Vec`], [`String`], [`Box`], [`Arc`]/[`Weak`],
//! [`HashMap`]/[`HashSet`], [`Map`]/[`Set`], [`List`] and [`Deque`], and the byte buffer
//! [`FixedBuf`] with I/O over segment bytes ([`io`]). They build on the
//! runtime's allocator and offset pointers, live in place in a segment, are built in place
//! from sources ([`Emplace`]: `names.push("ada")`), and are mutated through extension traits
//! ([`VecExt`], [`MapExt`], …, all in `shmkit::prelude`) on anything that gives in-place
//! access to them: a `ShmMut` from an exclusive mapping, a lock guard of a shared one.
//!
//! # How a container reaches its allocator
//!
//! A container stores no allocator: it finds one from its own address with
//! [`SegmentAllocator::of(self)`](shmkit_runtime::SegmentAllocator::of), which looks the
//! address up in the per-process registry of mappings (a thread-local fast path, no heap
//! allocation) and yields the allocator of exactly the mapping the container lives in, with
//! this thread's cache there. A container that is not in a writable segment (a `Vec::new()`
//! on the stack, one in a read-only mapping) gets an error instead, which a growing
//! operation returns and `Drop` of an empty container never needs. The allocator borrows
//! the container, so it cannot outlive the mapping.
//!
//! Growth first tries [`grow_in_place`](shmkit_runtime::SegmentAllocator::grow_in_place)
//! (the next block, when free). Otherwise the elements move into a new block, each with
//! its relocation hook ([`relocate_values`](shmkit_runtime::relocate_values): a byte copy
//! alone for plain data). Failures are the `Copy` [`AllocError`](shmkit_runtime::AllocError),
//! convertible into the runtime `Error`.

pub mod arc;
mod bounds;
pub mod boxed;
mod buffer;
mod crash;
pub mod deque;
mod emplace;
pub mod hash_map;
pub mod io;
pub mod list;
pub mod map;
#[cfg(feature = "serde")]
mod serde_impls;
pub mod string;
pub mod vec;

pub use arc::{Arc, ArcError, ArcExt, Weak, WeakExt};
pub use boxed::{Box, BoxExt};
pub use deque::{Deque, DequeExt};
pub use emplace::{Emplace, Filled, Slot};
pub use hash_map::set as hash_set;
pub use hash_map::{HashMap, HashMapExt, HashSet, HashSetExt};
pub use io::{FixedBuf, VecCursor};
pub use list::{List, ListExt};
pub use map::set::{Set, SetExt};
pub use map::{Map, MapExt};
pub use string::{NotCharBoundary, String, StringExt, StringInsertError, StringWriter};
pub use vec::{InsertError, Vec, VecExt, VecWriter};
