//! How devices are opened and regions mapped, and the mode bits of what we create.

/// How a device (shared memory object, file) is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Reading only: such a device can be mapped read-only or copy-on-write, never read-write.
    ReadOnly,
    /// Reading and writing: needed to resize the device or to map it read-write.
    ReadWrite,
}

/// How a region is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MapMode {
    /// Shared and read-only: writing through the region faults.
    ReadOnly,
    /// Shared and writable: writes reach the device and every other shared mapping of it.
    ReadWrite,
    /// Private and writable (`MAP_PRIVATE`): writes stay in this region, copied page by page;
    /// the device and the other mappings never see them.
    CopyOnWrite,
}

/// The permission bits (`rwx` for owner, group and others) of a device we create.
///
/// Only the low nine bits are kept: set-id and sticky bits make no sense for shared memory,
/// and in System V flags the bits above them would mean `IPC_CREAT`/`IPC_EXCL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Permissions(u32);

impl Permissions {
    const MASK: u32 = 0o777;

    /// Permissions from Unix mode bits such as `0o640`; bits above `0o777` are dropped.
    pub const fn from_mode(mode: u32) -> Self {
        Permissions(mode & Self::MASK)
    }

    /// Read and write for everyone (`0o666`), to share with processes of other users.
    pub const fn everyone() -> Self {
        Permissions(0o666)
    }

    /// The mode bits.
    pub const fn mode(self) -> u32 {
        self.0
    }
}

impl Default for Permissions {
    /// Read and write for the owner only (`0o600`): sharing wider is a deliberate choice.
    fn default() -> Self {
        Permissions(0o600)
    }
}
