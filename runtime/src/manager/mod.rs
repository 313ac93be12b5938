//! The segment manager: one mapped, formatted segment seen as an allocator under its robust
//! lock ([`SegmentCore`]), and the segment header that is its on-disk format (`header`).
//! It knows nothing of objects, roots or backings: the layers above build on it.

pub(crate) mod core;
mod handle_text;
pub(crate) mod header;
pub(crate) mod limits;

pub use self::core::Handle;
pub(crate) use self::core::{CachePush, SegmentCore};
pub use self::handle_text::ParseHandleError;
