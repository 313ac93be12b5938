//! Managed segments in one process: named devices (shared memory and files), the on-disk
//! format, access modes, resizing, the sharing model, XSI segments.

mod device;
mod format;
mod modes;
mod resize;
mod sharing;
mod xsi;
