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

#[cfg(test)]
mod tests {
    use shmkit_runtime::layout::compound_fingerprint;
    use shmkit_runtime::sync::Mutex;
    use shmkit_runtime::ShmSafe;

    use super::*;

    /// Each container's descriptor is stored under the container's own fingerprint, which
    /// is what it was before containers had descriptors (segments keep matching).
    #[test]
    fn descriptors_carry_the_containers_unchanged_fingerprints() {
        fn same<T: ShmSafe>(before: u64) {
            assert_eq!(
                T::LAYOUT_FINGERPRINT,
                before,
                "{}",
                core::any::type_name::<T>()
            );
            let schema = T::SCHEMA.expect("a descriptor");
            assert_eq!(
                schema.fingerprint(),
                before,
                "{}",
                core::any::type_name::<T>()
            );
        }
        // (A plain type's pointee fingerprint is its layout one; a map's nodes hold 11.)
        same::<Vec<u32>>(compound_fingerprint("Vec", &[u32::LAYOUT_FINGERPRINT]));
        same::<Box<u64>>(compound_fingerprint("Box", &[u64::LAYOUT_FINGERPRINT]));
        same::<List<i16>>(compound_fingerprint("List", &[i16::LAYOUT_FINGERPRINT]));
        same::<String>(compound_fingerprint(
            "String",
            &[<Vec<u8> as ShmSafe>::LAYOUT_FINGERPRINT],
        ));
        same::<Map<u32, i64>>(compound_fingerprint(
            "Map",
            &[u32::LAYOUT_FINGERPRINT, i64::LAYOUT_FINGERPRINT, 11],
        ));
        same::<HashMap<u8, u16>>(compound_fingerprint(
            "HashMap",
            &[
                u8::LAYOUT_FINGERPRINT,
                u16::LAYOUT_FINGERPRINT,
                hash_map::hasher::VERSION,
            ],
        ));
        same::<Mutex<Vec<u8>>>(compound_fingerprint(
            "Mutex",
            &[<Vec<u8> as ShmSafe>::LAYOUT_FINGERPRINT],
        ));
    }
}
