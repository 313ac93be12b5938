//! How far one mapping trusts the segment's size, and how it grows the segment.
//!
//! The header's size word is shared: any process may have written it, and a segment that
//! grows while mapped changes it under every mapping. A mapping therefore never uses bytes
//! past the smaller of its reservation (the address space it mapped) and the device size it
//! verified with `fstat`: a forged or raced size word can make it see less, never touch a
//! page the device does not back (`SIGBUS`) or that it did not map.

use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::error::{Error, Result};
use crate::os::{Access, Mappable};

/// How a segment grows when an allocation does not fit. Only a device segment (shared
/// memory or a mapped file) mapped for writing and shared grows while mapped, and never
/// past the `max_size` it was created with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Growth {
    /// Never: a full segment is `OutOfMemory`, as in Boost.Interprocess.
    Off,
    /// Double the size, or more if one allocation needs more.
    #[default]
    Double,
    /// Grow by this many bytes, or more if one allocation needs more.
    By(usize),
}

impl Growth {
    /// The size to grow a segment of `size` bytes to so that `need` more bytes fit, within
    /// `max`; None when they cannot fit or growth is off.
    pub(crate) fn next(self, size: u64, need: u64, max: u64) -> Option<u64> {
        let step = match self {
            Growth::Off => return None,
            Growth::Double => size,
            Growth::By(bytes) => bytes as u64,
        };
        let least = size.checked_add(need)?;
        if least > max {
            return None;
        }
        let page = crate::os::page_size() as u64;
        let wanted = size.saturating_add(step).max(least);
        Some(
            wanted
                .checked_next_multiple_of(page)
                .map_or(max, |w| w.min(max)),
        )
    }
}

/// The device a growable mapping extends: a descriptor the mapping's backing owns.
struct Device {
    fd: RawFd,
    what: String,
}

impl AsFd for Device {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor belongs to the backing of the segment whose `Limits` this
        // is; the managed segment drops its limits no later than its backing (field
        // order), and views that reach the limits live no longer than the segment.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }
}

impl Mappable for Device {
    fn access(&self) -> Access {
        Access::ReadWrite
    }

    fn size(&self) -> Result<u64> {
        crate::os::device_size(self)
    }

    fn describe(&self) -> String {
        self.what.clone()
    }
}

/// One mapping's bounds: what it reserved, what it verified, how it grows.
pub struct Limits {
    /// Bytes mapped from the segment's start: the most this mapping can ever use.
    reserved: u64,
    /// Bytes known to be backed by the device (at most `reserved`); only grows.
    verified: AtomicU64,
    /// The device, for a mapping that follows growth (`fstat`) or grows it.
    device: Option<Device>,
    growth: Growth,
}

impl Limits {
    /// Bounds of a mapping of `len` bytes that never sees the segment grow: a private
    /// copy, a heap or buffer segment, a copy-on-write mapping.
    pub fn fixed(len: usize) -> Self {
        Limits {
            reserved: len as u64,
            verified: AtomicU64::new(len as u64),
            device: None,
            growth: Growth::Off,
        }
    }

    /// Bounds of a mapping that reserved `reserved` bytes of the device `fd` (named `what`
    /// in errors), of which `verified` are backed; it grows the device by `growth` (`Off`
    /// for a mapping that only follows others' growth).
    ///
    /// # Safety
    /// `fd` stays open as long as these limits are used (see `Device::as_fd`).
    pub unsafe fn growable(
        reserved: usize,
        verified: u64,
        fd: RawFd,
        what: String,
        growth: Growth,
    ) -> Self {
        Limits {
            reserved: reserved as u64,
            verified: AtomicU64::new(verified.min(reserved as u64)),
            device: Some(Device { fd, what }),
            growth,
        }
    }

    /// Bytes this mapping reserved.
    #[inline]
    pub fn reserved(&self) -> u64 {
        self.reserved
    }

    /// How many of `recorded` bytes (the header's size) this mapping may use.
    #[inline]
    pub fn trusted(&self, recorded: u64) -> u64 {
        let verified = self.verified.load(Relaxed);
        if recorded <= verified {
            recorded
        } else {
            self.verify(recorded)
        }
    }

    /// The size word is past what was verified: the segment grew (the device first, then
    /// the word), or the word is forged. Asks the device.
    #[cold]
    fn verify(&self, recorded: u64) -> u64 {
        let backed = self
            .device
            .as_ref()
            .and_then(|d| d.size().ok())
            .map_or(0, |size| size.min(self.reserved));
        let verified = self.verified.fetch_max(backed, Relaxed).max(backed);
        recorded.min(verified)
    }

    /// Makes the device `to` bytes long, from a segment of `from` bytes (storage allocated:
    /// a full file system is `OutOfSpace` here, never a `SIGBUS` later) and records them as
    /// verified. None when this mapping does not grow its segment.
    pub fn grow_device(&self, from: u64, to: u64) -> Option<Result<()>> {
        let device = self
            .device
            .as_ref()
            .filter(|_| self.growth != Growth::Off)?;
        if to > self.reserved {
            return Some(Err(Error::InvalidSize {
                size: to,
                reason: format!("past the {} bytes this mapping reserved", self.reserved),
            }));
        }
        Some(crate::os::device_allocate_from(device, from, to).map(|()| {
            self.verified.fetch_max(to, Relaxed);
        }))
    }

    /// The size to grow a segment of `size` bytes to so that `need` more bytes fit; None
    /// when this mapping does not grow it or they cannot fit.
    pub fn next_size(&self, size: u64, need: u64) -> Option<u64> {
        self.device.as_ref()?;
        self.growth.next(size, need, self.reserved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_grows_by_the_size_or_the_need_within_the_maximum() {
        let page = crate::os::page_size() as u64;
        assert_eq!(Growth::Double.next(1 << 20, 100, 1 << 30), Some(2 << 20));
        assert_eq!(
            Growth::Double.next(1 << 20, 5 << 20, 1 << 30),
            Some((6u64 << 20).next_multiple_of(page))
        );
        assert_eq!(Growth::Double.next(1 << 20, 100, 3 << 19), Some(3 << 19));
        assert_eq!(Growth::Double.next(1 << 20, 1 << 20, (1 << 20) + 5), None);
        assert_eq!(Growth::Off.next(1 << 20, 1, 1 << 30), None);
        assert_eq!(
            Growth::By(4096).next(1 << 20, 1, 1 << 30),
            Some((1 << 20) + 4096)
        );
        assert_eq!(
            Growth::By(0).next(1 << 20, 1, 1 << 30),
            Some((1 << 20) + page)
        );
        assert_eq!(Growth::Double.next(u64::MAX - 1, 5, u64::MAX), None);
        // A step past every size is capped by the maximum, never wraps.
        assert_eq!(
            Growth::By(usize::MAX).next(1 << 20, 1, 1 << 30),
            Some(1 << 30)
        );
        assert_eq!(
            Growth::By(usize::MAX).next(u64::MAX / 2, 1, u64::MAX),
            Some(u64::MAX)
        );
    }

    #[test]
    fn a_fixed_mapping_never_trusts_more_than_it_mapped() {
        let l = Limits::fixed(4096);
        assert_eq!(l.trusted(100), 100);
        assert_eq!(l.trusted(1 << 40), 4096);
        assert!(l.grow_device(4096, 8192).is_none());
        assert_eq!(l.next_size(4096, 10), None);
    }
}
