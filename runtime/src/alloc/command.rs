//! `allocation_command`: Boost's combined allocate / expand-forward / expand-backward /
//! shrink-in-place request, with its exact rules for limit, preferred and received sizes.

use std::ops::BitOr;
use std::ptr::NonNull;

use super::block::{block_size_for, GRANULE, HEADER, MIN_BLOCK};
use super::heap::Heap;
use crate::error::{Error, Result};

/// What [`allocation_command`](crate::ManagedSegment::allocation_command) may do; combine
/// with `|`. Shrinking cannot be combined with expanding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command {
    flags: u8,
    /// Alignment asked for the block's start ([`MIN_ALIGN`](crate::alloc::MIN_ALIGN)
    /// unless [`aligned`](Self::aligned) says otherwise).
    align: usize,
}

impl Command {
    /// Allocate a new block when expansion is not asked for or fails.
    pub const ALLOCATE_NEW: Command = Command::flag(1);
    /// Move the end of the block forward (data stays where it is).
    pub const EXPAND_FWD: Command = Command::flag(2);
    /// Move the start of the block backward; the caller moves its data to the new start.
    pub const EXPAND_BWD: Command = Command::flag(4);
    /// Move the end of the block backward, returning the tail to the segment.
    pub const SHRINK_IN_PLACE: Command = Command::flag(8);

    const fn flag(flags: u8) -> Command {
        Command {
            flags,
            align: GRANULE,
        }
    }

    /// The same command for a block whose start must be a multiple of `align` (a power of
    /// two; Boost's `allocate_aligned`): a new block is aligned, and a backward expansion
    /// moves the start by whole multiples of it. Forward expansion and shrinking keep the
    /// start where it is.
    pub const fn aligned(self, align: usize) -> Command {
        Command {
            flags: self.flags,
            align,
        }
    }

    /// Whether every flag of `other` is in `self`.
    pub const fn contains(self, other: Command) -> bool {
        self.flags & other.flags == other.flags
    }

    /// The alignment the block's start will have (every block has at least
    /// [`MIN_ALIGN`](crate::ManagedSegment::MIN_ALIGN)).
    pub const fn alignment(self) -> usize {
        if self.align < GRANULE {
            GRANULE
        } else {
            self.align
        }
    }
}

impl BitOr for Command {
    type Output = Command;
    /// The union of the flags, with the larger alignment.
    fn bitor(self, rhs: Command) -> Command {
        Command {
            flags: self.flags | rhs.flags,
            align: self.align.max(rhs.align),
        }
    }
}

/// The block an `allocation_command` produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// Start of the block (for a backward expansion, earlier than the old start).
    pub ptr: NonNull<u8>,
    /// Usable bytes of the block, at least what was asked for.
    pub received: usize,
    /// True when the old block was expanded or shrunk, false when this is a new block.
    pub reused: bool,
}

/// The checked request, in block terms.
pub(crate) struct Request {
    pub cmd: Command,
    pub limit: usize,
    pub preferred: usize,
    /// Block offset of the reused block.
    pub reuse: Option<u64>,
    /// Backward expansion moves the start by a multiple of this.
    pub object_size: usize,
}

impl Request {
    pub fn validate(&self) -> Result<()> {
        let c = self.cmd;
        let expand = c.contains(Command::EXPAND_FWD) || c.contains(Command::EXPAND_BWD);
        let shrink = c.contains(Command::SHRINK_IN_PLACE);
        let bad = |reason: &'static str| Err(Error::InvalidCommand { reason });
        if c.flags == 0 || c.flags & !15 != 0 {
            return bad("no command given");
        }
        if !c.align.is_power_of_two() {
            return Err(Error::InvalidAlignment { align: c.align });
        }
        if shrink && (expand || c.contains(Command::ALLOCATE_NEW)) {
            return bad("shrink_in_place cannot be combined with expanding or allocating");
        }
        if (expand || shrink) && self.reuse.is_none() {
            return bad("expanding or shrinking needs the block to reuse");
        }
        if shrink && self.limit < self.preferred {
            return bad("for shrink_in_place, limit_size must be >= preferred_size");
        }
        if !shrink && self.limit > self.preferred {
            return bad("for allocation or expansion, limit_size must be <= preferred_size");
        }
        if self.object_size == 0 {
            return bad("object size must not be zero");
        }
        Ok(())
    }
}

fn failed(req: &Request, possible: usize) -> Error {
    Error::AllocationCommandFailed {
        limit: req.limit,
        preferred: req.preferred,
        possible,
    }
}

fn usable(block: u64) -> usize {
    (block - HEADER as u64) as usize
}

fn lcm(a: u64, b: u64) -> Option<u64> {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    (a / x).checked_mul(b)
}

/// Runs a validated request. Called with the segment lock held.
pub(crate) fn run(t: &mut Heap, req: &Request) -> Result<Allocation> {
    if req.cmd.contains(Command::SHRINK_IN_PLACE) {
        return shrink(t, req);
    }
    let align = req.cmd.alignment() as u64;
    let fwd = req.cmd.contains(Command::EXPAND_FWD);
    let bwd = req.cmd.contains(Command::EXPAND_BWD);
    let new = req.cmd.contains(Command::ALLOCATE_NEW);
    if let Some(off) = req.reuse.filter(|_| fwd || bwd) {
        // SAFETY: `reuse` was checked to be a used block of this allocator.
        let size = unsafe { t.block_size(off) };
        if usable(size) >= req.preferred {
            return Ok(reused(t, off, size));
        }
        // Forward expansion alone is tried first for the preferred size.
        if fwd {
            if let Some(a) = expand(t, off, req, req.preferred, false) {
                return Ok(a);
            }
        }
    }
    let targets = [req.preferred, req.limit];
    let targets = if req.limit == req.preferred {
        &targets[..1]
    } else {
        &targets[..]
    };
    for &target in targets {
        if let Some(off) = req.reuse.filter(|_| fwd || bwd) {
            if let Some(a) = expand(t, off, req, target, bwd) {
                return Ok(a);
            }
        }
        if new {
            if let Some(a) = block_size_for(target).and_then(|b| alloc(t, b, align)) {
                // SAFETY: freshly allocated block.
                let size = unsafe { t.block_size(a) };
                return Ok(Allocation {
                    ptr: t.payload(a),
                    received: usable(size),
                    reused: false,
                });
            }
        }
    }
    let mut possible = 0;
    if let Some(off) = req.reuse.filter(|_| fwd || bwd) {
        // SAFETY: as above.
        let size = unsafe { t.block_size(off) };
        // SAFETY: as above.
        let fwd_room = if fwd { unsafe { t.free_after(off) } } else { 0 };
        let bwd_room = if bwd {
            // SAFETY: as above.
            unsafe { t.free_before(off) }
        } else {
            0
        };
        possible = usable(size + fwd_room + bwd_room);
    }
    if new {
        possible = possible.max(t.largest_free().saturating_sub(HEADER as u64) as usize);
    }
    Err(failed(req, possible))
}

/// Allocates a block of `size` bytes whose payload is aligned to `align` (a power of two).
pub(crate) fn alloc(t: &mut Heap, size: u64, align: u64) -> Option<u64> {
    if align <= GRANULE as u64 {
        t.alloc_block(size)
    } else {
        t.alloc_aligned(size, align)
    }
}

fn reused(t: &Heap, off: u64, size: u64) -> Allocation {
    Allocation {
        ptr: t.payload(off),
        received: usable(size),
        reused: true,
    }
}

/// Expands block `off` to at least `target` usable bytes, as close to `req.preferred` as
/// the free neighbours allow: forward first, then (when `backward`) backward.
fn expand(
    t: &mut Heap,
    off: u64,
    req: &Request,
    target: usize,
    backward: bool,
) -> Option<Allocation> {
    // SAFETY: `off` is a used block of this allocator (checked by the caller).
    let size = unsafe { t.block_size(off) };
    let want = block_size_for(req.preferred)?;
    let need = block_size_for(target)?;
    let fwd_room = if req.cmd.contains(Command::EXPAND_FWD) {
        // SAFETY: as above.
        unsafe { t.free_after(off) }
    } else {
        0
    };
    if size + fwd_room >= need {
        // SAFETY: `off` is used and the new size is within its free neighbour.
        unsafe { t.grow_forward(off, want.min(size + fwd_room)) };
        // SAFETY: as above.
        let size = unsafe { t.block_size(off) };
        return Some(reused(t, off, size));
    }
    if !backward {
        return None;
    }
    // SAFETY: as above.
    let bwd_room = unsafe { t.free_before(off) };
    let step = lcm(req.cmd.alignment() as u64, req.object_size as u64)?;
    let missing = need - size - fwd_room;
    // The smallest whole number of steps that covers the gap and leaves the free block
    // before either empty or big enough to stand alone.
    let mut delta = missing.div_ceil(step).checked_mul(step)?;
    while delta < bwd_room && bwd_room - delta < MIN_BLOCK as u64 {
        delta += step;
    }
    if delta > bwd_room {
        return None;
    }
    if fwd_room > 0 {
        // SAFETY: `off` is used; this takes exactly its free neighbour.
        unsafe { t.grow_forward(off, size + fwd_room) };
    }
    // SAFETY: `delta <= bwd_room`, and what it leaves is 0 or at least MIN_BLOCK (loop).
    let new_off = unsafe { t.grow_backward(off, delta) };
    // SAFETY: `new_off` is the expanded used block.
    let size = unsafe { t.block_size(new_off) };
    Some(reused(t, new_off, size))
}

fn shrink(t: &mut Heap, req: &Request) -> Result<Allocation> {
    let off = req.reuse.expect("validated: shrink has a block");
    // SAFETY: `off` is a used block of this allocator (checked by the caller).
    let size = unsafe { t.block_size(off) };
    if usable(size) < req.preferred {
        return Err(failed(req, usable(size)));
    }
    let target = block_size_for(req.preferred).ok_or_else(|| failed(req, usable(size)))?;
    if usable(target) > req.limit {
        // Rounding to the granule overshoots the limit: only the block as it is can do.
        return if usable(size) <= req.limit {
            Ok(reused(t, off, size))
        } else {
            Err(failed(req, usable(size)))
        };
    }
    // SAFETY: `off` is used and `target` comes from `block_size_for` (aligned, >= MIN_BLOCK).
    let got = unsafe { t.shrink(off, target) };
    if usable(got) <= req.limit {
        Ok(reused(t, off, got))
    } else {
        Err(failed(req, usable(got)))
    }
}
