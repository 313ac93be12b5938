//! Named, unique and anonymous objects: on heap segments (which Miri runs, `.ci/miri`)
//! and on every segment kind that maps OS memory (compiled out under Miri).

mod heap;
mod lock_free;
#[cfg(not(miri))]
mod segments;
mod torn_ordered_index;
mod uninit_images;
