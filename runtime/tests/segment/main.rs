//! Managed segments in one process: named devices (shared memory and files), the on-disk
//! format, access modes, resizing, the sharing model, XSI segments.

mod attack9;
mod device;
mod forged;
mod format;
mod golden;
mod growth;
mod growth_attack;
mod lock_owners;
mod modes;
mod observer;
mod resize;
mod sharing;
mod untrusted_types_and_locks;
mod xsi;
