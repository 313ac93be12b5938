//! Managed anonymous shared memory: a segment without a name, shared with the children
//! this process forks after creating it.

use std::ptr::NonNull;

use crate::error::{Error, Result};
use crate::manager::header::DEFAULT_INIT_TIMEOUT;
use crate::objects::{HashIndex, IndexKind};
use crate::os::MappedRegion;
use crate::segment::builder::SegmentBuilder;
use crate::segment::managed::{check_size, Backing, ManagedSegment};
use crate::segment::mode::ReadWrite;

/// An anonymous shared mapping.
pub struct AnonymousMemory {
    region: MappedRegion,
}

impl Backing for AnonymousMemory {
    type DefaultMode = ReadWrite;
    fn describe(&self) -> String {
        format!("anonymous shared memory at {:p}", self.region.as_ptr())
    }
}

/// A segment in anonymous shared memory, inherited by forked children. Another index is
/// chosen on the builder: `ManagedAnonymousSharedMemory::options().index::<I>().create(size)`.
pub type ManagedAnonymousSharedMemory<I = HashIndex> =
    ManagedSegment<AnonymousMemory, ReadWrite, I>;

impl<I: IndexKind> SegmentBuilder<AnonymousMemory, ReadWrite, I> {
    /// A new, empty segment of `size` bytes that children forked from now on share.
    pub fn create(self, size: usize) -> Result<ManagedAnonymousSharedMemory<I>> {
        check_size(size as u64)?;
        let region = MappedRegion::anonymous_shared(size)?;
        let base = NonNull::new(region.as_ptr()).ok_or_else(|| Error::InvalidAddress {
            addr: 0,
            reason: "the OS mapped the segment at address 0".into(),
        })?;
        // SAFETY: a fresh private-to-us mapping of `size` writable bytes, kept by the backing.
        unsafe {
            ManagedSegment::attach(
                AnonymousMemory { region },
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
