//! Segment plumbing shared by the workloads: unique names, a guard that removes the shm
//! object before creation and after use (also when a CHECK unwinds), the `used` figure and
//! pre-faulting.

use std::sync::atomic::{AtomicU32, Ordering};

use shmkit::segment::Mode;
use shmkit::{Exclusive, ManagedSharedMemory, ReadWrite};

use crate::check;

/// The segment type every workload benches (read-write POSIX shared memory).
pub type Segment = ManagedSharedMemory<ReadWrite>;

/// 512 MiB: the size of every workload's segment unless stated otherwise.
pub const SEG_SIZE: usize = 512 << 20;
/// 64 MiB: the `create_segment` (and later `open_existing`) size.
pub const SMALL_SEG_SIZE: usize = 64 << 20;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `shmkit_bench_<pid>_<counter>_<tag>`, unique within the machine while this process lives.
pub fn unique_name(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("shmkit_bench_{}_{n}_{tag}", std::process::id())
}

/// Removes the shm object on creation (a stale one) and on drop. Declare it before the
/// segment so that the segment is unmapped first.
pub struct ShmGuard {
    name: String,
}

impl ShmGuard {
    /// A fresh unique name for `tag`, removed right away in case it is stale.
    pub fn new(tag: &str) -> Self {
        let name = unique_name(tag);
        // Best effort, like Boost's `remove`: if it fails, creation reports the problem.
        let _ = Segment::remove(&name);
        ShmGuard { name }
    }

    /// The shm object's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates a fresh segment of `size` bytes (reserved with `fallocate`, like Boost) and
    /// pre-faults it unless `BENCH_PREFAULT=0`.
    pub fn create_prefaulted(&self, size: usize) -> Segment {
        self.prefaulted(size, Segment::create(&self.name, size))
    }

    /// [`create_prefaulted`](Self::create_prefaulted), mapped exclusively: one process
    /// mutating in place without a lock, as the peer's containers do.
    pub fn create_exclusive_prefaulted(&self, size: usize) -> ManagedSharedMemory<Exclusive> {
        let created = Segment::options().exclusive().create(&self.name, size);
        self.prefaulted(size, created)
    }

    fn prefaulted<M: Mode>(
        &self,
        size: usize,
        created: shmkit::Result<ManagedSharedMemory<M>>,
    ) -> ManagedSharedMemory<M> {
        let seg = match created {
            Ok(seg) => seg,
            Err(e) => panic!(
                "creating segment {:?} ({size} bytes) failed: {e}",
                self.name
            ),
        };
        prefault_segment(&seg);
        seg
    }
}

impl Drop for ShmGuard {
    fn drop(&mut self) {
        if let Err(e) = Segment::remove(&self.name) {
            eprintln!("# warning: removing shm object {:?} failed: {e}", self.name);
        }
    }
}

/// Bytes in use: `size() - free_memory()` (the peer's `get_size() - get_free_memory()`).
pub fn used<M: Mode>(seg: &ManagedSharedMemory<M>) -> usize {
    seg.size() - seg.free_memory()
}

/// Pre-faulting is on unless `BENCH_PREFAULT=0` (exactly "0", as in the peer).
pub fn prefault_enabled() -> bool {
    std::env::var_os("BENCH_PREFAULT").is_none_or(|v| v != "0")
}

/// The page size the peer strides by (`sysconf(_SC_PAGESIZE)`, 4096 on x86-64).
pub fn page_size() -> usize {
    rustix::param::page_size()
}

/// Reads one byte of every page of `[base, base+len)` through a volatile pointer: the
/// kernel faults in (and zeroes) every page; nothing is modified.
///
/// # Safety
/// `[base, base+len)` is mapped readable.
pub unsafe fn prefault_range(base: *const u8, len: usize) {
    let page = page_size();
    let mut off = 0;
    while off < len {
        // SAFETY: `off < len`, and the range is mapped readable (caller).
        unsafe { std::ptr::read_volatile(base.add(off)) };
        off += page;
    }
}

/// Pre-faults the whole mapping of `seg` (untimed), unless `BENCH_PREFAULT=0`.
pub fn prefault_segment<M: Mode>(seg: &ManagedSharedMemory<M>) {
    if prefault_enabled() {
        // SAFETY: a live segment maps `[base_address, base_address + size)` readable.
        unsafe { prefault_range(seg.base_address().as_ptr(), seg.size()) };
    }
}

/// Checks the allocator's invariants (untimed), with the reason when one fails.
pub fn check_segment<M: Mode>(seg: &ManagedSharedMemory<M>) {
    let result = seg.check();
    check!(result.is_ok(), "segment check failed: {:?}", result.err());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_well_formed() {
        let a = unique_name("t");
        let b = unique_name("t");
        assert_ne!(a, b);
        let prefix = format!("shmkit_bench_{}_", std::process::id());
        assert!(a.starts_with(&prefix) && a.ends_with("_t"), "{a}");
    }

    #[test]
    fn guard_removes_its_object() {
        let name;
        {
            let guard = ShmGuard::new("guardtest");
            name = guard.name().to_owned();
            let seg = guard.create_prefaulted(1 << 20);
            assert!(seg.all_memory_deallocated());
            drop(seg);
            assert!(Segment::open(&name).is_ok());
        }
        assert!(Segment::open(&name).is_err());
        assert!(!Segment::remove(&name).unwrap());
    }
}
