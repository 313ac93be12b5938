//! The page size, which mapping offsets and addresses are aligned to.

use std::sync::OnceLock;

/// The size of a memory page in bytes, asked of the OS once and then cached.
pub fn page_size() -> usize {
    static PAGE_SIZE: OnceLock<usize> = OnceLock::new();
    *PAGE_SIZE.get_or_init(rustix::param::page_size)
}
