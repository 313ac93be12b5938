//! The queue's storage block and what is done to it under the queue's lock.
//!
//! One block of the segment, owned by the queue (its first word is the owner tag), and the
//! counters ([`Words`]), which live in the queue itself, on the lock's cache line: a lock
//! holder touches that line anyway, and every other line costs a transfer between the
//! sender's and the receiver's CPUs.
//!
//! ```text
//! tag | slot headers (40 bytes each) | lanes (16 bytes each) | payloads
//! ```
//!
//! The truth is each slot header's `state` word: 0 for a free slot, the message's sequence
//! number for a queued one. A send writes payload and header first and stores `state` last
//! (one store: the message is queued whole or not at all); a receive copies the payload out
//! and then stores 0 (taken exactly once).
//!
//! The order is derived from the states: one *lane* per priority with messages queued, a
//! FIFO list of its slots (linked through the headers' `next`), the lanes sorted by
//! priority so that a receive takes the head of the last one and a send appends to the
//! tail of its own: both O(1) and a few cache lines, but for a send of a priority that has
//! no lane yet (a binary search, and a shift of the lanes above it). The free slots are a
//! stack linked through the same `next` (a slot is in a lane or free, never both), so a
//! send takes the header it is about to write anyway. After a holder died mid-operation, or on bytes that do not add up (forged, or
//! half-updated), lanes and stack are rebuilt from the states alone ([`Locked::rebuild`]).
//! Every index and length read from the block is checked before it is used, so no bytes
//! make an access leave the block.

use core::mem::MaybeUninit;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};

use shmkit_runtime::__private::crash::point;
use shmkit_runtime::segment::owned::OWNER_TAG_BYTES;

/// Offset of the first slot header.
const SLOTS_AT: usize = OWNER_TAG_BYTES;
/// Bytes of a slot header.
const HEADER: usize = 40;
/// Bytes of a lane: priority, head slot, tail slot, and 4 spare.
const LANE: usize = 16;
/// `next` of the last slot of a lane or of the free stack.
const NONE: u32 = u32::MAX;
/// Alignment of the payloads (and of the block).
pub(crate) const ALIGN: usize = 16;

/// The counters, in the queue next to its lock (32 bytes; any values are safe: they are
/// checked where used, and a set that does not add up is rebuilt).
#[repr(C)]
#[derive(Default)]
pub(crate) struct Words {
    /// Messages queued, for polling without the lock: never below the messages queued
    /// (raised before a send's commit, lowered after a receive's), so a message is never
    /// hidden from a poller by a peer that died mid-operation.
    pub(crate) published: AtomicU32,
    /// Messages queued, as the lanes hold them.
    queued: AtomicU32,
    free_len: AtomicU32,
    free_head: AtomicU32,
    lanes_len: AtomicU32,
    /// Receivers, then senders, that may be waiting.
    waiting: [AtomicU16; 2],
    next_seq: AtomicU64,
}

/// Offsets within a slot header.
const STATE: usize = 0;
const LEN: usize = 8;
const PRIORITY: usize = 12;
const FINGERPRINT: usize = 16;
const ORIGIN: usize = 24;
const NEXT: usize = 32;

/// Offsets within a lane.
const LANE_PRIORITY: usize = 0;
const LANE_HEAD: usize = 4;
const LANE_TAIL: usize = 8;

/// The most messages a queue holds (slot indices are `u32`, and a queue this long is
/// already far past any use).
pub(crate) const MAX_MSG: usize = 1 << 24;
/// The longest message (lengths are `u32`).
pub(crate) const MAX_MSG_SIZE: usize = u32::MAX as usize;

/// A queue's capacity: how many messages of how many bytes, and where things are in its
/// storage block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    max_msg: u32,
    max_msg_size: u32,
}

impl Shape {
    /// The shape for `max_msg` messages of `max_msg_size` bytes; None if either is 0 or too
    /// large, or the block would be.
    pub(crate) fn new(max_msg: usize, max_msg_size: usize) -> Option<Shape> {
        if !(1..=MAX_MSG).contains(&max_msg) || !(1..=MAX_MSG_SIZE).contains(&max_msg_size) {
            return None;
        }
        let shape = Shape {
            max_msg: max_msg as u32,
            max_msg_size: max_msg_size as u32,
        };
        shape.bytes().map(|_| shape)
    }

    pub(crate) fn max_msg(self) -> usize {
        self.max_msg as usize
    }

    pub(crate) fn max_msg_size(self) -> usize {
        self.max_msg_size as usize
    }

    /// Bytes from one payload to the next.
    fn stride(self) -> usize {
        (self.max_msg_size as usize).next_multiple_of(ALIGN)
    }

    fn lanes_at(self) -> usize {
        SLOTS_AT + HEADER * self.max_msg()
    }

    fn payloads_at(self) -> usize {
        (self.lanes_at() + LANE * self.max_msg()).next_multiple_of(ALIGN)
    }

    /// The storage block's length; None past `isize::MAX / 2`.
    pub(crate) fn bytes(self) -> Option<usize> {
        let payloads = self.stride().checked_mul(self.max_msg())?;
        let total = self.payloads_at().checked_add(payloads)?;
        (total <= isize::MAX as usize / 2).then_some(total)
    }
}

/// What a header says about the message in a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) slot: u32,
    pub(crate) len: usize,
    pub(crate) priority: u32,
    pub(crate) fingerprint: u64,
    pub(crate) origin: u64,
}

/// A message to queue: its bytes (possibly uninitialised: see `origin`) and header words.
pub(crate) struct Outgoing<'m> {
    pub(crate) bytes: &'m [MaybeUninit<u8>],
    pub(crate) priority: u32,
    pub(crate) fingerprint: u64,
    pub(crate) origin: u64,
}

/// The storage block of a queue whose lock the holder of this value holds: every method
/// runs under that lock (the queue makes one only from its guard).
pub(crate) struct Locked<'q> {
    base: NonNull<u8>,
    shape: Shape,
    words: &'q Words,
}

/// The structures did not add up and were rebuilt: try again.
pub(crate) struct Rebuilt;

impl<'q> Locked<'q> {
    /// # Safety
    /// `base` is the start of a live block of at least `shape.bytes()` bytes, aligned to
    /// [`ALIGN`], that stays allocated for `'q` and is read and written (beyond its tag)
    /// only by holders of the lock the caller holds for `'q`, which guards `words` too.
    pub(crate) unsafe fn new(base: NonNull<u8>, shape: Shape, words: &'q Words) -> Self {
        Locked { base, shape, words }
    }

    fn u32_at(&self, at: usize) -> &AtomicU32 {
        debug_assert!(at % 4 == 0 && at + 4 <= self.len());
        // SAFETY: every caller passes an offset of a 4-aligned word inside the block (the
        // layout of `Shape`, indices checked against `max_msg`), which lives for `'q`;
        // all accesses to it are atomic or under the lock.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(at).cast()) }
    }

    fn u64_at(&self, at: usize) -> &AtomicU64 {
        debug_assert!(at % 8 == 0 && at + 8 <= self.len());
        // SAFETY: as `u32_at`, for an 8-aligned word.
        unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(at).cast()) }
    }

    fn len(&self) -> usize {
        self.shape.bytes().unwrap_or(0)
    }

    fn get(&self, at: usize) -> u32 {
        self.u32_at(at).load(Ordering::Relaxed)
    }

    fn put(&self, at: usize, value: u32) {
        self.u32_at(at).store(value, Ordering::Relaxed);
    }

    fn header(&self, slot: u32, field: usize) -> usize {
        SLOTS_AT + HEADER * slot as usize + field
    }

    fn state(&self, slot: u32) -> &AtomicU64 {
        self.u64_at(self.header(slot, STATE))
    }

    fn lane(&self, i: u32, field: usize) -> usize {
        self.shape.lanes_at() + LANE * i as usize + field
    }

    fn payload(&self, slot: u32) -> *mut u8 {
        // SAFETY: `slot < max_msg` (checked by every caller), so the payload's
        // `max_msg_size` bytes lie inside the block.
        unsafe {
            self.base
                .as_ptr()
                .add(self.shape.payloads_at() + self.shape.stride() * slot as usize)
        }
    }

    /// A slot index read from the block, if it is one.
    fn checked(&self, slot: u32) -> Option<u32> {
        (slot < self.shape.max_msg).then_some(slot)
    }

    fn word(&self, word: &AtomicU32) -> u32 {
        word.load(Ordering::Relaxed)
    }

    fn set(&self, word: &AtomicU32, value: u32) {
        word.store(value, Ordering::Relaxed);
    }

    /// Whether the counters add up (a fresh or consistent queue); otherwise rebuilds.
    pub(crate) fn check_counts(&self) -> Result<(), Rebuilt> {
        let n = self.shape.max_msg;
        let w = self.words;
        let (queued, free, lanes) = (
            self.word(&w.queued),
            self.word(&w.free_len),
            self.word(&w.lanes_len),
        );
        if queued <= n && free <= n && queued + free == n && lanes <= queued {
            Ok(())
        } else {
            Err(self.rebuild())
        }
    }

    /// Makes a freshly zeroed block a queue: every slot free.
    pub(crate) fn format(&self) {
        let n = self.shape.max_msg;
        for slot in 0..n {
            self.put(
                self.header(slot, NEXT),
                if slot + 1 < n { slot + 1 } else { NONE },
            );
        }
        let w = self.words;
        self.set(&w.free_head, 0);
        self.set(&w.free_len, n);
        self.set(&w.queued, 0);
        self.set(&w.lanes_len, 0);
        self.set(&w.published, 0);
        w.next_seq.store(1, Ordering::Relaxed);
    }

    /// Rebuilds the lanes and the free stack from the slots' states, which are the truth:
    /// a queued slot whose header is impossible (a length past the largest message) is
    /// freed, as bytes no send wrote whole. Sequence numbers continue after the largest
    /// queued.
    pub(crate) fn rebuild(&self) -> Rebuilt {
        let w = self.words;
        let mut queued: Vec<(u32, u64, u32)> = Vec::new();
        let (mut free, mut free_head) = (0u32, NONE);
        for slot in (0..self.shape.max_msg).rev() {
            let seq = self.state(slot).load(Ordering::Relaxed);
            let len = self.get(self.header(slot, LEN)) as usize;
            if seq != 0 && len <= self.shape.max_msg_size() {
                queued.push((self.get(self.header(slot, PRIORITY)), seq, slot));
            } else {
                self.state(slot).store(0, Ordering::Relaxed);
                self.put(self.header(slot, NEXT), free_head);
                free_head = slot;
                free += 1;
            }
            point("repair: a slot sorted");
        }
        queued.sort_unstable();
        let mut lanes = 0u32;
        for (i, &(priority, _, slot)) in queued.iter().enumerate() {
            let same_lane = i > 0 && queued[i - 1].0 == priority;
            if same_lane {
                self.put(self.header(queued[i - 1].2, NEXT), slot);
            } else {
                self.put(self.lane(lanes, LANE_PRIORITY), priority);
                self.put(self.lane(lanes, LANE_HEAD), slot);
                lanes += 1;
            }
            self.put(self.lane(lanes - 1, LANE_TAIL), slot);
            self.put(self.header(slot, NEXT), NONE);
        }
        self.set(&w.lanes_len, lanes);
        self.set(&w.queued, queued.len() as u32);
        self.set(&w.published, queued.len() as u32);
        self.set(&w.free_len, free);
        self.set(&w.free_head, free_head);
        let top_seq = queued.iter().map(|&(_, seq, _)| seq).max().unwrap_or(0);
        if w.next_seq.load(Ordering::Relaxed) <= top_seq {
            w.next_seq
                .store(top_seq.wrapping_add(1).max(1), Ordering::Relaxed);
        }
        Rebuilt
    }

    /// The message that a receive takes next, the head of the last lane; None when the
    /// queue is empty.
    pub(crate) fn head(&self) -> Result<Option<Head>, Rebuilt> {
        let lanes = self.word(&self.words.lanes_len);
        if lanes == 0 {
            return Ok(None);
        }
        let lane = lanes - 1;
        let Some(slot) = self.checked(self.get(self.lane(lane, LANE_HEAD))) else {
            return Err(self.rebuild());
        };
        let len = self.get(self.header(slot, LEN)) as usize;
        let priority = self.get(self.header(slot, PRIORITY));
        if self.state(slot).load(Ordering::Relaxed) == 0
            || len > self.shape.max_msg_size()
            || priority != self.get(self.lane(lane, LANE_PRIORITY))
        {
            return Err(self.rebuild());
        }
        Ok(Some(Head {
            slot,
            len,
            priority,
            fingerprint: self
                .u64_at(self.header(slot, FINGERPRINT))
                .load(Ordering::Relaxed),
            origin: self
                .u64_at(self.header(slot, ORIGIN))
                .load(Ordering::Relaxed),
        }))
    }

    /// Copies the head's payload to `dst` (at least `head.len` bytes, not inside the block).
    ///
    /// # Safety
    /// `head` came from [`head`](Self::head) under this same hold of the lock; `dst` is
    /// valid for writes of `head.len` bytes.
    pub(crate) unsafe fn read(&self, head: &Head, dst: *mut u8) {
        // SAFETY: the payload holds `max_msg_size >= head.len` bytes of the block (checked
        // by `head`), which only lock holders write; `dst` is the caller's.
        unsafe { core::ptr::copy_nonoverlapping(self.payload(head.slot), dst, head.len) };
    }

    /// Takes the head (found by [`head`](Self::head) under this same hold of the lock) off
    /// the queue: its state goes to 0 first (the commit), then the lane and the free stack
    /// follow.
    pub(crate) fn take(&self, head: &Head) {
        let w = self.words;
        point("receive: copied out, about to free the slot");
        self.state(head.slot).store(0, Ordering::Release);
        point("receive: slot freed (the commit)");
        let lane = self.word(&w.lanes_len) - 1;
        if self.get(self.lane(lane, LANE_TAIL)) == head.slot {
            self.set(&w.lanes_len, lane);
        } else {
            self.put(
                self.lane(lane, LANE_HEAD),
                self.get(self.header(head.slot, NEXT)),
            );
        }
        point("receive: lane moved on");
        let queued = self.word(&w.queued) - 1;
        self.set(&w.queued, queued);
        self.set(&w.published, queued);
        self.put(self.header(head.slot, NEXT), self.word(&w.free_head));
        self.set(&w.free_head, head.slot);
        point("receive: slot on the free stack, not yet counted");
        self.set(&w.free_len, self.word(&w.free_len) + 1);
    }

    /// Queues `msg` (at most `max_msg_size` bytes, checked by the caller); false when the
    /// queue is full.
    pub(crate) fn push(&self, msg: &Outgoing<'_>) -> Result<bool, Rebuilt> {
        debug_assert!(msg.bytes.len() <= self.shape.max_msg_size());
        let w = self.words;
        let free = self.word(&w.free_len);
        if free == 0 {
            return Ok(false);
        }
        let Some(slot) = self.checked(self.word(&w.free_head)) else {
            return Err(self.rebuild());
        };
        if self.state(slot).load(Ordering::Relaxed) != 0 {
            return Err(self.rebuild());
        }
        let (lane, found) = self.find_lane(msg.priority);
        let tail = if found {
            let tail = self.checked(self.get(self.lane(lane, LANE_TAIL)));
            match tail.filter(|&t| self.state(t).load(Ordering::Relaxed) != 0) {
                Some(tail) => Some(tail),
                None => return Err(self.rebuild()),
            }
        } else {
            None
        };
        self.set(&w.free_head, self.get(self.header(slot, NEXT)));
        self.set(&w.free_len, free - 1);
        point("send: slot off the free stack");
        // SAFETY: a free slot's payload, inside the block (`slot < max_msg`), holds
        // `max_msg_size >= bytes.len()` bytes that nobody reads while the slot is free;
        // the source is the caller's slice, outside the block. Copied as possibly
        // uninitialised bytes: no `[u8]` is formed over them.
        unsafe {
            core::ptr::copy_nonoverlapping(
                msg.bytes.as_ptr().cast::<u8>(),
                self.payload(slot),
                msg.bytes.len(),
            )
        };
        point("send: payload copied");
        self.put(self.header(slot, LEN), msg.bytes.len() as u32);
        self.put(self.header(slot, PRIORITY), msg.priority);
        self.put(self.header(slot, NEXT), NONE);
        self.u64_at(self.header(slot, FINGERPRINT))
            .store(msg.fingerprint, Ordering::Relaxed);
        self.u64_at(self.header(slot, ORIGIN))
            .store(msg.origin, Ordering::Relaxed);
        let seq = w.next_seq.load(Ordering::Relaxed).max(1);
        w.next_seq
            .store(seq.wrapping_add(1).max(1), Ordering::Relaxed);
        let queued = self.word(&w.queued) + 1;
        self.set(&w.published, queued);
        point("send: header written, count published");
        // The commit: from here the message is queued, whatever happens to this process.
        self.state(slot).store(seq, Ordering::Release);
        point("send: queued (the commit)");
        match tail {
            Some(tail) => self.put(self.header(tail, NEXT), slot),
            None => self.open_lane(lane, msg.priority, slot),
        }
        point("send: linked, not yet at the tail");
        self.put(self.lane(lane, LANE_TAIL), slot);
        point("send: at the tail");
        self.set(&w.queued, queued);
        Ok(true)
    }

    /// Where the lane of `priority` is (true) or would go (false) among the sorted lanes.
    fn find_lane(&self, priority: u32) -> (u32, bool) {
        let (mut lo, mut hi) = (0, self.word(&self.words.lanes_len));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let p = self.get(self.lane(mid, LANE_PRIORITY));
            match p.cmp(&priority) {
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
                core::cmp::Ordering::Equal => return (mid, true),
            }
        }
        (lo, false)
    }

    /// Makes room at `at` among the lanes and opens a lane there holding `slot` alone.
    fn open_lane(&self, at: u32, priority: u32, slot: u32) {
        let lanes = self.word(&self.words.lanes_len);
        for i in (at..lanes).rev() {
            for field in [LANE_PRIORITY, LANE_HEAD, LANE_TAIL] {
                self.put(self.lane(i + 1, field), self.get(self.lane(i, field)));
            }
        }
        self.put(self.lane(at, LANE_PRIORITY), priority);
        self.put(self.lane(at, LANE_HEAD), slot);
        self.set(&self.words.lanes_len, lanes + 1);
    }

    /// Counts this thread among the receivers (`true`) or senders about to wait, or out
    /// again. A waiter that dies stays counted: the count only makes the other side notify
    /// when nobody waits; it saturates and never goes below zero.
    pub(crate) fn count_waiter(&self, receiver: bool, enter: bool) {
        let count = &self.words.waiting[usize::from(!receiver)];
        let n = count.load(Ordering::Relaxed);
        let n = if enter {
            n.saturating_add(1)
        } else {
            n.saturating_sub(1)
        };
        count.store(n, Ordering::Relaxed);
    }

    /// Whether the operation just done (a receive: `took`, else a send) must wake a
    /// waiter of the other side: when fewer slots (messages) were there for it before this
    /// operation than waiters are counted, one of them may be asleep for want of the one
    /// this operation made. A stream that outruns its peer thus wakes it once per wait,
    /// not once per message; anything the count misses (a waiter of a dead process, one
    /// woken for another) is seen at the waiter's next look, within `LIVENESS_POLL`.
    pub(crate) fn must_wake(&self, took: bool) -> bool {
        let w = self.words;
        let (had, waiters) = if took {
            (self.word(&w.free_len).wrapping_sub(1), &w.waiting[1])
        } else {
            (self.word(&w.queued).wrapping_sub(1), &w.waiting[0])
        };
        had < u32::from(waiters.load(Ordering::Relaxed))
    }
}
