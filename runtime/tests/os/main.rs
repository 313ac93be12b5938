//! The operating-system layer: files, file locks, POSIX and XSI shared memory, mapped
//! regions.

mod file;
mod file_lock;
mod region;
mod shm;
mod xsi;
