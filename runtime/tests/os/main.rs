//! The operating-system layer: files, POSIX and XSI shared memory, mapped regions.

mod file;
mod region;
mod shm;
mod xsi;
