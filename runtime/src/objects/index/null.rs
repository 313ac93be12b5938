//! The null index: no name index at all, for segments used for raw allocation and
//! anonymous objects only (Boost's `null_index`). Named and unique construction do not
//! compile on it: it does not implement [`NamedIndex`](super::NamedIndex), so its index
//! operations below are never reached through the typed API.

use super::{IndexKind, Key, Root};
use crate::error::Result;
use crate::objects::space::{Blocks, Space};
use crate::segment::inspect::IndexShape;

/// No index: anonymous objects only; named and unique objects do not compile.
#[derive(Debug)]
pub enum NullIndex {}

impl IndexKind for NullIndex {
    const KIND: u32 = 3;
    const NAME: &'static str = "null index";
    const NAMES: bool = false;
    type Link = ();

    fn find(_: &Space, _: Root, _: Key<'_>) -> Result<Option<u64>> {
        Ok(None)
    }

    fn insert(s: &Space, _: Root, e: u64) -> Result<()> {
        Err(s.corrupt(format!(
            "entry {e} is named, but the segment has a null index"
        )))
    }

    fn remove(s: &Space, _: Root, e: u64) -> Result<()> {
        Err(s.corrupt(format!(
            "entry {e} is named, but the segment has a null index"
        )))
    }

    fn for_each(_: &Space, _: Root, _: &mut dyn FnMut(u64) -> Result<()>) -> Result<()> {
        Ok(())
    }

    fn walk(_: &Space, _: Root, _: &Blocks, _: &mut dyn FnMut(u64) -> Result<bool>) -> Result<()> {
        Ok(())
    }

    fn shape(_: &Space, _: Root) -> Result<IndexShape> {
        Ok(IndexShape::None)
    }

    fn reserve(_: &Space, _: Root, _: u64) -> Result<()> {
        Ok(())
    }

    fn reset(_: &Space, _: Root) -> Result<()> {
        Ok(())
    }
}
