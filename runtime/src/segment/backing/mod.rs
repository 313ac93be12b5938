//! One backing per kind of memory a segment can live in.

pub mod anonymous;
mod attachment;
pub mod buffer;
pub mod device;
pub mod heap;
pub mod xsi;
