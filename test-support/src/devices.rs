//! Device targets: one test body for shared memory objects and for files.

use std::path::{Path, PathBuf};

use shmkit_runtime::os::{MappableFile, SharedMemoryObject};
use shmkit_runtime::segment::{Device, DeviceBacking};
use shmkit_runtime::ManagedSegment;

use crate::guards::{ShmGuard, TempDir};

/// A named device a test creates a segment in, removed when the target is dropped.
pub trait Target: Send + 'static {
    type Dev: Device;
    /// "shm" or "file", for messages and child processes.
    const KIND: &'static str;
    fn new() -> Self;
    /// The name the segment API takes.
    fn name(&self) -> &<Self::Dev as Device>::Name;
    /// Where the device's bytes are in the filesystem (`/dev/shm/<name>` or the file).
    fn path(&self) -> &Path;
    /// The name as a string, to hand to a child process.
    fn name_string(&self) -> String;
    /// The name back from [`name_string`](Target::name_string).
    fn parse_name(s: &str) -> &<Self::Dev as Device>::Name;
}

/// The read-write managed segment type of a target.
pub type Seg<T> = ManagedSegment<DeviceBacking<<T as Target>::Dev>>;
/// The managed segment type of a target in access mode `M`.
pub type SegIn<T, M> = ManagedSegment<DeviceBacking<<T as Target>::Dev>, M>;

/// A POSIX shared memory name.
pub struct ShmTarget {
    guard: ShmGuard,
    path: PathBuf,
}

impl Target for ShmTarget {
    type Dev = SharedMemoryObject;
    const KIND: &'static str = "shm";
    fn new() -> Self {
        let guard = ShmGuard::new();
        ShmTarget {
            path: shm_path(guard.get()),
            guard,
        }
    }
    fn name(&self) -> &str {
        self.guard.get()
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn name_string(&self) -> String {
        self.guard.get().to_owned()
    }
    fn parse_name(s: &str) -> &str {
        s
    }
}

/// Where Linux keeps the shared memory object `name`.
pub fn shm_path(name: &str) -> PathBuf {
    Path::new("/dev/shm").join(name)
}

/// A file in a fresh temporary directory.
pub struct FileTarget {
    path: PathBuf,
    // Dropped last: removes the file with the directory.
    _dir: TempDir,
}

impl Target for FileTarget {
    type Dev = MappableFile;
    const KIND: &'static str = "file";
    fn new() -> Self {
        let dir = TempDir::new();
        FileTarget {
            path: dir.join("segment"),
            _dir: dir,
        }
    }
    fn name(&self) -> &Path {
        &self.path
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn name_string(&self) -> String {
        self.path
            .to_str()
            .expect("temporary paths are UTF-8")
            .to_owned()
    }
    fn parse_name(s: &str) -> &Path {
        Path::new(s)
    }
}

/// Defines `mod $name { #[test] fn shm(); #[test] fn file(); }` running the generic test
/// body `$name::<T>()` on both device kinds.
#[macro_export]
macro_rules! on_both_devices {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn shm() {
                super::$name::<$crate::ShmTarget>();
            }
            #[test]
            fn file() {
                super::$name::<$crate::FileTarget>();
            }
        }
    )*};
}
