//! Thin safe wrappers over the OS: POSIX shared memory objects, files to map, mapped regions
//! (of a device or anonymous memory), System V shared memory, and open-file-description
//! locks ([`ofd`]).
//!
//! This layer knows nothing about segments: it opens, sizes, maps and removes. Every failure
//! is an [`Error`](crate::Error) naming the object it concerns; nothing here panics on bad
//! input. Linux is the target (`MAP_FIXED_NOREPLACE`, `fallocate`).

mod access;
mod device;
mod file;
pub(crate) mod fork;
pub mod ofd;
mod page;
mod region;
mod shm;
mod xsi;

pub use access::{Access, MapMode, Permissions};
pub use device::Mappable;
pub use file::MappableFile;
pub use page::page_size;
pub use region::MappedRegion;
pub use shm::SharedMemoryObject;
pub use xsi::{XsiKey, XsiRegion, XsiSharedMemory};
