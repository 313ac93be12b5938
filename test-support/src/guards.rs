//! Guards that remove what a test created when they are dropped, also when the test
//! panics.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use shmkit_runtime::os::{SharedMemoryObject, XsiKey};
use shmkit_runtime::ManagedXsiSharedMemory;

use crate::names::unique_name;

/// Removes the shared memory object named `.0` on drop.
pub struct ShmGuard(pub String);

impl ShmGuard {
    /// A fresh unique name, removed on drop.
    pub fn new() -> Self {
        ShmGuard(unique_name())
    }

    pub fn get(&self) -> &str {
        &self.0
    }
}

impl Default for ShmGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ShmGuard {
    fn drop(&mut self) {
        let _ = SharedMemoryObject::remove(&self.0);
    }
}

/// A fresh path in the temporary directory (nothing is created), whose file is removed on
/// drop.
pub struct TempPath(PathBuf);

impl TempPath {
    pub fn new() -> Self {
        TempPath(std::env::temp_dir().join(unique_name()))
    }

    pub fn get(&self) -> &Path {
        &self.0
    }
}

impl Default for TempPath {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A fresh directory under the temporary directory, removed with its contents on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(unique_name());
        std::fs::create_dir(&path).expect("create the test's temporary directory");
        // Searchable by everyone, whatever the umask: the permission test opens files in
        // it as another user.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod the test's temporary directory");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside the directory (nothing is created).
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes whatever XSI segment key `.0` names on drop.
pub struct XsiKeyGuard(pub XsiKey);

impl Drop for XsiKeyGuard {
    fn drop(&mut self) {
        let _ = ManagedXsiSharedMemory::remove(self.0);
    }
}

/// Removes the XSI segment with id `.0` (one that may no longer be reachable by key) and
/// its companion lock file on drop, whether it drops before or after the key's guard.
pub struct XsiIdGuard(pub i32);

impl Drop for XsiIdGuard {
    fn drop(&mut self) {
        let _ = ManagedXsiSharedMemory::remove_id(self.0);
    }
}

/// A fresh XSI key (from a new file in `dir`) and a guard that removes its segment.
pub fn xsi_key(dir: &TempDir) -> (XsiKey, XsiKeyGuard) {
    let path = dir.join(&unique_name());
    std::fs::write(&path, b"xsi key file").expect("create the key file");
    let key = XsiKey::from_path(&path, b'S').expect("ftok");
    (key, XsiKeyGuard(key))
}
