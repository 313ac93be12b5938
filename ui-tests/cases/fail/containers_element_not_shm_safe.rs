//! Every segment container's elements, keys and values must be able to live in a segment
//! themselves (`vec_element_not_shm_safe.rs` shows `Vec`): std heap types, references and
//! raw pointers are refused with shmkit's `ShmSafe` message, wherever the container is put
//! in a segment (`String` has no element type).
use shmkit::containers::{Arc, Box, Deque, HashMap, HashSet, List, Map, Set, Vec, Weak};
use shmkit::sync::Mutex;
use shmkit::ManagedHeapMemory;

fn main() -> shmkit::Result<()> {
    let seg = ManagedHeapMemory::new(1 << 16)?;
    seg.construct("vec", Vec::<*const u8>::new())?;
    seg.construct("box", Box::<std::string::String>::new())?;
    seg.construct("map-key", Map::<std::string::String, u64>::new())?;
    seg.construct("map-value", Map::<u64, &'static u8>::new())?;
    seg.construct("set", Set::<std::vec::Vec<u8>>::new())?;
    seg.construct("hash-key", HashMap::<*const u8, u64>::new())?;
    seg.construct("hash-value", HashMap::<u64, std::vec::Vec<u8>>::new())?;
    seg.construct("hash-set", HashSet::<&'static u8>::new())?;
    seg.construct("list", Mutex::new(List::<std::string::String>::new()))?;
    seg.construct("deque", Deque::<*const u8>::new())?;
    seg.construct("arc", Arc::<std::vec::Vec<u8>>::new())?;
    seg.construct("weak", Weak::<&'static u8>::new())?;
    Ok(())
}
