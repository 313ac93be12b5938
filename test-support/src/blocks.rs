//! Blocks a test allocates in a segment and fills with a pattern, and byte access to
//! them by handle. (A leaf module: the runtime's child binary compiles it too, see the
//! crate doc; it reaches the pattern as `crate::bytes`.)

use std::ptr::NonNull;

use shmkit_runtime::segment::{Backing, Mode, Writable};
use shmkit_runtime::{Handle, ManagedSegment};

use crate::bytes::pattern;

/// Copies `len` bytes from the address of `handle` in `seg`.
pub fn get<B: Backing, M: Mode>(seg: &ManagedSegment<B, M>, handle: Handle, len: usize) -> Vec<u8> {
    assert!(
        handle.0 as usize + len <= seg.size(),
        "read of {len} bytes at {handle:?} runs past the {}-byte segment",
        seg.size()
    );
    let ptr = seg.address_from_handle(handle).expect("handle inside");
    let mut out = vec![0; len];
    // SAFETY: `handle..handle+len` lies inside the segment (checked), which stays mapped
    // while `seg` is borrowed; other processes write these bytes only when the test's own
    // protocol lets them, and the copy does not create a reference into shared memory.
    unsafe { std::ptr::copy_nonoverlapping(ptr.as_ptr(), out.as_mut_ptr(), len) };
    out
}

/// Writes `bytes` at the address of `handle` in the writable `seg`.
pub fn put<B: Backing, M: Writable>(seg: &ManagedSegment<B, M>, handle: Handle, bytes: &[u8]) {
    assert!(
        handle.0 as usize + bytes.len() <= seg.size(),
        "write of {} bytes at {handle:?} runs past the {}-byte segment",
        bytes.len(),
        seg.size()
    );
    let ptr = seg.address_from_handle(handle).expect("handle inside");
    // SAFETY: the range lies inside the segment (checked), which is mapped writable (the
    // mode is `Writable`) while `seg` is borrowed; tests only write blocks they allocated.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.as_ptr(), bytes.len()) };
}

/// A block allocated by a test: where it is, how long, and which pattern it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub handle: Handle,
    pub len: usize,
    pub seed: u64,
}

impl Block {
    /// Allocates `len` bytes in `seg` and fills them with the pattern of `seed`.
    pub fn new<B: Backing, M: Writable>(seg: &ManagedSegment<B, M>, len: usize, seed: u64) -> Self {
        let ptr = seg.allocate(len).expect("allocate a test block");
        let handle = seg.handle_from_address(ptr.as_ptr()).expect("handle");
        put(seg, handle, &pattern(seed, len));
        Block { handle, len, seed }
    }

    /// Whether `seg` holds this block's pattern.
    pub fn intact<B: Backing, M: Mode>(&self, seg: &ManagedSegment<B, M>) -> bool {
        get(seg, self.handle, self.len) == pattern(self.seed, self.len)
    }

    /// Asserts the pattern is there, naming the block if not.
    pub fn assert_intact<B: Backing, M: Mode>(&self, seg: &ManagedSegment<B, M>) {
        assert!(self.intact(seg), "block {self:?} lost its contents");
    }

    /// The block's address in `seg`.
    pub fn ptr<B: Backing, M: Mode>(&self, seg: &ManagedSegment<B, M>) -> NonNull<u8> {
        seg.address_from_handle(self.handle).expect("handle inside")
    }

    /// Frees the block in `seg`.
    pub fn free<B: Backing, M: Writable>(&self, seg: &ManagedSegment<B, M>) {
        // SAFETY: the block was allocated in this segment (in this or another mapping or
        // process) and the test uses it no more.
        unsafe { seg.deallocate(self.ptr(seg)) }.expect("deallocate a test block");
    }

    /// `offset:len:seed`, to hand to a child process.
    pub fn encode(&self) -> String {
        format!("{}:{}:{}", self.handle.0, self.len, self.seed)
    }

    /// The block back from [`encode`](Block::encode).
    pub fn decode(s: &str) -> Self {
        let mut it = s.split(':').map(|p| p.parse::<u64>().expect("a number"));
        let (handle, len, seed) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        Block {
            handle: Handle(handle),
            len: len as usize,
            seed,
        }
    }
}

/// Blocks as one string for an environment variable.
pub fn encode_blocks(blocks: &[Block]) -> String {
    blocks
        .iter()
        .map(Block::encode)
        .collect::<Vec<_>>()
        .join(",")
}

/// The blocks back from [`encode_blocks`].
pub fn decode_blocks(s: &str) -> Vec<Block> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(Block::decode)
        .collect()
}
