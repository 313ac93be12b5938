//! Managed anonymous shared memory: a segment without a name, shared with the children
//! this process forks after creating it.
//!
//! The mapping has no file description to hold attachment locks on, so it holds them on a
//! companion: an empty shared memory object whose name is removed at once. A forked child
//! reopens it as a description of its own (see `os::fork`).

use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::attachment::Attachment;
use crate::alloc::{MemoryAlgorithm, Tlsf};
use crate::error::{Error, Result};
use crate::manager::header::DEFAULT_INIT_TIMEOUT;
use crate::objects::{HashIndex, IndexKind};
use crate::os::{Access, MappedRegion, Permissions, SharedMemoryObject};
use crate::robust::Owner;
use crate::segment::builder::SegmentBuilder;
use crate::segment::managed::{check_size, Backing, ManagedSegment};
use crate::segment::mode::ReadWrite;

/// An anonymous shared mapping and the nameless companion that carries its locks.
pub struct AnonymousMemory {
    region: MappedRegion,
    // Before the companion: leaves the fork handler's list before the descriptor closes.
    attachment: Attachment,
    companion: SharedMemoryObject,
}

impl Backing for AnonymousMemory {
    type DefaultMode = ReadWrite;
    fn describe(&self) -> String {
        format!("anonymous shared memory at {:p}", self.region.as_ptr())
    }
    fn cold(&self) -> bool {
        self.attachment.cold()
    }
    fn owner(&self) -> Result<Arc<Owner>> {
        Owner::attached(self.companion.as_fd()).map(Arc::new)
    }
    fn alone<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        self.attachment.alone(&self.companion, f)
    }
}

/// A new companion lock file: created under a unique name, which is removed at once.
fn nameless_companion() -> Result<SharedMemoryObject> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // The clock makes a name left behind by a crashed process with a reused pid unlikely
    // to be met again.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "shmkit-anonymous-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let owner_only = Permissions::from_mode(0o600);
    let companion = SharedMemoryObject::create(&name, Access::ReadWrite, owner_only)?;
    SharedMemoryObject::remove(&name)?;
    Ok(companion)
}

/// A segment in anonymous shared memory, inherited by forked children. Another index is
/// chosen on the builder: `ManagedAnonymousSharedMemory::options().index::<I>().create(size)`.
pub type ManagedAnonymousSharedMemory<I = HashIndex, A = Tlsf> =
    ManagedSegment<AnonymousMemory, ReadWrite, I, A>;

impl<I: IndexKind, A: MemoryAlgorithm> SegmentBuilder<AnonymousMemory, ReadWrite, I, A> {
    /// A new, empty segment of `size` bytes that children forked from now on share.
    pub fn create(self, size: usize) -> Result<ManagedAnonymousSharedMemory<I, A>> {
        check_size(size as u64)?;
        let companion = nameless_companion()?;
        let attachment = Attachment::take::<ReadWrite>(&companion)?;
        let region = MappedRegion::anonymous_shared(size)?;
        let base = NonNull::new(region.as_ptr()).ok_or_else(|| Error::InvalidAddress {
            addr: 0,
            reason: "the OS mapped the segment at address 0".into(),
        })?;
        // SAFETY: a fresh private-to-us mapping of `size` writable bytes, kept by the backing.
        unsafe {
            ManagedSegment::attach(
                AnonymousMemory {
                    region,
                    attachment,
                    companion,
                },
                base,
                size,
                true,
                DEFAULT_INIT_TIMEOUT,
            )
        }
    }
}

impl ManagedAnonymousSharedMemory {
    /// A new, empty segment of `size` bytes that children forked from now on share: the
    /// builder with its defaults.
    pub fn new(size: usize) -> Result<Self> {
        Self::options().create(size)
    }
}
